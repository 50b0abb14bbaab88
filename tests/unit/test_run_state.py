"""The host side of a lab: token files, mounted folders, ports; and reading `inspect`."""

from __future__ import annotations

import io
import os
import socket
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from pyrlab.errors import RunError
from pyrlab.launch.ready import NotReady, Spinner, status_ok, wait_ready
from pyrlab.launch.state import ensure_token, port_in_use, prepare_folders, read_token
from pyrlab.run.labs import format_duration, lab_from_inspect, parse_time

# --------------------------------------------------------------------------- tokens


def test_a_new_token_is_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / ".pyrlab" / "tokens" / "pyrlab-pylab-8888.token"
    token = ensure_token(path)
    assert len(token) == 48 and int(token, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_token(path) == token
    assert read_token(path) == token
    other = ensure_token(path.with_name("pyrlab-pylab-8898.token"))
    assert other != token


def test_a_loosened_token_file_is_made_private_again(tmp_path: Path) -> None:
    path = tmp_path / "t.token"
    token = ensure_token(path)
    path.chmod(0o644)
    assert ensure_token(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_token_file_gets_a_new_token(tmp_path: Path) -> None:
    path = tmp_path / "t.token"
    path.write_text("\n")
    token = ensure_token(path)
    assert len(token) == 48 and read_token(path) == token


def test_a_token_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunError, match="cannot write the lab's token file"):
        ensure_token(blocker / "tokens" / "t.token")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")
def test_as_root_the_token_goes_to_the_real_user(tmp_path: Path) -> None:
    path = tmp_path / "tokens" / "t.token"
    ensure_token(path, owner=(4321, 4322))
    assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)
    assert path.parent.stat().st_uid == 4321


# --------------------------------------------------------------------------- folders


@pytest.mark.skipif(os.geteuid() != 0, reason="giving folders away needs root")
def test_new_folders_belong_to_the_lab_user(tmp_path: Path) -> None:
    home = tmp_path / "docker" / "home"
    notes = prepare_folders((home, home / "work", tmp_path / "nb"), 4321, 4322)
    assert notes == []
    for folder in (tmp_path / "docker", home, home / "work", tmp_path / "nb"):
        assert (folder.stat().st_uid, folder.stat().st_gid) == (4321, 4322), folder
    assert tmp_path.stat().st_uid == 0  # what existed is left alone


def test_an_existing_folder_the_lab_cannot_write_is_pointed_out(tmp_path: Path) -> None:
    folder = tmp_path / "nb"
    folder.mkdir(mode=0o755)
    uid = folder.stat().st_uid + 1
    notes = prepare_folders((folder,), uid, uid)
    assert notes == [(f"{folder} belongs to UID {uid - 1}, but the lab runs as UID {uid}: it "
                      f"may not be able to save there (chown {uid}:{uid} it)")]
    folder.chmod(0o1777)
    assert prepare_folders((folder,), uid, uid) == []


def test_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "nb").write_text("")
    with pytest.raises(RunError, match="cannot create"):
        prepare_folders((tmp_path / "nb",), os.getuid(), os.getgid())


# --------------------------------------------------------------------------- ports


def test_port_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        assert port_in_use("0.0.0.0", port)  # all interfaces include the one in use
    assert not port_in_use("127.0.0.1", port)


# --------------------------------------------------------------------------- inspect


INSPECT: dict[str, Any] = {
    "Name": "/pyrlab-pylab-8888",
    "Image": "sha256:" + "a" * 64,
    "Config": {
        "Image": "pylab:latest",
        "Env": ["PATH=/opt/venv/bin:/usr/bin", "JUPYTER_TOKEN=abc=def", "HOME=/home/notebook"],
        "Labels": {"org.pyrlab.project": "0123456789abcdef", "org.pyrlab.lab": "pylab",
                   "org.pyrlab.lab-port": "8888", "org.pyrlab.project-dir": "/labs/mine",
                   "org.pyrlab.url": "http://127.0.0.1:8888/lab"},
    },
    "State": {"Status": "running", "ExitCode": 0, "StartedAt": "2026-03-01T10:00:00.5Z",
              "Health": {"Status": "healthy", "Log": []}},
    "HostConfig": {
        "PortBindings": {"40000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40000"}],
                         "8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8888"}]},
        "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"]},
}


def test_lab_from_inspect() -> None:
    lab = lab_from_inspect(INSPECT)
    assert (lab.name, lab.image, lab.port, lab.token) == ("pyrlab-pylab-8888", "pylab", 8888,
                                                           "abc=def")
    assert lab.project == "0123456789abcdef" and lab.project_dir == "/labs/mine"
    assert lab.published == ("127.0.0.1:8888->8888", "127.0.0.1:40000->40000")
    assert lab.status == "healthy" and lab.running and not lab.privileged
    now = datetime(2026, 3, 1, 10, 1, 30, 500000, tzinfo=UTC)
    assert lab.uptime(now) == 90.0


def test_states_read_as_one_word() -> None:
    def with_state(**state: Any) -> Any:
        return lab_from_inspect({**INSPECT, "State": state})

    assert with_state(Status="running").status == "running"  # no health check
    assert with_state(Status="running", Health={"Status": "starting"}).status == "starting"
    # Podman 4 reports the health check under another key.
    assert with_state(Status="running", Healthcheck={"Status": "healthy"}).status == "healthy"
    exited = with_state(Status="exited", ExitCode=137)
    assert exited.status == "exited (137)" and exited.uptime() is None
    assert with_state(Status="created").status == "created"


def test_times_and_durations() -> None:
    assert parse_time("2026-03-01T10:00:00.123456789Z") == \
        datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("garbage") is None
    assert [format_duration(s) for s in (None, 5, 65, 3700, 200000)] == \
        ["-", "5s", "1m05s", "1h01m", "2d07h"]


# --------------------------------------------------------------------------- waiting


class _Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == "token right" and self.path == "/api/status"
        self.send_response(200 if ok else 403)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/status"
    server.shutdown()
    server.server_close()


def test_status_needs_the_token(status_server: str) -> None:
    assert status_ok(status_server, "right")
    assert not status_ok(status_server, "wrong")
    assert not status_ok(status_server, "")


def test_wait_ready_returns_once_the_lab_answers(status_server: str) -> None:
    assert wait_ready(status_server, "right", timeout=5, stopped=lambda: None, label="x") < 5


def test_wait_ready_fails_fast_when_the_container_stops() -> None:
    with pytest.raises(NotReady, match="exited with code 1"):
        wait_ready("http://127.0.0.1:9/api/status", "t", timeout=30, label="x",
                   stopped=lambda: "the container exited with code 1")


def test_wait_ready_times_out(status_server: str) -> None:
    with pytest.raises(NotReady, match="did not answer within 0.5 s"):
        wait_ready(status_server, "wrong", timeout=0.5, stopped=lambda: None, label="x")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_spinner_writes_only_to_a_terminal() -> None:
    quiet = io.StringIO()
    Spinner(quiet).update("starting pylab… 1s")
    assert quiet.getvalue() == ""
    tty = _Tty()
    spinner = Spinner(tty)
    spinner.update("starting pylab… 1s")
    spinner.clear()
    assert "starting pylab… 1s" in tty.getvalue() and tty.getvalue().endswith("\r")
