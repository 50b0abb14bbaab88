"""Running a lab on Podman, for real, through every lab command: `up` builds and starts a
small JupyterLab (cases/podman-run) and prints its URL, `ps` lists it and runs its health
check (without systemd, Podman's timers never run one), `logs` shows the Jupyter server's
own output, `shell` runs commands as the lab's user, `url` prints the same URL, `restart`
keeps it, `down` removes the container and `clean` the lab's images.

Everything is checked the way a user meets it: from the host, on 127.0.0.1, with the
token `up` printed. The lab runs as UID 4242 / GID 4343 (nobody's default) on a free port.
The tests run in the order of a lab's life and share one lab.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from labtools import BASE_REF, EngineCli, Lab, container_name, free_port, project_key

from pyrlab.run.labs import parse_time

pytestmark = pytest.mark.integration

ENGINE = "podman"
UID, GID = 4242, 4343


@dataclass
class PodmanLab:
    lab: Lab
    engine: EngineCli
    work: Path  # holds notebooks/ and home/
    port: int
    url: str  # what `up` printed
    token: str

    @property
    def container(self) -> str:
        return container_name(self.lab.prefix, "pylab", self.port)

    def pyrlab(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.lab.pyrlab(*args, timeout=timeout)

    def container_id(self) -> str | None:
        done = self.engine("container", "inspect", "--format", "{{.Id}}", self.container,
                           check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def status(self, token: str | None = None) -> int:
        """What GET /api/status on 127.0.0.1 answers (with this lab's token by default)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/status",
            headers={"Authorization": f"token {self.token if token is None else token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code


def health_record(info: dict[str, Any]) -> str | None:
    """The health Podman recorded (`Health`, or `Healthcheck` as Podman 4 spells it)."""
    record = info["State"].get("Health") or info["State"].get("Healthcheck") or {}
    return record.get("Status")


def url_parts(url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1", url
    assert parts.port is not None and parts.path == "/lab", url
    return parts.port, parse_qs(parts.query)["token"][0]


def remove_containers(lab: Lab, engine: EngineCli) -> None:
    """Whatever a failed test left: the project's containers, by its label."""
    engine.remove_containers(f"org.pyrlab.project={project_key(lab.root)}")


@pytest.fixture(scope="module")
def running(get_engine: Callable[[str], EngineCli],
            make_module_lab: Callable[..., Lab]) -> Iterator[PodmanLab]:
    """The lab, built and started by one `pyrlab up` (its images go with the module)."""
    engine = get_engine(ENGINE)
    port = free_port()
    # Notebooks and home in the project folder (outside it: --allow-unsafe or a user file).
    lab = make_module_lab("podman-run", ENGINE, PORT=str(port), WORK="work",
                          UID=str(UID), GID=str(GID))
    work = lab.root / "work"
    try:
        up = lab.pyrlab("up", "pylab", "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "engine: podman" in up.stderr  # from pyrlab.toml's engine = "podman"
        url = json.loads(up.stdout)["url"]
        yield PodmanLab(lab, engine, work, port, url, url_parts(url)[1])
    finally:
        lab.pyrlab("down", "--all", timeout=300)
        remove_containers(lab, engine)


def test_up_prints_a_url_whose_token_the_server_wants(running: PodmanLab) -> None:
    port, token = url_parts(running.url)
    assert port == running.port
    assert re.fullmatch(r"[0-9a-f]{48}", token)
    token_file = running.lab.root / ".pyrlab" / "tokens" / f"{running.container}.token"
    assert token_file.read_text().strip() == token
    assert running.status() == 200
    assert running.status(token="0" * 48) == 403
    # As Podman sees it: the lab runs as the configured user.
    info = json.loads(running.engine("container", "inspect", running.container).stdout)[0]
    assert info["Config"]["User"] == f"{UID}:{GID}"
    assert info["State"]["Status"] == "running"
    # Before any `ps`: `up` ran the health check once JupyterLab answered, so Podman's own
    # record says healthy although no systemd timer runs checks here.
    assert health_record(info) == "healthy", info["State"]


def test_ps_lists_the_lab(running: PodmanLab) -> None:
    done = running.pyrlab("ps", "--json")
    assert done.returncode == 0, done.stderr
    labs = json.loads(done.stdout)
    assert [lab["container"] for lab in labs] == [running.container]
    lab = labs[0]
    assert lab["image"] == "pylab" and lab["state"] == "running"
    assert lab["url"] == f"http://127.0.0.1:{running.port}/lab"  # no token in `ps`
    assert lab["ports"] == [f"127.0.0.1:{running.port}->{running.port}"]
    assert lab["uptime_seconds"] >= 0
    # Healthy at once, with or without systemd (which Podman's own timers need: without it
    # no check would ever run and the lab would read "starting" for ever).
    assert lab["health"] == "healthy", lab
    text = running.pyrlab("ps").stdout.splitlines()
    assert text[0].split() == ["IMAGE", "STATUS", "UPTIME", "URL", "PORTS"]
    assert text[1].split()[:2] == ["pylab", "healthy"]
    assert running.token not in "\n".join(text)


def ps_health(running: PodmanLab) -> str:
    done = running.pyrlab("ps", "--json")
    assert done.returncode == 0, done.stderr
    lab = json.loads(done.stdout)[0]
    assert lab["health_note"] is None, lab
    return str(lab["health"])


def test_ps_sees_a_server_that_stopped_answering(running: PodmanLab) -> None:
    """Each `ps` runs the check, so a hung server reads unhealthy after the image's retries
    (3), and healthy again once it answers: not the record of the last check `up` ran."""
    info = json.loads(running.engine("container", "inspect", running.container).stdout)[0]
    # Failures count only after the image's start period (30 s from the container's start).
    started = parse_time(info["State"]["StartedAt"])
    assert started is not None, info["State"]
    time.sleep(max(0.0, 31 - (datetime.now(UTC) - started).total_seconds()))
    runtime = running.work / "home" / ".local" / "share" / "jupyter" / "runtime"
    servers = sorted(runtime.glob("jpserver-*.json"))
    assert len(servers) == 1, servers
    pid = servers[0].stem.removeprefix("jpserver-")  # the server's PID in the container
    assert pid.isdigit()
    stop = running.pyrlab("shell", "pylab", "--", "sh", "-c", f"kill -STOP {pid}")
    assert stop.returncode == 0, stop.stderr
    try:
        seen = [ps_health(running) for _ in range(3)]
    finally:
        cont = running.pyrlab("shell", "pylab", "--", "sh", "-c", f"kill -CONT {pid}")
    assert cont.returncode == 0, cont.stderr
    # (Where systemd timers run checks too, the streak may end sooner: the last is what counts.)
    assert seen[-1] == "unhealthy", seen
    assert running.status() == 200
    assert ps_health(running) == "healthy"


def test_logs_show_the_jupyter_server_output(running: PodmanLab) -> None:
    done = running.pyrlab("logs", "pylab")
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr
    assert "Jupyter Server" in log and "is running at" in log, log
    assert f":{running.port}/lab" in log, log
    tail = running.pyrlab("logs", "pylab", "--tail", "1")
    assert tail.returncode == 0, tail.stderr
    assert len((tail.stdout + tail.stderr).splitlines()) == 1


def test_shell_runs_commands_as_the_lab_user(running: PodmanLab) -> None:
    done = running.pyrlab("shell", "pylab", "--", "sh", "-c",
                          'id -u; id -g; pwd; echo "$HOME"; echo hello > from-shell.txt')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(UID), str(GID), "/home/notebook/work",
                                        "/home/notebook"]
    made = running.work / "notebooks" / "from-shell.txt"  # the notebooks folder, on the host
    assert made.read_text() == "hello\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (UID, GID)
    # The command's exit status is shell's; root is refused (the lab has no privileges).
    assert running.pyrlab("shell", "pylab", "--", "sh", "-c", "exit 7").returncode == 7
    root = running.pyrlab("shell", "--root", "pylab")
    assert root.returncode == 6 and "run.sudo = true" in root.stderr


def test_url_prints_the_url_up_printed(running: PodmanLab) -> None:
    done = running.pyrlab("url", "pylab")
    assert done.returncode == 0, done.stderr
    assert done.stdout == running.url + "\n"


def test_restart_keeps_the_url_and_token(running: PodmanLab) -> None:
    before = running.container_id()
    assert before is not None
    done = running.pyrlab("restart", "pylab")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pylab is up (")
    assert done.stdout.endswith(f": {running.url}\n")
    after = running.container_id()
    assert after is not None and after != before  # a new container
    assert running.status() == 200  # the old token still opens it
    assert running.pyrlab("url", "pylab").stdout == running.url + "\n"


def test_down_removes_the_container(running: PodmanLab) -> None:
    done = running.pyrlab("down", "pylab")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"stopped and removed {running.container}\n"
    assert running.container_id() is None
    assert running.pyrlab("ps").stdout == "no labs (start one with `pyrlab up pylab`)\n"
    assert (running.work / "notebooks" / "from-shell.txt").is_file()  # notebooks stay
    again = running.pyrlab("down", "pylab")
    assert again.returncode == 0 and again.stdout == "no lab of pylab to stop\n"


def test_clean_removes_the_lab_images_and_nothing_else(running: PodmanLab) -> None:
    engine, lab = running.engine, running.lab
    assert running.container_id() is None  # (after `down`)
    built = engine.refs(lab.prefix)
    assert lab.ref("pylab") in built, built
    # An image under one of the lab's names that this project did not build: kept.
    stranger = lab.ref("pylab", "previous")
    engine("tag", BASE_REF, stranger)
    # Untagged images of this project go too (with Podman, e.g. the image of pyrlab's
    # build-only tools stage, which carries the build's labels): only images that were
    # labelled as this project's before.
    label = f"label=org.pyrlab.project={project_key(lab.root)}"
    labelled = {i.removeprefix("sha256:")[:12] for i in engine(
        "images", "--all", "--quiet", "--no-trunc", "--filter", label).stdout.split()}
    done = lab.pyrlab("clean", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    refs = [r for r in data["removed"] if ":" in r]
    assert sorted(refs) == sorted(built)
    assert set(data["removed"]) - set(refs) <= labelled, data["removed"]
    assert data["kept"] == [{"image": stranger,
                             "reason": "not built by this project (another folder's lab?)"}]
    assert engine.refs(lab.prefix) == [stranger]
    assert engine.image(BASE_REF) is not None  # the base is shared: kept
    left = engine("images", "--all", "--quiet", "--filter",
                  f"label=org.pyrlab.project={project_key(lab.root)}")
    assert left.stdout.split() == []
