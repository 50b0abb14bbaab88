"""A real JupyterHub starts a pyrlab image: the configuration `pyrlab export jupyterhub
--kind docker` writes, loaded by JupyterHub (from PyPI) with DockerSpawner and
configurable-http-proxy (npm, installed by .ci/setup-host.sh --tests), plus only what a
test needs: loopback addresses and free ports, host networking (a container cannot reach a
hub on 127.0.0.1 otherwise), a dummy authenticator and an admin API token.

Through the hub's REST API a user is created and a server spawned from pylab; code runs in
a kernel through the proxy, writes a file in the user's home; the server stops, its
container is gone, and a second spawn finds the file in the user's volume.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labclient import LabClient, LabError
from labtools import (
    EngineCli,
    Lab,
    checked_engine,
    engine_unavailable,
    free_port,
    stop_process,
)

from pyrlab.config.model import default_uid_gid
from pyrlab.ecosystems.python import JUPYTERHUB_SERIES

pytestmark = pytest.mark.integration

CHP_DIRS = (Path("/var/cache/pyrlab-ci/npm"),)
HUB_TIMEOUT = 60.0  # seconds for the hub (and its proxy) to answer
SPAWN_TIMEOUT = 120.0


def _chp() -> str:
    for folder in CHP_DIRS:
        binary = folder / "node_modules" / ".bin" / "configurable-http-proxy"
        if binary.is_file():
            return str(binary)
    found = shutil.which("configurable-http-proxy")
    if found is None:
        engine_unavailable("configurable-http-proxy is not installed (bash .ci/setup-host.sh "
                           "--tests puts it in /var/cache/pyrlab-ci/npm)")
    return str(found)


def _jupyterhub() -> str:
    binary = Path(sys.executable).parent / "jupyterhub"
    if not binary.is_file():
        engine_unavailable("jupyterhub is not installed in the test venv (pip install -e '.[test]')")
    return str(binary)


# What the test adds to the exported configuration: nothing about images, volumes or users.
TEST_CONFIG = """\
import json
from dockerspawner import DockerSpawner

load_subconfig({exported})
settings = json.loads({settings})


class LoopbackDockerSpawner(DockerSpawner):
    # Host networking: the server listens on the host's loopback at the port it is given.
    async def get_ip_and_port(self):
        return "127.0.0.1", self.port


c.JupyterHub.spawner_class = LoopbackDockerSpawner
c.DockerSpawner.network_name = "host"
c.DockerSpawner.use_internal_ip = True  # no port bindings: host networking has none
c.DockerSpawner.ip = "127.0.0.1"
c.DockerSpawner.port = settings["server_port"]
c.DockerSpawner.name_template = settings["container_prefix"] + "{{username}}"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % settings["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [settings["chp"]]
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "pyrlab-test", "api_token": settings["token"]}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["pyrlab-test"]}}]
c.JupyterHub.db_url = "sqlite:///" + settings["folder"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = settings["folder"] + "/cookie_secret"
c.JupyterHub.pid_file = settings["folder"] + "/jupyterhub.pid"
c.ConfigurableHTTPProxy.pid_file = settings["folder"] + "/proxy.pid"
c.JupyterHub.cleanup_servers = True
"""


@dataclass
class Hub:
    url: str  # the proxy's public URL
    token: str
    api: LabClient  # the hub's REST API (/hub/api/…)
    log: Path
    container_prefix: str

    def server(self, user: str) -> LabClient:
        """The user's single-user server, through the proxy."""
        return LabClient(f"{self.url}/user/{user}", self.token, timeout=60)

    def spawn(self, user: str, image: str) -> None:
        status, payload = self.api.request("POST", f"/api/users/{user}/server", {"image": image})
        assert status in (201, 202), f"spawn: {status} {payload!r}\n{self.tail()}"
        self.wait_for(user, ready=True)

    def stop(self, user: str) -> None:
        status, payload = self.api.request("DELETE", f"/api/users/{user}/server")
        assert status in (202, 204), f"stop: {status} {payload!r}\n{self.tail()}"
        self.wait_for(user, ready=False)

    def wait_for(self, user: str, *, ready: bool) -> None:
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while time.monotonic() < deadline:
            model = self.api.json("GET", f"/api/users/{user}")
            server = model.get("servers", {}).get("")
            if ready and server and server.get("ready"):
                return
            if not ready and not server:
                return
            if ready and not server and not model.get("pending"):
                pytest.fail(f"{user}'s server failed to start:\n{self.tail()}")
            time.sleep(0.5)
        pytest.fail(f"{user}'s server not {'ready' if ready else 'stopped'} within "
                    f"{SPAWN_TIMEOUT:g} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def hub_lab(make_module_lab: Callable[..., Lab]) -> Lab:
    """pylab with JupyterLab, built once for the module."""
    lab = make_module_lab("jupyterhub", "docker")
    done = lab.pyrlab("build", "pylab")
    assert done.returncode == 0, done.stderr[-3000:]
    return lab


@pytest.fixture(scope="module")
def hub(hub_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """JupyterHub on 127.0.0.1 with the exported DockerSpawner configuration."""
    engine = checked_engine("docker")
    chp, jupyterhub = _chp(), _jupyterhub()
    folder = tmp_path_factory.mktemp("hub")
    exported = folder / "jupyterhub_config.pyrlab.py"
    done = hub_lab.pyrlab("export", "jupyterhub", "--kind", "docker", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    token = secrets.token_hex(16)
    settings = {"server_port": free_port(), "port": free_port(), "hub_port": free_port(),
                "proxy_api_port": free_port(), "chp": chp, "token": token,
                "folder": str(folder),
                "container_prefix": f"pyrlab-test-hub-{secrets.token_hex(3)}-"}
    config = folder / "jupyterhub_config.py"
    config.write_text(TEST_CONFIG.format(exported=repr(str(exported)),
                                         settings=repr(json.dumps(settings))))
    log = folder / "jupyterhub.log"
    url = f"http://127.0.0.1:{settings['port']}"
    with log.open("wb") as out:
        process = subprocess.Popen([jupyterhub, "-f", str(config)], cwd=folder, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PATH": f"{Path(chp).parent}:"
                                        f"{os.environ.get('PATH', '')}"})
    hub = Hub(url, token, LabClient(f"{url}/hub", token), log, str(settings["container_prefix"]))
    try:
        deadline = time.monotonic() + HUB_TIMEOUT
        while True:
            try:
                if hub.api.request("GET", "/api/")[0] == 200:
                    break
            except (OSError, LabError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterHub did not answer at {url}:\n{hub.tail()}")
            time.sleep(0.5)
        yield hub
    finally:
        stop_process(process)
        _remove_containers(engine, hub.container_prefix)


def _remove_containers(engine: EngineCli, prefix: str) -> None:
    ids = engine("ps", "-aq", "--filter", f"name=^{prefix}", check=False).stdout.split()
    if ids:
        engine("rm", "-f", *ids, check=False)


def _containers(engine: EngineCli, prefix: str) -> list[str]:
    return engine("ps", "-aq", "--filter", f"name=^{prefix}", check=False).stdout.split()


def test_a_hub_spawns_pylab_runs_code_and_keeps_the_users_files(hub: Hub, hub_lab: Lab) -> None:
    engine = checked_engine("docker")
    user = f"u{secrets.token_hex(4)}"
    volume = f"pyrlab-home-{user}"
    try:
        hub.api.json("POST", f"/api/users/{user}", expect=201)
        hub.spawn(user, "pylab")
        assert len(_containers(engine, hub.container_prefix)) == 1
        server = hub.server(user)
        with server.kernel() as kernel:
            run = kernel.execute(
                "import os, json, pathlib, jupyterhub\n"
                "pathlib.Path('hello-from-the-hub.txt').write_text('kept')\n"
                "print(json.dumps({'cwd': os.getcwd(), 'uid': os.getuid(),"
                " 'jupyterhub': [jupyterhub.__file__.startswith('/opt/venv/'),"
                " jupyterhub.__version__.rsplit('.', 1)[0]],"
                " 'env': os.environ.get('HUB_ENV_FILE'), 'rc': os.environ.get('HUB_RC_SCRIPT'),"
                " 'home': os.environ.get('HOME')}))\n")
        assert run.ok, run.describe()
        seen = json.loads(run.stdout.strip().splitlines()[-1])
        # The exported config's notebooks folder in the user's home volume, the notebook
        # UID, the image's JupyterHub of the series the export targets, and start.sh's env
        # file and rc script.
        assert seen == {"cwd": "/home/notebook/work", "uid": default_uid_gid()[0],
                        "jupyterhub": [True, JUPYTERHUB_SERIES],
                        "env": "from-the-env-file", "rc": "ran", "home": "/home/notebook"}, seen
        # The server is jupyterhub-singleuser of the series the export targets, under tini.
        ids = _containers(engine, hub.container_prefix)
        top = engine("exec", ids[0], "cat", "/proc/1/cmdline", check=False).stdout
        assert top.split("\0")[0].endswith("tini"), top
        procs = engine("exec", ids[0], "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
                       check=False).stdout
        assert "jupyterhub-singleuser" in procs, procs
        # The image's health check finds the server at the hub's port and prefix.
        health = engine("exec", ids[0], "/opt/venv/bin/python", "/opt/pyrlab/healthcheck.py",
                        check=False)
        assert health.returncode == 0, health.stdout + health.stderr

        hub.stop(user)
        deadline = time.monotonic() + 30  # auto-removed by the engine once it has stopped
        while _containers(engine, hub.container_prefix) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _containers(engine, hub.container_prefix) == [], "the container outlived its server"
        assert engine("volume", "inspect", volume, check=False).returncode == 0

        hub.spawn(user, "pylab")
        kept = hub.server(user).json("GET", "/api/contents/hello-from-the-hub.txt")
        assert kept["content"] == "kept"
        hub.stop(user)
    finally:
        hub.api.request("DELETE", f"/api/users/{user}/server")
        _remove_containers(engine, hub.container_prefix)
        hub.api.request("DELETE", f"/api/users/{user}")
        engine("volume", "rm", "-f", volume, check=False)
