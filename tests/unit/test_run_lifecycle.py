"""up / down / restart / ps / url / logs / shell through the command line, against the
in-memory engine (fakes.py): what the user sees, and what would have been asked of the engine."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import BASE_ID, FakeEngine
from labfiles import init_lab

from pyrlab.cli import main
from pyrlab.engines.base import Engine, HealthCheckRun, RunRequest
from pyrlab.errors import EngineError
from pyrlab.imagebuild.orchestration import BuildOptions, nothing_to_do
from pyrlab.imagebuild.planner import Target, make_plan
from pyrlab.launch.plan import LABEL_PLATFORM
from pyrlab.launch.ready import NotReady
from pyrlab.run import start as start_module


@pytest.fixture
def engine(use_engine: Callable[[FakeEngine], FakeEngine],
           monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = use_engine(FakeEngine("docker"))  # the engine's own words read as Docker's
    # The lab "answers" at once; how waiting works is tested separately below.
    monkeypatch.setattr(start_module, "wait_ready", lambda *a, **k: 0.5)
    return fake


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = init_lab(tmp_path / "lab")
    # Folders outside the project: this machine's settings, from the user's own file.
    user_file = Path(os.environ["PYRLAB_USER_CONFIG"])
    user_file.parent.mkdir(parents=True)
    user_file.write_text(f"[run]\nnotebooks = {json.dumps(str(tmp_path / 'nb'))}\n"
                         f"home = {json.dumps(str(tmp_path / 'home'))}\n")
    monkeypatch.setenv("PYRLAB_IMAGES__PYLAB__PORTS", json_ports(free_port(), 0, 0))
    monkeypatch.chdir(root)
    yield root


def json_ports(lab: int, dtale: int, tensorboard: int) -> str:
    extra = "".join(f", {n} = {p}" for n, p in (("dtale", dtale), ("tensorboard", tensorboard))
                    if p)
    return f"{{ lab = {lab}{extra} }}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lab_port() -> int:
    return int(os.environ["PYRLAB_IMAGES__PYLAB__PORTS"].split("=")[1].split(",")[0].strip(" }"))


@pytest.fixture
def built(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every image present; what `up` asked the builder for is recorded."""
    for name in ("pyrlab-base", "pylab", "rlab-base", "rlab"):
        engine.add_image(f"{name}:latest", "sha256:" + name[0] * 64)
    engine.add_image("pyrlab-debian:trixie", BASE_ID)
    asked: list[list[str]] = []

    def fake_build(project: Any, eng: Engine, options: BuildOptions, *,
                   rendered: list[Target] | None = None) -> None:
        plan = make_plan(project, eng, options.names, rendered=rendered)
        if not nothing_to_do(plan):
            asked.append([p.target.name for p in plan.images if p.decision.build])

    monkeypatch.setattr("pyrlab.imagebuild.orchestration.run_build", fake_build)
    return asked


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- up


def test_up_starts_and_prints_the_url_with_a_stored_token(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    port = lab_port()
    code, out, err = run(capsys, "up", "pylab")
    assert code == 0, err
    token_file = lab / ".pyrlab" / "tokens" / f"pyrlab-pylab-{port}.token"
    token = token_file.read_text().strip()
    assert len(token) == 48
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    assert re.fullmatch(rf"pylab is up \([0-9.]+ s\): {re.escape(url)}\n", out)
    assert "engine: docker (docker), from auto-detection" in err
    request = engine.runs[0]
    assert request.env["JUPYTER_TOKEN"] == token
    # The mounted folders were made for the lab (owned by its UID when run as root).
    assert (lab.parent / "nb").is_dir() and (lab.parent / "home" / "work").is_dir()
    # Images present: nothing to build (the plan said every image is out of date, because
    # the fake images carry no labels, so the builder was asked).
    assert built == [["pyrlab-base", "pylab"]]


def test_up_again_finds_the_running_lab(lab: Path, engine: FakeEngine, built: list[list[str]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "up", "pylab")[0] == 0
    first_url = run(capsys, "url", "pylab")[1]
    code, out, err = run(capsys, "up", "pylab", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["already_running"] is True
    assert data["url"] + "\n" == first_url
    assert len(engine.runs) == 1


def test_up_replaces_a_stopped_lab_and_keeps_its_token(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "up", "pylab")[0] == 0
    name = engine.runs[0].name
    engine.containers[name]["State"].update(Status="exited", ExitCode=137)
    assert run(capsys, "up", "pylab")[0] == 0
    assert ("rm", name) in engine.calls
    assert [r.env["JUPYTER_TOKEN"] for r in engine.runs] == \
        [engine.runs[0].env["JUPYTER_TOKEN"]] * 2


def test_up_no_build_with_a_missing_image(lab: Path, engine: FakeEngine,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "up", "pylab", "--no-build")
    assert (code, out) == (6, "")
    assert err.splitlines()[-2:] == [
        "pyrlab: error: image pylab:latest is not built",
        ("pyrlab: hint: build it with `pyrlab build pylab`, or run `pyrlab up pylab` without "
         "--no-build"),
    ]
    assert engine.runs == []


def test_up_no_build_with_an_outdated_image_says_so(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "up", "pylab", "--no-build")
    assert code == 0
    assert "note: pylab:latest is out of date" in err
    assert built == []


def test_up_starts_another_platform_s_image_as_a_lab_of_its_own(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """`up --platform linux/arm64 --no-build`: that platform's image (built elsewhere, until
    pyrlab builds it), under its own name, token file and label; found again by that name,
    restarted as that platform's, and `ps` names the platform."""
    engine.add_image("pylab/arm64:latest", "sha256:" + "a" * 64)
    port = lab_port()
    code, _, err = run(capsys, "up", "pylab", "--platform", "arm64", "--no-build")
    assert code == 0, err
    request = engine.runs[-1]
    assert (request.name, request.image) == (f"pyrlab-pylab-{port}__arm64",
                                             "pylab/arm64:latest")
    assert request.labels[LABEL_PLATFORM] == "linux/arm64"
    token_file = lab / ".pyrlab" / "tokens" / f"pyrlab-pylab-{port}__arm64.token"
    assert token_file.read_text().strip() == request.env["JUPYTER_TOKEN"]
    code, out, _ = run(capsys, "up", "pylab", "--platform", "linux/arm64", "--no-build",
                       "--json")
    assert json.loads(out)["already_running"] is True and len(engine.runs) == 1
    header, row = run(capsys, "ps")[1].splitlines()
    assert header.split()[:2] == ["IMAGE", "PLATFORM"]
    assert row.split()[:2] == ["pylab", "linux/arm64"]
    code, _, err = run(capsys, "restart", "pylab")
    assert code == 0, err
    again = engine.runs[-1]
    assert (again.name, again.image, again.env["JUPYTER_TOKEN"]) == (
        request.name, request.image, request.env["JUPYTER_TOKEN"])
    assert again.labels[LABEL_PLATFORM] == "linux/arm64"
    # Nothing of the engine's own: no build asked, its image's name untouched.
    assert built == [] and engine.refs["pylab:latest"] == "sha256:" + "p" * 64


def test_up_builds_only_what_the_image_needs(lab: Path, engine: FakeEngine,
                                              built: list[list[str]],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "up", "rlab")[0] == 0
    assert built == [["pyrlab-base", "rlab-base", "rlab"]]


def test_up_refuses_a_port_held_by_another_program(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out, err = run(capsys, "up", "pylab", "--port", str(port))
    assert (code, out) == (6, "")
    assert f"pyrlab: error: port {port} on 127.0.0.1 is already in use by another program" in err
    assert "--port N" in err
    assert engine.runs == []
    assert built == []  # refused before building anything


def test_up_names_the_lab_that_holds_the_port(lab: Path, engine: FakeEngine,
                                               built: list[list[str]],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert run(capsys, "up", "rlab", "--port", str(port))[0] == 0
    with socket.socket() as holder:  # what the engine's port forwarder holds now
        holder.bind(("127.0.0.1", port))
        holder.listen()
        code, _, err = run(capsys, "up", "pylab", "--port", str(port))
    assert code == 6
    assert (f"pyrlab: error: port {port} is in use by pyrlab-rlab-{port}, a lab of rlab in "
            "this project") in err
    assert "`pyrlab down rlab`" in err


def test_up_leaves_out_busy_extra_ports(lab: Path, engine: FakeEngine, built: list[list[str]],
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        dtale = holder.getsockname()[1]
        monkeypatch.setenv("PYRLAB_IMAGES__PYLAB__PORTS", json_ports(free_port(), dtale, 0))
        code, _, err = run(capsys, "up", "pylab")
    assert code == 0, err
    assert f"note: the dtale port {dtale} is in use; this lab does not publish it" in err
    assert len(engine.runs[0].ports) == 1


def test_up_plans_the_lab_once(lab: Path, engine: FakeEngine, built: list[list[str]],
                              capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    planned: list[str] = []
    plan_lab = start_module.plan_lab

    def spy(config: Any, image: str, **kwargs: Any) -> Any:
        planned.append(image)
        return plan_lab(config, image, **kwargs)

    monkeypatch.setattr(start_module, "plan_lab", spy)
    with socket.socket() as holder:  # a busy extra port: the plan is finished without it
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        dtale = holder.getsockname()[1]
        monkeypatch.setenv("PYRLAB_IMAGES__PYLAB__PORTS", json_ports(free_port(), dtale, 0))
        code, _, err = run(capsys, "up", "pylab")
    assert code == 0, err
    assert planned == ["pylab"]
    request = engine.runs[0]
    assert len(request.ports) == 1 and len(request.env["JUPYTER_TOKEN"]) == 48
    # restart checks the plan before it stops the lab, and starts the lab from that plan.
    code, _, err = run(capsys, "restart", "pylab")
    assert code == 0, err
    assert planned == ["pylab", "pylab"]
    assert engine.runs[1].env["JUPYTER_TOKEN"] == request.env["JUPYTER_TOKEN"]


def test_a_lab_of_another_project_on_the_same_port(
        lab: Path, engine: FakeEngine, built: list[list[str]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "up", "pylab")[0] == 0
    other = init_lab(tmp_path / "other")
    code, _, err = run(capsys, "up", "pylab", "-C", str(other))
    assert code == 6
    assert f"a lab of the project {lab}" in err
    assert f"pyrlab -C {lab} down pylab" in err
    # Neither project sees the other's labs.
    assert run(capsys, "ps", "-C", str(other))[1] == \
        "no labs (start one with `pyrlab up pylab`)\n"


def test_up_no_build_tells_the_port_problem_before_the_image_check(
        lab: Path, engine: FakeEngine, built: list[list[str]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The image is checked while the engine is asked about the port's container; what the
    # check found comes after the container's verdict, as it did when one followed the other.
    assert run(capsys, "up", "pylab")[0] == 0
    other = init_lab(tmp_path / "other")
    (other / "requirements.txt").write_text("numpy\n")  # its pylab differs: out of date
    code, _, err = run(capsys, "up", "pylab", "--no-build", "-C", str(other))
    assert code == 6
    assert f"a lab of the project {lab}" in err
    assert "out of date" not in err and "is not built" not in err
    assert len(engine.runs) == 1


def test_a_lab_that_exits_fails_with_its_log(lab: Path, engine: FakeEngine,
                                              built: list[list[str]],
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any, **kwargs: Any) -> float:
        raise NotReady("the container exited with code 1")

    monkeypatch.setattr(start_module, "wait_ready", crash)
    engine.log_text = "starting\nSystemExit: pyrlab: JUPYTER_TOKEN is not set\n"
    code, out, err = run(capsys, "up", "pylab")
    assert (code, out) == (6, "")
    lines = err.splitlines()
    assert f"the last lines of pyrlab-pylab-{lab_port()}'s log:" in lines
    assert "  | SystemExit: pyrlab: JUPYTER_TOKEN is not set" in lines
    assert "pyrlab: error: pylab did not start: the container exited with code 1" in lines
    assert "`pyrlab logs pylab`" in lines[-1]


def test_up_with_unknown_or_base_images(lab: Path, engine: FakeEngine,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "up", "nope")
    assert code == 6 and "unknown image 'nope'" in err
    assert "engine:" not in err  # the mistake is reported before looking for an engine
    code, _, err = run(capsys, "up", "pyrlab-base")
    assert code == 6 and "'pyrlab-base' has no lab port" in err


def test_engine_errors_on_run_are_run_errors(lab: Path, engine: FakeEngine,
                                             built: list[list[str]],
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: RunRequest) -> str:
        raise EngineError("docker run failed: Bind for 127.0.0.1:8888 failed: port is "
                          "already allocated")

    monkeypatch.setattr(engine, "run", refuse)
    code, _, err = run(capsys, "up", "pylab")
    assert code == 6
    assert "a port of pylab is already in use" in err


# --------------------------------------------------------------------------- the others


def test_down_stops_removes_and_keeps_the_token(lab: Path, engine: FakeEngine,
                                                built: list[list[str]],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "up", "pylab")[0] == 0
    name = engine.runs[0].name
    assert run(capsys, "down", "pylab") == (0, f"stopped and removed {name}\n", "")
    assert engine.calls == [("stop", name), ("rm", name)]
    assert (lab / ".pyrlab" / "tokens" / f"{name}.token").is_file()
    assert run(capsys, "down", "pylab") == (0, "no lab of pylab to stop\n", "")
    assert run(capsys, "up", "pylab")[0] == 0
    assert engine.runs[1].env["JUPYTER_TOKEN"] == engine.runs[0].env[
        "JUPYTER_TOKEN"]


def test_down_all_and_usage(lab: Path, engine: FakeEngine, built: list[list[str]],
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "up", "pylab")[0] == 0
    assert run(capsys, "up", "rlab", "--port", str(free_port()))[0] == 0
    code, out, _ = run(capsys, "down", "--all", "--json")
    assert code == 0 and len(json.loads(out)["removed"]) == 2
    assert engine.containers == {}
    code, _, err = run(capsys, "down")
    assert code == 2 and "name one image (pyrlab down pylab) or use --all" in err


def test_ps(lab: Path, engine: FakeEngine, built: list[list[str]],
            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "ps") == (0, "no labs (start one with `pyrlab up pylab`)\n", "")
    assert run(capsys, "up", "pylab")[0] == 0
    port = lab_port()
    out = run(capsys, "ps")[1]
    header, row = out.splitlines()
    assert header.split() == ["IMAGE", "STATUS", "UPTIME", "URL", "PORTS"]
    assert row.split()[:2] == ["pylab", "healthy"]
    assert f"http://127.0.0.1:{port}/lab " in row and f"127.0.0.1:{port}->{port}" in row
    assert "token" not in out  # `url` prints the secret, `ps` does not
    data = json.loads(run(capsys, "ps", "--json")[1])
    assert data[0]["image"] == "pylab" and data[0]["health"] == "healthy"
    assert data[0]["uptime_seconds"] > 0


def test_url(lab: Path, engine: FakeEngine, built: list[list[str]],
             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "url", "pylab")
    assert code == 6
    assert err == ("pyrlab: error: no lab of pylab is running\n"
                   "pyrlab: hint: start one: pyrlab up pylab\n")
    assert run(capsys, "up", "pylab")[0] == 0
    token = engine.runs[0].env["JUPYTER_TOKEN"]
    assert run(capsys, "url", "pylab")[1] == f"http://127.0.0.1:{lab_port()}/lab?token={token}\n"


def test_url_and_ps_show_every_named_port(lab: Path, engine: FakeEngine,
                                          built: list[list[str]], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    port, dtale, board = free_port(), free_port(), free_port()
    monkeypatch.setenv("PYRLAB_IMAGES__PYLAB__PORTS", json_ports(port, dtale, board))
    assert run(capsys, "up", "pylab")[0] == 0
    token = engine.runs[0].env["JUPYTER_TOKEN"]
    lab_url = f"http://127.0.0.1:{port}/lab?token={token}"
    # JupyterLab's URL first and alone on its line, then one line per named port.
    assert run(capsys, "url", "pylab")[1] == (f"{lab_url}\n"
                                              f"dtale: http://127.0.0.1:{dtale}/\n"
                                              f"tensorboard: http://127.0.0.1:{board}/\n")
    data = json.loads(run(capsys, "url", "pylab", "--json")[1])
    assert data["url"] == lab_url
    assert data["services"] == [
        {"name": "lab", "port": port, "url": lab_url},
        {"name": "dtale", "port": dtale, "url": f"http://127.0.0.1:{dtale}/"},
        {"name": "tensorboard", "port": board, "url": f"http://127.0.0.1:{board}/"}]
    header, row, dtale_row, board_row = run(capsys, "ps")[1].splitlines()
    assert header.split() == ["IMAGE", "STATUS", "UPTIME", "URL", "PORTS"]
    assert row.split()[:2] == ["pylab", "healthy"]
    assert row.split()[-2:] == [f"http://127.0.0.1:{port}/lab", f"127.0.0.1:{port}->{port}"]
    assert dtale_row.split() == ["dtale", f"http://127.0.0.1:{dtale}/",
                                 f"127.0.0.1:{dtale}->{dtale}"]
    assert board_row.split() == ["tensorboard", f"http://127.0.0.1:{board}/",
                                 f"127.0.0.1:{board}->{board}"]
    # The URLs line up under the header's URL column.
    column = header.index("URL")
    assert {line.index("http") for line in (row, dtale_row, board_row)} == {column}
    listed = json.loads(run(capsys, "ps", "--json")[1])[0]
    assert listed["services"] == [
        {"name": "lab", "port": port, "url": f"http://127.0.0.1:{port}/lab"},
        {"name": "dtale", "port": dtale, "url": f"http://127.0.0.1:{dtale}/"},
        {"name": "tensorboard", "port": board, "url": f"http://127.0.0.1:{board}/"}]


def test_a_busy_named_port_is_not_listed(lab: Path, engine: FakeEngine, built: list[list[str]],
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    port, board = free_port(), free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        dtale = holder.getsockname()[1]
        monkeypatch.setenv("PYRLAB_IMAGES__PYLAB__PORTS", json_ports(port, dtale, board))
        assert run(capsys, "up", "pylab")[0] == 0
    out = run(capsys, "url", "pylab")[1].splitlines()
    assert out[1:] == [f"tensorboard: http://127.0.0.1:{board}/"]


def test_url_of_a_lab_published_on_all_interfaces(lab: Path, engine: FakeEngine,
                                                  built: list[list[str]],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    port, board = free_port(), free_port()
    monkeypatch.setenv("PYRLAB_IMAGES__PYLAB__PORTS", json_ports(port, 0, board))
    monkeypatch.setenv("PYRLAB_RUN__BIND", "0.0.0.0")
    assert run(capsys, "up", "pylab")[0] == 0
    # Reached from this host at 127.0.0.1, whatever the address it is published on.
    assert run(capsys, "url", "pylab")[1].splitlines()[1] == \
        f"tensorboard: http://127.0.0.1:{board}/"


class PodmanLike(FakeEngine):
    """An engine whose health checks run only when asked (Podman without systemd)."""

    def __init__(self, problem: str = "") -> None:
        super().__init__("docker")
        self.problem = problem
        self.checked: list[str] = []

    def run(self, request: RunRequest) -> str:
        out = super().run(request)
        self.containers[request.name]["State"]["Health"] = {"Status": "starting"}
        return out

    def check_health(self, name: str) -> HealthCheckRun:
        self.checked.append(name)
        if self.problem:
            return HealthCheckRun(ran=False, problem=self.problem)
        self.containers[name]["State"]["Health"] = {"Status": "healthy"}
        return HealthCheckRun(ran=True)


def test_up_and_ps_run_a_health_check_the_engine_would_not(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        use_engine: Callable[[FakeEngine], FakeEngine],
        capsys: pytest.CaptureFixture[str]) -> None:
    podman = use_engine(PodmanLike())
    podman.images, podman.refs = engine.images, engine.refs
    assert run(capsys, "up", "pylab")[0] == 0
    name = f"pyrlab-pylab-{lab_port()}"
    assert podman.checked == [name]  # `up`: JupyterLab answers, so record it now
    assert json.loads(run(capsys, "ps", "--json")[1])[0]["health"] == "healthy"
    # `ps` checks again: a record left from the last check would hide a server that died.
    assert podman.checked == [name, name]
    podman.containers[name]["State"]["Status"] = "exited"
    assert json.loads(run(capsys, "ps", "--json")[1])[0]["health_note"] is None
    assert podman.checked == [name, name]  # a stopped lab has no health to check


def test_ps_says_why_the_health_is_unknown(lab: Path, engine: FakeEngine,
                                           built: list[list[str]],
                                           use_engine: Callable[[FakeEngine], FakeEngine],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    problem = "`podman healthcheck run pyrlab-pylab-1` failed (exit code 125): boom"
    podman = use_engine(PodmanLike(problem))
    podman.images, podman.refs = engine.images, engine.refs
    assert run(capsys, "up", "pylab")[0] == 0  # `up` waits for JupyterLab itself
    name = f"pyrlab-pylab-{lab_port()}"
    lines = run(capsys, "ps")[1].splitlines()
    assert lines[1].split()[:2] == ["pylab", "starting"]
    assert lines[-1] == f"note: {name}: health unknown: {problem}"
    listed = json.loads(run(capsys, "ps", "--json")[1])[0]
    assert (listed["health"], listed["health_note"]) == ("starting", problem)


def test_restart_keeps_port_and_token(lab: Path, engine: FakeEngine, built: list[list[str]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert run(capsys, "up", "pylab", "--port", str(port))[0] == 0
    code, _, err = run(capsys, "restart", "pylab")
    assert code == 0, err
    first, second = engine.runs
    assert first.name == second.name == f"pyrlab-pylab-{port}"
    assert first.env["JUPYTER_TOKEN"] == second.env["JUPYTER_TOKEN"]
    assert ("stop", first.name) in engine.calls
    assert built == [["pyrlab-base", "pylab"]]  # restart itself builds nothing


def test_shell_and_logs_argv(lab: Path, engine: FakeEngine, built: list[list[str]],
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr("pyrlab.proc.interactive",
                        lambda argv, env=None: ran.append(list(argv)) or 3)
    assert run(capsys, "up", "pylab")[0] == 0
    name = engine.runs[0].name
    assert run(capsys, "shell", "pylab", "--", "id", "-u")[0] == 3  # the command's exit code
    assert ran[-1] == ["docker", "exec", "--interactive", "--workdir", "/home/notebook/work",
                       name, "id", "-u"]
    assert run(capsys, "logs", "pylab", "-f", "-n", "5")[0] == 3
    assert ran[-1] == ["docker", "logs", "--follow", "--tail", "5", name]
    code, _, err = run(capsys, "shell", "--root", "pylab")
    assert code == 6 and "run.sudo = true" in err
    # A crashed lab still has a log to read.
    engine.containers[name]["State"].update(Status="exited", ExitCode=1)
    assert run(capsys, "logs", "pylab")[0] == 3
    assert run(capsys, "shell", "pylab")[0] == 6


# --------------------------------------------------------------------------- no silent privilege


def test_up_refuses_before_building_or_starting(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYRLAB_RUN__DOCKER_ARGS", '["--cap-add=NET_ADMIN"]')
    code, out, err = run(capsys, "up", "pylab")
    assert code == 3
    assert err.splitlines()[-1] == (
        "pyrlab: error: pyrlab.toml: run.docker_args: '--cap-add=NET_ADMIN' widens what the "
        "lab may do on the host (from environment PYRLAB_RUN__DOCKER_ARGS); pyrlab up "
        "--allow-unsafe allows it")
    assert (out, built, engine.runs) == ("", [], [])
    code, _, err = run(capsys, "up", "pylab", "--allow-unsafe")
    assert code == 0, err
    assert engine.runs[0].extra_args == ("--cap-add=NET_ADMIN",)
    assert ("pyrlab: warning: run.docker_args: '--cap-add=NET_ADMIN' widens what the lab may do "
            "on the host; allowed by --allow-unsafe") in err.splitlines()


def test_restart_refuses_before_stopping_the_running_lab(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, "up", "pylab")[0] == 0
    monkeypatch.setenv("PYRLAB_RUN__UID", "0")
    code, _, err = run(capsys, "restart", "pylab")
    assert code == 3
    assert "pyrlab restart --allow-unsafe allows it" in err
    assert engine.calls == [] and len(engine.runs) == 1
    code, _, err = run(capsys, "restart", "pylab", "--allow-unsafe")
    assert code == 0, err
    assert engine.runs[-1].user is not None
    assert engine.runs[-1].user.startswith("0:")


def test_up_warns_about_a_public_bind_and_sudo(
        lab: Path, engine: FakeEngine, built: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "up", "pylab", "--set", "run.bind=0.0.0.0",
                       "--set", "run.sudo=true")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("pyrlab: warning:")]
    assert warnings == [
        ("pyrlab: warning: run.bind = 0.0.0.0: the lab's ports are published to every machine "
        "that can reach this one (the token still guards JupyterLab)"),
        ("pyrlab: warning: run.sudo = true: the notebook user can become root in the lab "
        "(sudo, the engine's default capabilities)")]
    code, _, err = run(capsys, "up", "pylab", "--set", "run.bind=127.0.0.1")
    assert "pyrlab: warning:" not in err
