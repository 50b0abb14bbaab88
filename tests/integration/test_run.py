"""Running labs end to end: `pyrlab up` builds and starts a real pylab (cases/pylab-run),
and everything is checked from the host, on 127.0.0.1, the way a user meets it: code runs
in a kernel through the REST API and the kernel websocket, files belong to the host user,
the token is required, the env file / rc script / replacement start script take effect,
the container has no privileges, `ps` shows health, and `down` + `up` keep notebooks,
settings and the token.

The lab runs as UID 4242 / GID 4343 (nobody's default) under a fresh image prefix, on
free ports.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest
from labclient import LabClient
from labtools import (
    EngineCli,
    container_name,
    engine_unavailable,
    run_pyrlab,
)
from pylabcase import (
    GID,
    UID,
    RunningLab,
    cleanup,
    free_ports,
    pylab_case,
    url_parts,
)

pytestmark = pytest.mark.integration

SETTING = "/lab/api/settings/@jupyterlab/apputils-extension:themes"


@pytest.fixture(scope="module")
def pylab(bootstrapped_bases: Callable[[str], str], host_ca_files: list[Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    base = bootstrapped_bases("docker")  # fails in CI (skips elsewhere) without an engine
    binary = shutil.which("docker")
    assert binary is not None
    engine = EngineCli("docker", binary)
    tmp = tmp_path_factory.mktemp("pylab-run")
    lab, ports = pylab_case(tmp, base, host_ca_files)
    try:
        started = time.monotonic()
        up = lab.pyrlab("up", "pylab", "--json")
        seconds = time.monotonic() - started
        assert up.returncode == 0, up.stdout + up.stderr
        assert "pylab: built in" in up.stderr  # `up` built what was missing
        data = json.loads(up.stdout)
        port, token = url_parts(data["url"])
        assert port == ports["lab"]
        print(f"\npylab built and started by `pyrlab up` in {seconds:.1f} s")
        yield RunningLab(lab, engine, lab.root / "work", ports, data["url"], token, seconds)
    finally:
        down = cleanup(lab, engine)
        assert down.returncode == 0, down.stdout + down.stderr


# --------------------------------------------------------------------------- up


def test_up_prints_the_url_with_a_private_token(pylab: RunningLab) -> None:
    assert len(pylab.token) == 48
    token_file = pylab.lab.root / ".pyrlab" / "tokens" / f"{pylab.container}.token"
    assert token_file.read_text().strip() == pylab.token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    url = pylab.pyrlab("url", "pylab")
    assert url.returncode == 0, url.stderr
    # JupyterLab's URL first, then the lab's other named ports (test_services.py starts one).
    assert url.stdout.splitlines() == [
        pylab.url, f"dtale: http://127.0.0.1:{pylab.ports['dtale']}/",
        f"tensorboard: http://127.0.0.1:{pylab.ports['tensorboard']}/"]
    assert url.stdout.startswith(f"http://127.0.0.1:{pylab.port}/lab?token=")


def test_code_runs_in_a_kernel(pylab: RunningLab) -> None:
    client = pylab.client
    assert "python3" in client.kernelspecs()
    with client.kernel("python3") as kernel:
        printed = kernel.execute("print(6*7)")
        assert printed.ok, printed.describe()
        assert printed.stdout == "42\n"
        value = kernel.execute("6*7")
        assert value.result == "42"
        failed = kernel.execute("1/0")
        assert not failed.ok and failed.error is not None
        assert failed.error["ename"] == "ZeroDivisionError"
    assert client.json("GET", "/api/kernels") == []  # shut down on leaving the block


def test_the_token_is_required(pylab: RunningLab) -> None:
    client = pylab.client
    assert client.request("GET", "/api/contents", token=False)[0] == 403
    assert client.request("POST", "/api/kernels", {"name": "python3"}, token=False)[0] == 403
    page, _ = client.request("GET", "/lab", token=False)
    assert page in (302, 403)  # to the login page
    wrong = LabClient(client.base_url, "0" * 48)
    assert wrong.request("GET", "/api/contents")[0] == 403
    assert client.request("GET", "/api/contents")[0] == 200
    assert client.request("GET", f"/lab?token={pylab.token}", token=False)[0] == 200


def host_get(port: int, host: str, path: str = "/api/kernels",
             token: str | None = None) -> tuple[int, bytes]:
    """What a lab answers a GET with the Host header `host` (what a page reached through
    DNS rebinding sends: the attacker's own name)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Host": host}
        if token:
            headers["Authorization"] = f"token {token}"
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def host_status(port: int, host: str, path: str = "/api/kernels",
                token: str | None = None) -> int:
    return host_get(port, host, path, token)[0]


def test_a_lab_with_a_token_refuses_any_host_without_it(pylab: RunningLab) -> None:
    for host in (f"127.0.0.1:{pylab.port}", "rebind.attacker.example"):
        assert host_status(pylab.port, host) == 403, host
    # The token guards it, whatever name the machine is reached by.
    assert host_status(pylab.port, "rebind.attacker.example", token=pylab.token) == 200


def test_a_shared_project_cannot_mount_secrets_or_drop_the_token(
        pylab: RunningLab, tmp_path: Path) -> None:
    """run.notebooks = "~/.ssh" and run.allow_no_token = true from the project file are
    refused, naming key, path and file; --allow-unsafe or the user's own file allows them.
    A lab without a token then still refuses a foreign Host (DNS rebinding)."""
    home = tmp_path / "home"  # a fake home: never the real ~/.ssh
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    ssh.chmod(0o755)
    (ssh / "id_test").write_text("not a key\n")
    user_file = tmp_path / "user" / "config.toml"
    env = {"HOME": str(home), "PYRLAB_USER_CONFIG": str(user_file)}
    config = pylab.lab.root / "pyrlab.toml"
    original = config.read_text()
    port = free_ports(1)[0]
    root = pylab.lab.root.resolve()

    def up(*args: str) -> subprocess.CompletedProcess[str]:
        return run_pyrlab("up", "pylab", "-C", str(pylab.lab.root), "--no-build", "--json",
                          "--port", str(port), *args, env=env, timeout=600)

    def down() -> None:
        done = run_pyrlab("down", "pylab", "-C", str(pylab.lab.root), "--port", str(port),
                          env=env, timeout=300)
        assert done.returncode == 0, done.stderr

    def check_no_token_lab(done: subprocess.CompletedProcess[str]) -> None:
        assert done.returncode == 0, done.stdout + done.stderr
        url = json.loads(done.stdout)["url"]
        assert "token=" not in url
        # Mounted: the notebooks folder is the (fake) ~/.ssh.
        status, body = host_get(port, f"127.0.0.1:{port}", "/api/contents")
        assert status == 200, body
        assert [item["name"] for item in json.loads(body)["content"]] == ["id_test"]
        assert host_status(port, f"127.0.0.1:{port}") == 200
        assert host_status(port, f"localhost:{port}") == 200
        assert host_status(port, "rebind.attacker.example") == 403
        assert host_status(port, f"rebind.attacker.example:{port}") == 403

    try:
        config.write_text(original.replace(
            '\n[run]\n', '\n[run]\nallow_no_token = true\n').replace(
            f'notebooks = "{pylab.work}/notebooks"', 'notebooks = "~/.ssh"'))
        refused = up()
        assert refused.returncode == 3, refused.stdout + refused.stderr
        hint = f"; pyrlab up --allow-unsafe allows it, or setting it in your own {user_file}"
        lines = refused.stderr.splitlines()
        assert lines[lines.index("pyrlab: error: 2 problems:") + 1:] == [
            (f"  pyrlab.toml: run.notebooks: '{ssh}' lies outside the project folder {root}: a "
            "project may mount its own folders and pyrlab's default ones; mounting another "
            f"widens what the lab may do on the host{hint}"),
            ("  pyrlab.toml: run.allow_no_token: 'true' starts the lab without a token: any "
            "program on this machine, and any web page open in its browser that reaches the "
            f"port, could run code as you{hint}")]
        # Nothing was started.
        assert pylab.inspect(container_name(pylab.lab.prefix, "pylab", port)) is None

        check = run_pyrlab("check", "-C", str(pylab.lab.root), env=env)
        assert check.returncode == 0, check.stderr
        assert sum(line.startswith("needs `pyrlab up --allow-unsafe`: run.")
                   for line in check.stdout.splitlines()) == 2, check.stdout

        granted = up("--allow-unsafe")
        try:
            check_no_token_lab(granted)
            assert "allowed by --allow-unsafe" in granted.stderr
        finally:
            down()

        # The same settings from the user's own file need no flag.
        config.write_text(original.replace(f'notebooks = "{pylab.work}/notebooks"\n', ""))
        user_file.parent.mkdir()
        user_file.write_text('[run]\nnotebooks = "~/.ssh"\nallow_no_token = true\n')
        mine = up()
        try:
            check_no_token_lab(mine)
            assert "allowed by --allow-unsafe" not in mine.stderr
        finally:
            down()
    finally:
        config.write_text(original)


def test_files_from_the_lab_belong_to_the_host_user(pylab: RunningLab) -> None:
    notebooks = pylab.work / "notebooks"
    with pylab.client.kernel() as kernel:
        who = kernel.execute("import os; print(os.getuid(), os.getgid(), os.getcwd(), "
                             "os.environ['HOME'])")
        assert who.stdout.split() == [str(UID), str(GID), "/home/notebook/work",
                                      "/home/notebook"], who.describe()
        wrote = kernel.execute("open('from-kernel.txt', 'w').write('hello')")
        assert wrote.ok, wrote.describe()
    made = notebooks / "from-kernel.txt"
    assert made.read_text() == "hello"
    assert (made.stat().st_uid, made.stat().st_gid) == (UID, GID)
    # A notebook made from JupyterLab (its Contents API), as the "+" button does.
    created = pylab.client.json("POST", "/api/contents", {"type": "notebook"}, expect=201)
    notebook = notebooks / created["path"]
    assert notebook.suffix == ".ipynb" and notebook.is_file()
    assert (notebook.stat().st_uid, notebook.stat().st_gid) == (UID, GID)
    # The folders pyrlab created for the lab are the lab user's too.
    for folder in (notebooks, pylab.work / "home", pylab.work / "home" / "work"):
        assert (folder.stat().st_uid, folder.stat().st_gid) == (UID, GID), folder


def test_the_env_file_and_the_rc_script_reach_the_kernel(pylab: RunningLab) -> None:
    with pylab.client.kernel() as kernel:
        env = kernel.execute("import json, os; print(json.dumps({k: os.environ.get(k) for k in "
                             "('ENV_MARKER', 'QUOTED', 'RC_MARKER', 'USERLAB_MARKER')}))")
    assert env.ok, env.describe()
    assert json.loads(env.stdout) == {
        "ENV_MARKER": "from-the-env-file",
        "QUOTED": "two words",
        "RC_MARKER": f"rc ran as {UID}:{GID} after from-the-env-file",
        "USERLAB_MARKER": None,  # no replacement start script in this lab
    }


def test_the_container_contract(pylab: RunningLab) -> None:
    info = pylab.inspect()
    assert info is not None
    config, host = info["Config"], info["HostConfig"]
    assert isinstance(config, dict) and isinstance(host, dict)
    assert config["User"] == f"{UID}:{GID}"
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    bindings = {int(k.split("/")[0]): v for k, v in host["PortBindings"].items()}
    # JupyterLab, D-Tale and TensorBoard, each on 127.0.0.1 only, same port outside and in.
    assert bindings == {p: [{"HostIp": "127.0.0.1", "HostPort": str(p)}]
                        for p in pylab.ports.values()}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYRLAB_PORT_DTALE"] == str(pylab.ports["dtale"])
    assert env["PYRLAB_PORT_TENSORBOARD"] == str(pylab.ports["tensorboard"])
    # PID 1 is tini, which runs the start script, which exec'd JupyterLab.
    shell = pylab.pyrlab("shell", "pylab", "--", "sh", "-c",
                         "tr '\\0' ' ' </proc/1/cmdline; echo; id -u; "
                         "grep CapEff /proc/self/status; ls /proc | grep -c '^[0-9]'")
    assert shell.returncode == 0, shell.stderr
    cmdline, uid, caps, _ = shell.stdout.splitlines()
    assert cmdline.split() == ["/usr/bin/tini", "--", "/opt/pyrlab/start.sh"]
    assert uid == str(UID)
    assert caps.split() == ["CapEff:", "0000000000000000"]
    jupyter = pylab.pyrlab("shell", "pylab", "--", "sh", "-c",
                           "for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline; echo; done")
    assert any("jupyter-lab" in line or "jupyter lab" in line
               for line in jupyter.stdout.splitlines()), jupyter.stdout
    assert "jupyter lab build" not in jupyter.stdout
    # `shell` exits with the command's status; root is refused without run.sudo.
    assert pylab.pyrlab("shell", "pylab", "--", "sh", "-c", "exit 7").returncode == 7
    root = pylab.pyrlab("shell", "--root", "pylab")
    assert root.returncode == 6 and "run.sudo = true" in root.stderr


def test_ps_shows_the_lab_and_its_health(pylab: RunningLab) -> None:
    deadline = time.monotonic() + 60  # `up` sets a 10 s health-check interval
    while True:
        done = pylab.pyrlab("ps", "--json")
        assert done.returncode == 0, done.stderr
        labs = json.loads(done.stdout)
        assert [lab["container"] for lab in labs] == [pylab.container]
        if labs[0]["health"] == "healthy" or time.monotonic() > deadline:
            break
        time.sleep(2)
    lab = labs[0]
    assert lab["health"] == "healthy", lab
    assert lab["image"] == "pylab" and lab["state"] == "running"
    assert lab["url"] == f"http://127.0.0.1:{pylab.port}/lab"  # no token in `ps`
    assert sorted(lab["ports"]) == sorted(f"127.0.0.1:{p}->{p}" for p in pylab.ports.values())
    assert lab["uptime_seconds"] >= 0
    text = pylab.pyrlab("ps").stdout.splitlines()
    assert text[0].split() == ["IMAGE", "STATUS", "UPTIME", "URL", "PORTS"]
    assert text[1].split()[:2] == ["pylab", "healthy"]
    assert pylab.token not in "\n".join(text)


def test_logs_shows_the_servers_own_output(pylab: RunningLab) -> None:
    logs = pylab.pyrlab("logs", "pylab")
    assert logs.returncode == 0, logs.stderr
    assert "Jupyter Server" in logs.stdout + logs.stderr
    assert f"http://127.0.0.1:{pylab.port}/lab" in logs.stdout + logs.stderr
    last = pylab.pyrlab("logs", "pylab", "--tail", "1")
    assert last.returncode == 0, last.stderr
    assert len((last.stdout + last.stderr).strip().splitlines()) == 1


def test_up_again_finds_the_running_lab(pylab: RunningLab) -> None:
    again = pylab.pyrlab("up", "pylab")
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"pylab was already running: {pylab.url}\n"
    # The seed's verb: `make pylab` is `pyrlab up pylab`.
    if shutil.which("make") is None:
        engine_unavailable("make is not installed")
    makefile = resources.files("pyrlab.init").joinpath("Makefile").read_text()
    (pylab.lab.root / "Makefile").write_text(makefile)
    make = subprocess.run(["make", "-s", "-C", str(pylab.lab.root), "pylab",
                           f"PYRLAB={sys.executable} -m pyrlab"], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("PYRLAB_") or k == "PYRLAB_USER_CONFIG"})
    assert make.returncode == 0, make.stderr
    assert make.stdout == f"pylab was already running: {pylab.url}\n"


def test_clear_errors(pylab: RunningLab) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        taken = pylab.pyrlab("up", "pylab", "--no-build", "--port", str(busy))
    assert taken.returncode == 6
    assert (f"pyrlab: error: port {busy} on 127.0.0.1 is already in use by another program"
            in taken.stderr)
    assert "--port N" in taken.stderr
    missing = pylab.pyrlab("up", "pylab", "--no-build", "--port", str(free_ports(1)[0]),
                           "--set", "name=pyrlab-test-nothing-here")
    assert missing.returncode == 6
    assert "pyrlab: error: image pyrlab-test-nothing-here/pylab:latest is not built" in \
        missing.stderr
    assert "pyrlab build pylab" in missing.stderr
    unknown = pylab.pyrlab("url", "rlab")
    assert unknown.returncode == 6 and "unknown image 'rlab'" in unknown.stderr
    for failed in (taken, missing, unknown):
        assert "Traceback" not in failed.stderr
        assert failed.stdout == ""


def test_the_replacement_start_script_is_honoured(pylab: RunningLab) -> None:
    port = free_ports(1)[0]
    up = pylab.pyrlab("up", "pylab", "--no-build", "--port", str(port), "--json",
                      "--set", "run.userlab=replacement.sh")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        _, token = url_parts(json.loads(up.stdout)["url"])
        with LabClient(f"http://127.0.0.1:{port}", token).kernel() as kernel:
            env = kernel.execute("import os; print(os.environ.get('USERLAB_MARKER')); "
                                 "print(os.environ.get('RC_MARKER'))")
        assert env.stdout.splitlines() == [
            "replaced in /home/notebook/work",
            f"rc ran as {UID}:{GID} after from-the-env-file"], env.describe()
    finally:
        down = pylab.pyrlab("down", "pylab", "--port", str(port))
    name = container_name(pylab.lab.prefix, "pylab", port)
    assert down.stdout == f"stopped and removed {name}\n"
    assert pylab.inspect(name) is None
    assert pylab.inspect() is not None  # the other lab of pylab is left alone


def test_a_widening_run_argument_needs_allow_unsafe(pylab: RunningLab) -> None:
    """Refused before anything is built or started; granted by the command-line flag only,
    and then it reaches the container."""
    port = free_ports(1)[0]
    name = container_name(pylab.lab.prefix, "pylab", port)
    asked = ("--port", str(port), "--set", 'run.docker_args=["--cap-add=SYS_PTRACE"]')
    # Under a name with no images: refused before the image is even looked for.
    refused = pylab.pyrlab("up", "pylab", "--no-build", *asked,
                           "--set", "name=pyrlab-test-never-built")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert refused.stderr.splitlines()[-1] == (
        "pyrlab: error: pyrlab.toml: run.docker_args: '--cap-add=SYS_PTRACE' widens what the "
        "lab may do on the host (from --set run.docker_args); pyrlab up --allow-unsafe "
        "allows it")
    assert pylab.inspect(name) is None
    up = pylab.pyrlab("up", "pylab", "--no-build", "--allow-unsafe", *asked)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert ("pyrlab: warning: run.docker_args: '--cap-add=SYS_PTRACE' widens what the lab "
                "may do on the host; allowed by --allow-unsafe") in up.stderr.splitlines()
        data = pylab.inspect(name)
        assert data is not None
        host = data["HostConfig"]
        assert isinstance(host, dict)
        assert [c.removeprefix("CAP_") for c in host["CapAdd"]] == ["SYS_PTRACE"]
    finally:
        down = pylab.pyrlab("down", "pylab", "--port", str(port))
    assert down.returncode == 0, down.stderr


def test_restart_keeps_the_url(pylab: RunningLab) -> None:
    before = pylab.inspect()
    assert before is not None
    restart = pylab.pyrlab("restart", "pylab")
    assert restart.returncode == 0, restart.stderr
    assert restart.stdout.startswith("pylab is up (")
    assert restart.stdout.endswith(f": {pylab.url}\n")
    after = pylab.inspect()
    assert after is not None and after["Id"] != before["Id"]  # a new container
    assert pylab.client.request("GET", "/api/status")[0] == 200


def test_down_keeps_notebooks_settings_and_token(pylab: RunningLab) -> None:
    client = pylab.client
    notebook = {"type": "notebook", "format": "json", "content": {
        "cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    client.json("PUT", "/api/contents/kept.ipynb", notebook, expect=201)
    status, _ = client.request("PUT", SETTING, {"raw": '{"theme": "JupyterLab Dark"}'})
    assert status == 204
    settings_file = (pylab.work / "home" / ".jupyter" / "lab" / "user-settings" / "@jupyterlab"
                     / "apputils-extension" / "themes.jupyterlab-settings")
    assert settings_file.is_file() and settings_file.stat().st_uid == UID

    down = pylab.pyrlab("down", "pylab")
    assert down.returncode == 0, down.stderr
    assert down.stdout == f"stopped and removed {pylab.container}\n"
    assert pylab.inspect() is None
    assert (pylab.work / "notebooks" / "kept.ipynb").is_file()
    assert pylab.pyrlab("ps").stdout == "no labs (start one with `pyrlab up pylab`)\n"

    # Plain `up` (no --no-build) finds the images current and builds nothing.
    logs = pylab.lab.root / ".pyrlab" / "logs"
    build_logs = sorted(logs.iterdir())
    images = {name: pylab.engine.image_id(pylab.lab.ref(name)) for name in ("pyrlab-base", "pylab")}
    up = pylab.pyrlab("up", "pylab")
    assert up.returncode == 0, up.stderr
    assert up.stdout.endswith(f": {pylab.url}\n")  # the same token
    assert "building" not in up.stderr and "built in" not in up.stderr, up.stderr
    assert sorted(logs.iterdir()) == build_logs  # no build wrote a log
    assert {name: pylab.engine.image_id(pylab.lab.ref(name)) for name in images} == images
    theme = client.json("GET", SETTING)
    assert json.loads(theme["raw"]) == {"theme": "JupyterLab Dark"}
    names = [item["name"] for item in client.json("GET", "/api/contents")["content"]]
    assert "kept.ipynb" in names
