"""The files that go into images for running labs: the start script, the Jupyter Server
configuration and the health check (their behaviour in a real container is tested in
tests/integration/test_run.py)."""

from __future__ import annotations

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
    hub = load_server_config(monkeypatch, {"JUPYTERHUB_API_TOKEN": "x"})
    assert "token" not in hub.IdentityProvider.values


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
