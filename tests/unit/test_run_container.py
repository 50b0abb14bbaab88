"""The files that go into images for running labs: the start script, the Jupyter Server
configuration, the health check and the services' defaults (TensorBoard, D-Tale). Their
behaviour in a real container is tested in tests/integration/test_run.py and
test_services.py."""

from __future__ import annotations

import configparser
import os
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from labfiles import CONTAINER


def test_the_start_script_is_short_and_builds_nothing() -> None:
    text = (CONTAINER / "start.sh").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 60
    assert "jupyter lab build" not in text.replace("`jupyter lab build`", "")
    code = [line.strip() for line in text.splitlines() if line.strip()
            and not line.strip().startswith("#")]
    # The order of the contract: env file, rc script, then the replacement or JupyterLab.
    order = [next(i for i, line in enumerate(code) if needle in line)
             for needle in ("envfile=/etc/pyrlab/env", "rc=/etc/pyrlab/rc.sh",
                            'exec "$userlab"', "exec jupyter lab")]
    assert order == sorted(order)
    assert code[-1] == 'exec jupyter lab "$@"'


class _Namespace:
    """Enough of traitlets' Config for the server config file: c.Section.option = value."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return self.values.setdefault(name, _Namespace())

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "values":
            object.__setattr__(self, name, value)
        else:
            self.values[name] = value


def load_server_config(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> _Namespace:
    for name in ("JUPYTER_TOKEN", "PYRLAB_ALLOW_NO_TOKEN", "JUPYTERHUB_API_TOKEN",
                 "PYRLAB_LAB_PORT", "PYRLAB_NOTEBOOKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = _Namespace()
    runpy.run_path(str(CONTAINER / "jupyter_server_config.py"),
                   init_globals={"get_config": lambda: config})
    return config


def test_server_config_with_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    c = load_server_config(monkeypatch, {"JUPYTER_TOKEN": "abc", "PYRLAB_LAB_PORT": "8898"})
    server = c.ServerApp.values
    assert server["port"] == 8898 and server["ip"] == "0.0.0.0"
    assert server["root_dir"] == "/home/notebook/work" and server["open_browser"] is False
    assert "token" not in c.IdentityProvider.values  # Jupyter Server reads JUPYTER_TOKEN
    # Not a login shell: Debian's /etc/profile would drop /opt/venv/bin from PATH.
    assert server["terminado_settings"] == {"shell_command": ["/bin/bash"]}


def test_server_config_refuses_to_run_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit, match="refusing to start a lab without a token"):
        load_server_config(monkeypatch, {})
    with pytest.raises(SystemExit):
        load_server_config(monkeypatch, {"JUPYTER_TOKEN": ""})


def test_server_config_without_a_token_only_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    c = load_server_config(monkeypatch, {"PYRLAB_ALLOW_NO_TOKEN": "1"})
    # Explicitly empty: otherwise Jupyter Server would make up a random token.
    assert c.IdentityProvider.values["token"] == ""
    # Without a token, Jupyter Server's Host check stays on: only loopback names (DNS
    # rebinding); with a token (or a hub's login) the token guards the lab.
    assert c.ServerApp.values["allow_remote_access"] is False
    assert c.ServerApp.values["local_hostnames"] == ["localhost"]
    hub = load_server_config(monkeypatch, {"JUPYTERHUB_API_TOKEN": "x"})
    assert "token" not in hub.IdentityProvider.values
    assert hub.ServerApp.values["allow_remote_access"] is True
    with_token = load_server_config(monkeypatch, {"JUPYTER_TOKEN": "abc"})
    assert with_token.ServerApp.values["allow_remote_access"] is True


class _Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == "token right" and self.path == "/api/status"
        self.send_response(200 if ok else 403)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def status_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def healthcheck(port: int, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(Path(CONTAINER / "healthcheck.py"))],
                          env={"PYRLAB_LAB_PORT": str(port), "JUPYTER_TOKEN": token},
                          capture_output=True, text=True, timeout=30, check=False)


def test_healthcheck_uses_the_status_api_with_the_token(status_port: int) -> None:
    assert healthcheck(status_port, "right").returncode == 0
    refused = healthcheck(status_port, "wrong")
    assert refused.returncode == 1 and "403" in refused.stdout


# --------------------------------------------------------------------------- services


@pytest.fixture
def fake_tensorboard(tmp_path: Path) -> Path:
    """A folder with a `tensorboard` that prints the arguments it was given."""
    folder = tmp_path / "venv-bin"
    folder.mkdir()
    script = folder / "tensorboard"
    script.write_text("import sys\nprint(' '.join(sys.argv[1:]))\n")
    script.chmod(0o755)
    return folder


def tensorboard(tmp_path: Path, path: str, *args: str,
                port: str = "6123") -> subprocess.CompletedProcess[str]:
    """The image's /opt/pyrlab/bin/tensorboard, first on PATH as in the image."""
    wrapper_dir = tmp_path / "pyrlab-bin"
    wrapper_dir.mkdir(exist_ok=True)
    wrapper = wrapper_dir / "tensorboard"
    wrapper.write_bytes((CONTAINER / "tensorboard.py").read_bytes())
    env = {"PATH": os.pathsep.join([str(wrapper_dir), path])}
    if port:
        env["PYRLAB_PORT_TENSORBOARD"] = port
    return subprocess.run([sys.executable, str(wrapper), *args], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_tensorboard_listens_on_every_interface_and_its_port(
        tmp_path: Path, fake_tensorboard: Path) -> None:
    done = tensorboard(tmp_path, str(fake_tensorboard), "--logdir", "runs")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "--bind_all --port 6123 --logdir runs\n"
    # Without a published tensorboard port: TensorBoard's own (6006, or the next free one).
    done = tensorboard(tmp_path, str(fake_tensorboard), "--logdir", "runs", port="")
    assert done.stdout == "--bind_all --logdir runs\n"


@pytest.mark.parametrize(("args", "added"), [
    (["--host", "127.0.0.1"], "--port 6123"),
    (["--host=::1"], "--port 6123"),
    (["--bind_all"], "--port 6123"),
    (["--port", "7000"], "--bind_all"),
    (["--port=7000", "--host", "0.0.0.0"], ""),
])
def test_tensorboard_keeps_what_the_command_line_chooses(
        tmp_path: Path, fake_tensorboard: Path, args: list[str], added: str) -> None:
    done = tensorboard(tmp_path, str(fake_tensorboard), *args)
    assert done.stdout.split() == [*added.split(), *args]


def test_tensorboard_keeps_the_name_percent_tensorboard_knows_it_by(tmp_path: Path) -> None:
    """`%tensorboard` (tensorboard.manager.start) finds the server it started by a key made
    of the arguments it gave; TensorBoard makes its key from its own argv. The defaults
    added here must not change it, or the notebook waits for nothing and times out."""
    package = tmp_path / "site" / "tensorboard"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "manager.py").write_text(
        "def cache_key(working_directory, arguments, configure_kwargs):\n"
        "    return repr((working_directory, list(arguments), configure_kwargs))\n")
    venv_bin = tmp_path / "venv-bin"
    venv_bin.mkdir()
    script = venv_bin / "tensorboard"
    script.write_text("import sys\nfrom tensorboard import manager\n"
                      "print(' '.join(sys.argv[1:]))\n"
                      "print(manager.cache_key(working_directory='/w', arguments=sys.argv[1:],"
                      " configure_kwargs={}))\n")
    script.chmod(0o755)
    wrapper_dir = tmp_path / "pyrlab-bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "tensorboard"
    wrapper.write_bytes((CONTAINER / "tensorboard.py").read_bytes())
    done = subprocess.run(
        [sys.executable, str(wrapper), "--logdir", "runs"], capture_output=True, text=True,
        timeout=30, check=False,
        env={"PATH": f"{wrapper_dir}{os.pathsep}{venv_bin}", "PYRLAB_PORT_TENSORBOARD": "6123",
             "PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["--bind_all --port 6123 --logdir runs",
                                        "('/w', ['--logdir', 'runs'], {})"]


def test_tensorboard_not_installed(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = tensorboard(tmp_path, str(empty), "--logdir", "runs")
    assert done.returncode == 1
    assert "tensorboard is not installed in this lab" in done.stderr


def test_dtale_config_listens_on_every_interface() -> None:
    # Read the way D-Tale reads it (dtale/config.py: ConfigParser, section [show]).
    parser = configparser.ConfigParser()
    parser.read(CONTAINER / "dtale.ini")
    assert parser.get("show", "host") == "0.0.0.0"
    assert not parser.has_option("show", "port")  # DTALE_MIN_PORT, from `pyrlab up`


def start_script_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment start.sh hands to `jupyter lab` (a fake one that prints it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "jupyter"
    fake.write_text("#!/bin/sh\nenv\n")
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        ["bash", str(CONTAINER / "start.sh")], capture_output=True, text=True, timeout=30,
        check=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home),
                         "PYRLAB_NOTEBOOKS": str(tmp_path), **env})
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_start_script_points_dtale_at_the_image_defaults(tmp_path: Path) -> None:
    if Path("/etc/pyrlab").exists():
        pytest.skip("this machine has an /etc/pyrlab that start.sh would read")
    assert start_script_env(tmp_path)["DTALE_CONFIG"] == "/opt/pyrlab/dtale.ini"
    # The user's own choice stays: a DTALE_CONFIG (env file, rc script) or ~/.config/dtale.ini.
    assert start_script_env(tmp_path, DTALE_CONFIG="/x.ini")["DTALE_CONFIG"] == "/x.ini"
    (tmp_path / "home" / ".config").mkdir()
    (tmp_path / "home" / ".config" / "dtale.ini").write_text("[show]\n")
    assert "DTALE_CONFIG" not in start_script_env(tmp_path)
