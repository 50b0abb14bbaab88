"""`pyrlab export compose` end to end: a small pylab (cases/compose, JupyterLab alone) is
built once, its compose file passes `docker-compose config` and the Compose Specification's
schema, and `docker-compose up -d` starts a lab that behaves as `pyrlab up`'s would: it
answers on 127.0.0.1 with its token and refuses requests without it, runs as the
configured UID/GID with no capabilities under tini, gets the translated run arguments,
turns healthy, and is seen by `pyrlab url`. `docker-compose down -v` removes it.

The compose project has a fresh name; whatever is left is removed by that name.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from labclient import LabClient
from labtools import EngineCli, Lab, container_name, engine_unavailable, free_port

pytestmark = pytest.mark.integration

UID, GID = 4242, 4343
SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "compose-spec" / \
    "compose-spec.json"


def compose_command() -> list[str]:
    """Debian's docker-compose (1.29 on Debian 12), else the docker CLI's plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 check=False, timeout=60).returncode == 0:
        return [docker, "compose"]
    engine_unavailable("docker-compose is not installed (.ci/setup-host.sh --tests installs it)")
    raise AssertionError("unreachable")


@dataclass
class ComposedLab:
    lab: Lab
    engine: EngineCli
    file: Path
    project: str  # the compose project's name
    port: int
    work: Path  # holds notebooks/ and home/
    compose: list[str]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.compose, "-f", str(self.file), "-p", self.project, *args],
                              capture_output=True, text=True, check=False, timeout=timeout,
                              cwd=self.file.parent)

    @property
    def container(self) -> str:
        return container_name(self.lab.prefix, "pylab", self.port)

    def token(self) -> str:
        return (self.lab.root / ".pyrlab" / "tokens" / f"{self.container}.token").read_text().strip()

    def inspect(self) -> dict[str, Any] | None:
        done = self.engine("container", "inspect", self.container, check=False)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None


@pytest.fixture(scope="module")
def composed(make_module_lab: Callable[..., Lab], tmp_path_factory: pytest.TempPathFactory,
             get_engine: Callable[[str], EngineCli]) -> Iterator[ComposedLab]:
    engine = get_engine("docker")
    compose = compose_command()
    port = free_port()
    # The notebooks and home folders lie in the project folder: one outside it would need
    # --allow-unsafe or the user's own file (docs/security.md).
    lab = make_module_lab("compose", "docker", PORT=str(port), WORK="work", UID=str(UID),
                          GID=str(GID))
    work = lab.root / "work"
    started = time.monotonic()
    built = lab.pyrlab("build", "pylab", timeout=1200)
    assert built.returncode == 0, built.stdout + built.stderr
    out = tmp_path_factory.mktemp("compose-file") / "compose.yaml"
    exported = lab.pyrlab("export", "compose", "-o", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    composed = ComposedLab(lab, engine, out, f"pyrlab-test-{secrets.token_hex(4)}", port, work,
                           compose)
    try:
        up = composed("up", "-d")
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"\npylab built, exported and started by compose in "
              f"{time.monotonic() - started:.1f} s")
        yield composed
    finally:
        composed("down", "-v", "--timeout", "10")
        engine.remove_containers(f"com.docker.compose.project={composed.project}")


def test_the_compose_file_is_valid_and_holds_no_token(composed: ComposedLab) -> None:
    text = composed.file.read_text()
    assert composed.token() not in text
    checked = composed("config", "--quiet")
    assert checked.returncode == 0, checked.stderr
    if not SCHEMA.is_file():
        pytest.skip(f"{SCHEMA} is absent: only `docker-compose config` checked the file")
    import jsonschema

    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(yaml.safe_load(text))


def test_the_lab_answers_with_its_token_only(composed: ComposedLab) -> None:
    client = LabClient(f"http://127.0.0.1:{composed.port}", composed.token())
    client.wait_ready(timeout=120)
    assert client.request("GET", "/api/status")[0] == 200
    assert client.request("GET", "/api/status", token=False)[0] == 403
    assert client.request("GET", "/lab", token=False)[0] in (302, 403)  # to the login page
    assert client.request("GET", f"/lab?token={composed.token()}", token=False)[0] == 200
    # pyrlab sees the lab compose started: it has the labels and the name `up` gives.
    url = composed.lab.pyrlab("url", "pylab")
    assert url.returncode == 0, url.stderr
    assert url.stdout.splitlines()[0] == \
        f"http://127.0.0.1:{composed.port}/lab?token={composed.token()}"


def test_the_container_is_started_as_up_would(composed: ComposedLab) -> None:
    info = composed.inspect()
    assert info is not None
    config, host = info["Config"], info["HostConfig"]
    assert config["User"] == f"{UID}:{GID}"
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert not host["Privileged"]
    bindings = [b for ports in host["PortBindings"].values() for b in ports]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(composed.port)}]
    # The image's run arguments, translated: shm size, an environment value with a `$`, a label.
    assert host["ShmSize"] == 96 * 1024 * 1024
    assert "GREETING=costs $5" in config["Env"]
    assert config["Labels"]["org.example.team"] == "ds"
    pid1 = composed.engine("exec", composed.container, "cat", "/proc/1/comm").stdout.strip()
    assert pid1 == "tini"
    composed.engine("exec", composed.container, "touch", "/home/notebook/work/from-lab.txt")
    made = (composed.work / "notebooks" / "from-lab.txt").stat()
    assert (made.st_uid, made.st_gid) == (UID, GID)
    # The image's health check, every 10 s as with `up`: healthy soon after the start.
    deadline = time.monotonic() + 90
    while (state := composed.inspect()) is not None and \
            state["State"]["Health"]["Status"] != "healthy" and time.monotonic() < deadline:
        time.sleep(2)
    assert state is not None and state["State"]["Health"]["Status"] == "healthy", \
        state and state["State"]["Health"]


def test_down_removes_the_lab_and_keeps_the_token(composed: ComposedLab) -> None:
    token = composed.token()
    down = composed("down", "-v", "--timeout", "10")
    assert down.returncode == 0, down.stderr
    assert composed.inspect() is None
    assert composed.token() == token
