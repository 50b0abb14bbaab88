"""The engine side of other platforms (issue 23, step 4): `--platform` on builds and runs
only where one is asked for, whether this machine can emulate a platform (binfmt_misc, read
from a folder written as the kernel shows it), the error that names the platform and the
fix before anything runs, and the hint for a step that met "exec format error"."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeEngine
from labfiles import pyrlab

from pyrlab.engines import docker as docker_engine
from pyrlab.engines.base import BuildRequest, RunRequest
from pyrlab.engines.docker import DockerBuildx, DockerClassic
from pyrlab.engines.emulation import BINFMT_DIR_ENV, check, host_problem
from pyrlab.engines.podman import Podman
from pyrlab.errors import EXIT_ENGINE, EngineError
from pyrlab.imagebuild.hints import exec_format_hint

IID = Path("/lab/.pyrlab/contexts/.pylab.iid")
ENGINES = [DockerBuildx("docker"), DockerClassic("docker"), Podman("podman")]
# /proc/sys/fs/binfmt_misc/qemu-aarch64 as Debian 12's qemu-user-static registers it.
AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


# --------------------------------------------------------------------------- argv


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: type(e).__name__)
def test_a_build_for_a_platform_says_so_and_the_engine_s_own_says_nothing(engine: object) -> None:
    assert isinstance(engine, DockerBuildx | DockerClassic | Podman)
    request = BuildRequest(context=Path("/c"), tags=("t/pylab/arm64:latest",))
    plain = engine.build_argv(request, IID)
    assert "--platform" not in plain
    argv = engine.build_argv(BuildRequest(context=Path("/c"), tags=("t/pylab/arm64:latest",),
                                          platform="linux/arm64"), IID)
    at = argv.index("--platform")
    assert argv[at + 1] == "linux/arm64"
    assert argv[:at] + argv[at + 2:] == plain  # nothing else moves


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: type(e).__name__)
def test_a_run_for_a_platform_says_so_before_the_image(engine: object) -> None:
    assert isinstance(engine, DockerBuildx | DockerClassic | Podman)
    request = RunRequest(image="t/pylab/arm64:latest", name="t", command=("uname", "-m"))
    plain = engine.run_argv(request)
    assert "--platform" not in plain
    argv = engine.run_argv(RunRequest(image="t/pylab/arm64:latest", name="t",
                                      command=("uname", "-m"), platform="linux/arm64"))
    at = argv.index("--platform")
    assert argv[at + 1] == "linux/arm64" and at < argv.index("t/pylab/arm64:latest")
    assert argv[:at] + argv[at + 2:] == plain


# --------------------------------------------------------------------------- binfmt_misc


@pytest.fixture
def binfmt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder where binfmt_misc is read: not mounted, until a test writes it."""
    folder = tmp_path / "binfmt_misc"
    folder.mkdir()
    monkeypatch.setenv(BINFMT_DIR_ENV, str(folder))
    return folder


def mounted(folder: Path, **entries: str) -> None:
    (folder / "status").write_text("enabled\n")
    (folder / "register").write_text("")
    for name, text in entries.items():
        (folder / name.replace("_", "-")).write_text(text)


def test_a_registered_handler_with_flag_f_is_emulation(binfmt: Path) -> None:
    mounted(binfmt, qemu_aarch64=AARCH64)
    assert host_problem("linux/arm64", "linux/amd64") is None
    # The engine's own platform needs none, whatever binfmt_misc says.
    assert host_problem("linux/amd64", "linux/amd64") is None
    assert host_problem("", "linux/amd64") is None
    # An arm64 machine needs a handler for x86_64.
    assert host_problem("linux/amd64", "linux/arm64") == (
        f"linux/amd64 needs emulation of x86_64 on this linux/arm64 machine: "
        f"{binfmt}/qemu-x86_64 is missing (no handler for x86_64)")


def test_each_way_emulation_can_be_missing_is_named(binfmt: Path) -> None:
    needs = "linux/arm64 needs emulation of aarch64 on this linux/amd64 machine"
    assert host_problem("linux/arm64", "linux/amd64") == (
        f"{needs}, and binfmt_misc is not mounted ({binfmt}/status is missing)")
    mounted(binfmt)
    (binfmt / "status").write_text("disabled\n")
    assert host_problem("linux/arm64", "linux/amd64") == (
        f"{needs}, and binfmt_misc is switched off ({binfmt}/status says disabled)")
    mounted(binfmt, python3_11="enabled\ninterpreter /usr/bin/python3.11\nflags: \n")
    assert host_problem("linux/arm64", "linux/amd64") == (
        f"{needs}: {binfmt}/qemu-aarch64 is missing (no handler for aarch64)")
    mounted(binfmt, qemu_aarch64=AARCH64.replace("enabled", "disabled"))
    assert host_problem("linux/arm64", "linux/amd64") == (
        f"{needs}: {binfmt}/qemu-aarch64 is disabled")
    # qemu-user-binfmt's handler (dynamically linked qemu, no F) works on the host only.
    mounted(binfmt, qemu_aarch64=AARCH64.replace("flags: PF", "flags: P"))
    assert host_problem("linux/arm64", "linux/amd64") == (
        f"{needs}: {binfmt}/qemu-aarch64 lacks flag F (flags: P), so containers, which do "
        "not hold its interpreter, cannot use it")


def test_a_handler_named_otherwise_counts(binfmt: Path) -> None:
    mounted(binfmt, qemu_aarch64=AARCH64.replace("flags: PF", "flags: "),
            aarch64_static=AARCH64.replace("flags: PF", "flags: OCF"))
    assert host_problem("linux/arm64", "linux/amd64") is None


def test_only_an_engine_whose_containers_run_here_is_checked(
        binfmt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    check(engine, ["linux/arm64"])  # the fake says its containers run elsewhere
    monkeypatch.setattr(engine, "runs_here", lambda: True)
    with pytest.raises(EngineError) as caught:
        check(engine, ["linux/amd64", "linux/arm64"])
    assert caught.value.message.startswith(
        "building for linux/arm64 needs emulation of aarch64 on this linux/amd64 machine, "
        "and binfmt_misc is not mounted")
    mounted(binfmt, qemu_aarch64=AARCH64)
    check(engine, ["linux/arm64"])


def test_docker_s_containers_run_here_only_with_a_local_daemon(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no context chosen in a file
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    engine = DockerBuildx("docker")
    assert engine.runs_here()
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")  # rootless
    assert engine.runs_here()
    monkeypatch.setenv("DOCKER_HOST", "ssh://builder")
    assert not engine.runs_here()
    monkeypatch.delenv("DOCKER_HOST")
    (tmp_path / "config.json").write_text('{"currentContext": "desktop-linux"}')
    assert not engine.runs_here()  # Docker Desktop's VM, with emulation of its own
    monkeypatch.setattr(docker_engine.sys, "platform", "darwin")
    (tmp_path / "config.json").write_text("{}")
    assert not engine.runs_here()


def test_podman_s_containers_run_here_unless_it_reaches_another_service(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONTAINER_HOST", "CONTAINER_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    assert Podman("podman").runs_here()
    monkeypatch.setenv("CONTAINER_HOST", "ssh://core@127.0.0.1:2222/run/podman/podman.sock")
    assert not Podman("podman").runs_here()


# --------------------------------------------------------------------------- the commands


def test_a_foreign_platform_without_emulation_is_refused_naming_it_and_the_fix(
        lab: Path, engine: FakeEngine, binfmt: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(engine, "runs_here", lambda: True)
    code, out, err = pyrlab(capsys, "build", "-C", str(lab), "--platform", "linux/arm64")
    assert code == EXIT_ENGINE and out == ""
    assert err == (
        "pyrlab: error: building for linux/arm64 needs emulation of aarch64 on this "
        f"linux/amd64 machine, and binfmt_misc is not mounted ({binfmt}/status is missing)\n"
        "pyrlab: hint: install emulation: sudo apt-get install qemu-user-static "
        "binfmt-support (Debian, Ubuntu; or `bash .ci/setup-host.sh --emulation` in pyrlab's "
        "source tree, which also mounts binfmt_misc and enables qemu-aarch64); check: `fake "
        "run --rm --platform linux/arm64 IMAGE uname -m` with any linux/arm64 IMAGE says "
        "aarch64\n")
    assert engine.built == [] and engine.runs == []
    # With emulation, the build plans the platform's images, on its base.
    mounted(binfmt, qemu_aarch64=AARCH64)
    code, out, err = pyrlab(capsys, "build", "-C", str(lab), "--platform", "linux/arm64",
                            "--dry-run")
    assert code == 0, err
    assert out.splitlines()[0].split() == ["base", "pull", "t/debian/arm64:trixie:", "missing"]
    assert ["pylab", "(linux/arm64)", "build", "not", "built", "yet"] in [
        line.split() for line in out.splitlines()]
    # The engine's own platform is never checked.
    (binfmt / "status").unlink()
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--dry-run", "--platform",
                          "linux/amd64")
    assert code == 0, err


# --------------------------------------------------------------------------- a failed step


def test_exec_format_error_in_a_failed_step_says_why() -> None:
    tail = ["#7 [3/3] RUN /run/pyrlab/bin/apt-install", "#7 0.311 exec /bin/bash: exec format error"]
    foreign = exec_format_hint(tail, "linux/arm64", "linux/amd64")
    assert foreign is not None
    assert foreign.startswith("the engine's machine (linux/amd64) cannot run linux/arm64's "
                              "programs in a container: it has no emulation of aarch64 with "
                              "flag F; install emulation: sudo apt-get install qemu-user-static")
    native = exec_format_hint(
        ['{"msg":"exec container process `/bin/bash`: Exec format error","level":"error"}'],
        "", "linux/amd64")
    assert native is not None and native.startswith(
        "a program this step runs is built for another platform than the engine's own "
        "(linux/amd64): is the base image another platform's?")
    assert exec_format_hint(["E: Unable to locate package nope"], "linux/arm64",
                            "linux/amd64") is None
