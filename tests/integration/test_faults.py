"""Faults lose nothing, for real (Docker): SIGINT or SIGTERM sent to pyrlab alone while an
install step or the self-test runs, or while `up` waits for its lab, leaves every tag
where it was, no container of the project and no new untagged image, and the next build
works; two builds of one project run one after the other; an engine process killed
mid-build is reported with its signal and `latest` stays; a Docker daemon that cannot be
reached is one clear error with a hint.

One small lab is built once; each test then grows its Python list by one package, so there
is an install step to interrupt. The package index is a local one whose project pages wait
while the test holds them: a request arriving there says the install step runs now.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from labtools import (
    _CLEAN_ENV,
    EngineCli,
    Lab,
    free_port,
    make_wheel,
    project_key,
    run_pyrlab,
    serve_folder,
    serving,
)

pytestmark = pytest.mark.integration

ENGINE = "docker"
UPSTREAM = os.environ.get("PYRLAB_TEST_UPSTREAM_INDEX", "https://pypi.org/simple/")
HOLD_AT_MOST = 300.0  # a held page is answered after this at the latest
WAIT = 300.0  # for a build to reach its install step, or a lab container to appear


@dataclass
class HeldIndex:
    """A PEP 503 index on 127.0.0.1 (pages from UPSTREAM) that holds its answers while
    `open` is clear; `asked` is set by the first request that arrives while held."""

    url: str = ""
    open: threading.Event = field(default_factory=threading.Event)
    asked: threading.Event = field(default_factory=threading.Event)

    def hold(self) -> None:
        self.asked.clear()
        self.open.clear()

    def release(self) -> None:
        self.open.set()


@contextmanager
def held_index() -> Iterator[HeldIndex]:
    state = HeldIndex()
    state.release()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/simple/"):
                self.send_error(404)
                return
            if not state.open.is_set():
                state.asked.set()
                state.open.wait(HOLD_AT_MOST)
            request = urllib.request.Request(UPSTREAM + self.path.removeprefix("/simple/"),
                                             headers={"Accept": "text/html"})
            try:
                with urllib.request.urlopen(request, timeout=60) as upstream:
                    body, status = upstream.read(), 200
            except OSError:
                body, status = b"", 404
            try:  # the client may be gone (an interrupted build): harmless
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as port:
        state.url = f"http://127.0.0.1:{port}/simple/"
        try:
            yield state
        finally:
            state.release()  # a held request answers, so the server can shut down


class Running:
    """`pyrlab ARGS…` started in the background, its output collected as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyrlab", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**_CLEAN_ENV, **(env or {})})
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(pipe, into), daemon=True)
                         for pipe, into in ((self.process.stdout, self.stdout),
                                            (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe: object, into: list[str]) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def until(self, what: str, done: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait (bounded) for done(); fail naming `what` when pyrlab ended first."""
        deadline = time.monotonic() + timeout
        while not done():
            assert self.process.poll() is None, \
                f"pyrlab ended before {what}:\n" + "\n".join(self.stderr[-30:])
            assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
            time.sleep(0.2)

    def wait(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    def describe(self) -> str:
        return "\n".join(["stdout:", *self.stdout, "stderr:", *self.stderr])


@pytest.fixture(scope="module")
def index() -> Iterator[HeldIndex]:
    with held_index() as served:
        yield served


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def lab(make_module_lab: Callable[..., Lab], index: HeldIndex, engine: EngineCli) -> Lab:
    """The small case with its Python packages from the held index, built once."""
    made = make_module_lab("small", ENGINE)
    config = made.root / "pyrlab.toml"
    # What `up` needs, set before the first build (the lab port is an input of the image):
    # a free port, folders of its own, and a start script that only sleeps, so that `up`
    # waits for a JupyterLab that never comes.
    (made.root / "sleeper.sh").write_text("#!/bin/sh\nexec sleep 300\n")
    (made.root / "sleeper.sh").chmod(0o755)
    text = config.read_text().replace("ports = { lab = 8888 }",
                                      f"ports = {{ lab = {free_port()} }}")
    config.write_text(text + f"""
[proxy]
pip_index = {json.dumps(index.url)}

[run]
notebooks = {json.dumps(str(made.root / "notebooks"))}
home = {json.dumps(str(made.root / "home"))}
userlab = "sleeper.sh"
""")
    done = made.pyrlab("build")
    assert done.returncode == 0, done.stderr
    return made


# Light packages with no dependencies, one more for each build to interrupt.
EXTRA = iter(["iniconfig", "idna", "pyparsing", "tomli", "toml", "wheel", "ply", "pycparser"])


def grow_list(lab: Lab) -> str:
    package = next(EXTRA)
    with (lab.root / "requirements.txt").open("a") as handle:
        handle.write(f"{package}\n")
    return package


def build(lab: Lab, *extra: str) -> Running:
    return Running("build", "-C", str(lab.root), "--engine", ENGINE, *extra)


@dataclass(frozen=True)
class State:
    """What an interruption must leave as it found: tags, containers, untagged images."""

    tags: dict[str, str | None]
    containers: list[str]
    untagged: set[str]


def state(engine: EngineCli, lab: Lab) -> State:
    label = f"label=org.pyrlab.project={project_key(lab.root)}"
    tags = {ref: engine.image_id(ref) for ref in
            (lab.ref("pylab"), lab.ref("pylab", "previous"), lab.ref("pylab", "trixie"),
             lab.ref("pyrlab-base"))}
    containers = engine("ps", "--all", "--filter", label, "--format", "{{.Names}}").stdout
    images = engine("images", "--all", "--filter", label, "--format",
                    "{{.ID}} {{.Repository}}:{{.Tag}}").stdout.splitlines()
    return State(tags, containers.split(),
                 {line.split()[0] for line in images if line.endswith("<none>:<none>")})


def assert_nothing_changed(before: State, after: State) -> None:
    assert after.tags == before.tags
    assert after.containers == [], after.containers
    assert after.untagged <= before.untagged, after.untagged - before.untagged


def assert_interrupted(run: Running, signum: int) -> None:
    code = run.wait()
    assert code == 128 + signum, run.describe()
    assert run.stderr[-1] == "pyrlab: error: interrupted", run.describe()
    assert not any("Traceback" in line for line in run.stderr), run.describe()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_install_step_moves_no_tag_and_the_next_build_works(
        lab: Lab, engine: EngineCli, index: HeldIndex, signum: int) -> None:
    before = state(engine, lab)
    package = grow_list(lab)
    index.hold()
    run = build(lab)
    try:
        run.until("request to the index (the install step)", index.asked.is_set)
        os.kill(run.pid, signum)  # pyrlab alone, as a supervisor or `kill` does
        assert_interrupted(run, signum)
    finally:
        index.release()
        if run.process.poll() is None:
            run.process.kill()
    assert_nothing_changed(before, state(engine, lab))

    again = lab.pyrlab("build")
    assert again.returncode == 0, again.stderr
    latest = engine.image_id(lab.ref("pylab"))
    assert latest != before.tags[lab.ref("pylab")]
    assert engine.image_id(lab.ref("pylab", "previous")) == before.tags[lab.ref("pylab")]
    shown = engine("run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python",
                   lab.ref("pylab"), "-c",
                   f"import importlib.metadata as m; print(m.version({package!r}))")
    assert shown.stdout.strip(), f"{package} is not in the new {lab.ref('pylab')}"


def test_two_builds_at_once_run_one_after_the_other(lab: Lab, engine: EngineCli,
                                                    index: HeldIndex) -> None:
    before = state(engine, lab)
    grow_list(lab)
    index.hold()
    first = build(lab)
    second: Running | None = None
    try:
        first.until("request to the index (the install step)", index.asked.is_set)
        second = build(lab, "--json")
        waiting = f"waiting for another pyrlab build of this project (pid {first.pid})…"
        second.until("note that it waits", lambda: waiting in second.stderr, timeout=120)
        assert second.process.poll() is None  # it waits, and builds nothing meanwhile
    finally:
        index.release()
    assert first.wait(600) == 0, first.describe()
    assert second.wait(600) == 0, second.describe()
    # The second planned once the first was done: nothing left to build.
    actions = {i["name"]: i["action"] for i in json.loads("\n".join(second.stdout))["images"]}
    assert actions == {"pyrlab-base": "skipped", "pylab": "skipped"}, second.describe()
    latest = engine.image_id(lab.ref("pylab"))
    assert latest not in (None, before.tags[lab.ref("pylab")])
    assert engine.image_id(lab.ref("pylab", "trixie")) == latest
    assert engine.image_id(lab.ref("pylab", "previous")) == before.tags[lab.ref("pylab")]


def test_a_signal_during_the_self_test_removes_its_container_and_the_new_image(
        lab: Lab, engine: EngineCli, tmp_path: Path) -> None:
    """The new package takes a minute to import: SIGTERM comes while the self-test's
    container imports it, after the image was built and before any tag moved."""
    before = state(engine, lab)
    listed = (lab.root / "requirements.txt").read_text()
    wheel = make_wheel(tmp_path, "slowmod", "1.0",
                       {"slowmod.py": "import time\ntime.sleep(60)\n"})
    label = f"label=org.pyrlab.project={project_key(lab.root)}"
    with serve_folder(tmp_path) as url:
        (lab.root / "requirements.txt").write_text(listed + f"slowmod @ {url}/{wheel}\n")
        run = build(lab)
        try:
            run.until("self-test container", lambda: "pyrlab-test-pylab-" in engine(
                "ps", "--filter", label, "--format", "{{.Names}}").stdout)
            time.sleep(1)  # its imports run now
            os.kill(run.pid, signal.SIGTERM)
            assert_interrupted(run, signal.SIGTERM)
        finally:
            if run.process.poll() is None:
                run.process.kill()
            (lab.root / "requirements.txt").write_text(listed)
    assert_nothing_changed(before, state(engine, lab))


def test_up_interrupted_while_it_waits_removes_its_lab(lab: Lab, engine: EngineCli) -> None:
    """The lab's start script only sleeps: `up` waits for JupyterLab until SIGINT."""
    before = state(engine, lab)
    label = f"label=org.pyrlab.project={project_key(lab.root)}"
    run = Running("up", "pylab", "-C", str(lab.root), "--engine", ENGINE, "--timeout", "300")
    try:
        run.until("lab container", lambda: bool(engine(
            "ps", "--filter", label, "--format", "{{.Names}}").stdout.strip()))
        time.sleep(1)  # well inside the wait for JupyterLab
        os.kill(run.pid, signal.SIGINT)
        assert_interrupted(run, signal.SIGINT)
    finally:
        if run.process.poll() is None:
            run.process.kill()
        engine.remove_containers(f"org.pyrlab.project={project_key(lab.root)}")
    assert_nothing_changed(before, state(engine, lab))


def test_up_interrupted_during_its_build_moves_no_tag(lab: Lab, engine: EngineCli,
                                                      index: HeldIndex) -> None:
    before = state(engine, lab)
    listed = (lab.root / "requirements.txt").read_text()
    grow_list(lab)
    index.hold()
    run = Running("up", "pylab", "-C", str(lab.root), "--engine", ENGINE)
    try:
        run.until("request to the index (the install step)", index.asked.is_set)
        os.kill(run.pid, signal.SIGTERM)
        assert_interrupted(run, signal.SIGTERM)
    finally:
        index.release()
        if run.process.poll() is None:
            run.process.kill()
        (lab.root / "requirements.txt").write_text(listed)
    assert_nothing_changed(before, state(engine, lab))


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of pid's child processes, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def test_an_engine_process_killed_midway_is_reported_and_latest_stays(
        lab: Lab, engine: EngineCli, index: HeldIndex) -> None:
    before = state(engine, lab)
    grow_list(lab)
    index.hold()
    run = build(lab)
    try:
        run.until("request to the index (the install step)", index.asked.is_set)
        builders = [pid for pid, cmdline in _children(run.pid)
                    if " buildx build " in f" {cmdline} "]
        assert len(builders) == 1, _children(run.pid)
        os.kill(builders[0], signal.SIGKILL)
        code = run.wait(120)
    finally:
        index.release()
    assert code == 5, run.describe()
    message = next(line for line in run.stderr if line.startswith("pyrlab: error: "))
    assert message.startswith("pyrlab: error: building pylab failed"), run.describe()
    assert "died with signal 9 (SIGKILL)" in message and "no tag was changed" in message
    hint = run.stderr[-1]
    assert hint.startswith("pyrlab: hint: full log: "), run.describe()
    log = Path(hint.removeprefix("pyrlab: hint: full log: "))
    assert log.is_file() and "buildx build" in log.read_text()
    assert_nothing_changed(before, state(engine, lab))


@pytest.mark.parametrize("command", [["build"], ["up", "pylab"], ["ps"]])
def test_an_unreachable_docker_daemon_is_one_clear_error(lab: Lab, command: list[str]) -> None:
    done = run_pyrlab("--engine", "docker", "-C", str(lab.root), *command,
                      env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, timeout=120)
    assert done.returncode == 4, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("pyrlab: error: cannot reach the Docker daemon: "), done.stderr
    assert lines[1] == ("pyrlab: hint: start it with `systemctl start docker` (or run "
                        "`dockerd`), or pick Podman with --engine podman"), done.stderr
    assert len(lines) == 2 and "Traceback" not in done.stderr
