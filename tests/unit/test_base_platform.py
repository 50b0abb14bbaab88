"""A base for another platform (issue 23, step 2): `pyrlab bootstrap --platform linux/arm64`
on an amd64 machine (mmdebstrap --arch under emulation, an image configuration that says
arm64, the name `…/arm64:TAG`), and a registry base pulled for a platform while the host's
name keeps its image. The host's platform renders, runs and names exactly as before.

mmdebstrap and arch-test are small scripts on PATH here (the real bootstrap is
tests/integration/test_foreign_base.py); the mirror is a local HTTP server with a
Release file; the engine is the fake one, whose `load` reads the archive as Docker does.
"""

from __future__ import annotations

import http.server
import io
import json
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakes import FakeEngine

from pyrlab import baseimage, rootfs
from pyrlab.baseimage import check_emulation, choose_tool, import_base, pull_base, tool_argv
from pyrlab.cli import main
from pyrlab.engines.base import ImageInfo
from pyrlab.engines.emulation import BINFMT_DIR_ENV, binfmt_dir
from pyrlab.errors import BuildError, EngineError, UsageError
from pyrlab.imagebuild.executor import use_locked_base

HOST = "linux/amd64"  # the fake engine's, and this machine's as these tests set it
ARM = "linux/arm64"
EPOCH = 1795252544  # Sat, 21 Nov 2026 09:15:44 UTC, RELEASE's Date
RELEASE = b"Origin: Debian\nCodename: trixie\nDate: Sat, 21 Nov 2026 09:15:44 UTC\n"

# The mmdebstrap stand-in: records its argv, writes a tiny root file system tarball with
# the apt list whose Release date the image is stamped with.
MMDEBSTRAP = """#!%s
import io, json, os, sys, tarfile
open(os.environ["ARGV_LOG"], "a").write(json.dumps(sys.argv[1:]) + "\\n")
target = sys.argv[-2]
with tarfile.open(target, "w") as tar:
    for name, data in (("./etc/debian_version", b"13.2\\n"),
                       ("./var/lib/apt/lists/m_debian_dists_trixie_InRelease", %r)):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
print("I: done")
"""


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This machine as an amd64 one with emulation of arm64 registered, mmdebstrap and
    arch-test on PATH; returns the file the mmdebstrap stand-in writes its argv to."""
    monkeypatch.setattr(baseimage, "host_platform", lambda: HOST)
    monkeypatch.setattr(rootfs, "architecture", lambda: "amd64")
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64-static\n"
                                         "flags: PF\n")
    (binfmt / "status").write_text("enabled\n")
    monkeypatch.setenv(BINFMT_DIR_ENV, str(binfmt))
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "mmdebstrap").write_text(MMDEBSTRAP % (sys.executable, RELEASE))
    (tools / "arch-test").write_text("#!/bin/sh\nexit 0\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))  # not the machine's own mmdebstrap
    argv_log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("ARGV_LOG", str(argv_log))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("PYRLAB_STATE_DIR", str(tmp_path / "state"))
    return argv_log


@pytest.fixture
def mirror() -> Iterator[str]:
    """A Debian mirror on 127.0.0.1 that has trixie's InRelease (all the bootstrap reads
    of it: the stand-in downloads nothing)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/debian/dists/trixie/InRelease"
            self.send_response(200 if found else 404)
            self.end_headers()
            if found:
                self.wfile.write(RELEASE)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/debian"
    server.shutdown()
    server.server_close()


def argvs(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


# --------------------------------------------------------------------------- the image


def test_the_host_config_is_todays_and_another_platform_changes_only_its_architecture(
        ) -> None:
    config = rootfs.ImageConfig(labels={"org.pyrlab.bootstrap": "trixie"})
    host = config.render("d" * 64, EPOCH)
    # Byte for byte what pyrlab wrote before platforms: a bootstrapped base keeps its ID.
    assert host == (
        '{"architecture":"' + rootfs.architecture() + '","config":{"Cmd":["/bin/bash"],'
        '"Labels":{"org.pyrlab.bootstrap":"trixie"}},"created":"2026-11-21T09:15:44Z",'
        '"history":[{"created":"2026-11-21T09:15:44Z","created_by":"pyrlab bootstrap"}],'
        '"os":"linux","rootfs":{"diff_ids":["sha256:' + "d" * 64 + '"],"type":"layers"}}'
    ).encode()
    assert config.render("d" * 64, EPOCH, rootfs.architecture()) == host
    arm = json.loads(config.render("d" * 64, EPOCH, "arm64"))
    # No variant: what an arm64 host writes for its own, so the same packages give the
    # same ID wherever they were bootstrapped (Docker 20.10 matches linux/arm64 to it).
    assert arm == {**json.loads(host), "architecture": "arm64"}


def test_the_host_argv_is_unchanged_and_another_platform_adds_its_debian_arch() -> None:
    host = tool_argv("mmdebstrap", "trixie", Path("/t/rootfs.tar"), "http://m/debian")
    assert host == ["mmdebstrap", "--verbose", "--variant=minbase", "--mode=auto",
                    "--format=tar", "--skip=cleanup/apt/lists", "trixie", "/t/rootfs.tar",
                    "http://m/debian"]
    arm = tool_argv("mmdebstrap", "trixie", Path("/t/rootfs.tar"), "http://m/debian",
                    platform=ARM)
    assert arm == [*host[:6], "--arch=arm64", *host[6:]]


def test_another_platform_needs_mmdebstrap_and_arch_test(
        machine: Path, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    (tools / "mmdebstrap").rename(tools / "debootstrap")
    with pytest.raises(UsageError, match="bootstrapping linux/arm64 needs mmdebstrap") as caught:
        choose_tool(ARM)
    assert caught.value.hint == "apt-get install mmdebstrap arch-test"
    (tools / "debootstrap").rename(tools / "mmdebstrap")
    (tools / "arch-test").unlink()
    with pytest.raises(UsageError, match="needs arch-test") as caught:
        choose_tool(ARM)
    assert caught.value.hint == "apt-get install arch-test"
    assert choose_tool(HOST) == str(tools / "mmdebstrap")  # the host's: as before


def test_without_emulation_the_error_names_the_platform_and_the_fix(machine: Path) -> None:
    entry = binfmt_dir() / "qemu-aarch64"
    check_emulation(ARM)  # registered and enabled
    check_emulation(HOST)
    entry.write_text("disabled\n")
    with pytest.raises(UsageError, match="qemu-aarch64 is disabled"):
        check_emulation(ARM)
    entry.unlink()
    with pytest.raises(UsageError) as caught:
        check_emulation(ARM)
    assert str(caught.value) == (f"bootstrapping linux/arm64 needs emulation of aarch64 on "
                                 f"this linux/amd64 machine: {entry} is missing (no handler "
                                 "for aarch64)")
    assert "apt-get install qemu-user-static binfmt-support" in (caught.value.hint or "")


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_for_arm64_loads_an_arm64_image_under_its_platform_name(
        machine: Path, mirror: str, engine: FakeEngine, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bootstrap", "-C", str(tmp_path), "--platform", "linux/arm64/v8",
                 "--mirror", mirror, "--tag", "pyrlab/debian:trixie", "--json"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert (data["ref"], data["platform"]) == ("pyrlab/debian/arm64:trixie", ARM)
    assert argvs(machine)[0][4:6] == ["--skip=cleanup/apt/lists", "--arch=arm64"]
    info = engine.image("pyrlab/debian/arm64:trixie")
    assert info is not None and info.id == data["id"]
    assert info.platform == ARM and info.labels == {"org.pyrlab.bootstrap": "trixie"}
    assert engine.image("pyrlab/debian:trixie") is None  # the host's name is not touched

    # The host's platform, named: today's bootstrap, name and image configuration.
    assert main(["bootstrap", "-C", str(tmp_path), "--platform", HOST, "--mirror", mirror,
                 "--tag", "pyrlab/debian:trixie", "--json"]) == 0
    native = json.loads(capsys.readouterr().out)
    assert (native["ref"], native["platform"]) == ("pyrlab/debian:trixie", HOST)
    assert "--arch=arm64" not in argvs(machine)[1]
    assert engine.image("pyrlab/debian:trixie").platform == HOST  # type: ignore[union-attr]
    assert native["id"] != data["id"]  # same files, another architecture: another image


def test_bootstrap_for_arm64_says_where_it_went(
        machine: Path, mirror: str, engine: FakeEngine, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bootstrap", "-C", str(tmp_path), "--platform", "arm64",
                 "--mirror", mirror]) == 0
    out = capsys.readouterr().out
    assert "pyrlab-debian/arm64:trixie (" in out and "Debian trixie for linux/arm64" in out
    assert 'whose [base] image is "pyrlab-debian:trixie" starts from it' in out


def test_bootstrap_without_emulation_fails_before_downloading(
        machine: Path, mirror: str, engine: FakeEngine, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (binfmt_dir() / "qemu-aarch64").unlink()
    assert main(["bootstrap", "-C", str(tmp_path), "--platform", "linux/arm64",
                 "--mirror", mirror]) == 2
    err = capsys.readouterr().err
    assert "bootstrapping linux/arm64 needs emulation of aarch64" in err
    assert "qemu-user-static" in err and "Traceback" not in err
    assert not machine.exists()  # mmdebstrap never ran


class HostArchLoad(FakeEngine):
    """An engine whose `load` ignores the configuration's architecture."""

    def load(self, archive: Path) -> list[str]:
        loaded = super().load(archive)
        self.image_platforms.pop(loaded[0], None)
        return loaded


def test_an_engine_that_loads_the_base_as_its_own_platform_is_an_error(
        tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        info = tarfile.TarInfo("./etc/debian_version")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"13.2\n"))
    engine = HostArchLoad()
    with pytest.raises(EngineError, match="loaded the linux/arm64 base as linux/amd64"):
        import_base(engine, tarball, "d/arm64:trixie", "trixie", print, epoch=EPOCH,
                    workdir=tmp_path, platform=ARM)
    assert engine.image("d/arm64:trixie") is None
    assert len(engine.images) == 1  # only the fake's own base: the loaded one is gone


# --------------------------------------------------------------------------- registry bases


def registry_engine() -> FakeEngine:
    """`python:3.13` is the host's image here; the registry has it for both platforms."""
    engine = FakeEngine(tags={"python:3.13": "a" * 64})
    engine.registry = {"python:3.13": "a" * 64}
    engine.registry_platforms = {("python:3.13", ARM): "e" * 64}
    engine.image_platforms = {"e" * 64: ARM}
    return engine


def pulled(engine: FakeEngine, ref: str, platform: str = "") -> ImageInfo:
    return pull_base(engine, ref, print, platform=platform)


def test_a_registry_base_for_another_platform_leaves_the_hosts_name_alone() -> None:
    engine = registry_engine()
    info = pulled(engine, "python:3.13", ARM)
    assert (info.id, info.platform) == ("e" * 64, ARM)
    assert ("pull", "python:3.13", ARM) in engine.calls
    assert engine.refs["python/arm64:3.13"] == "e" * 64
    assert engine.refs["python:3.13"] == "a" * 64  # moved by the pull, put back
    # The host's: a plain pull, as always.
    assert pulled(engine, "python:3.13").id == "a" * 64
    assert engine.calls[-1] == ("pull", "python:3.13")


def test_a_registry_base_pulled_first_for_another_platform_leaves_no_host_name() -> None:
    engine = registry_engine()
    del engine.refs["python:3.13"]
    pulled(engine, "python:3.13", ARM)
    assert "python:3.13" not in engine.refs  # it would name an arm64 image as the host's
    assert engine.refs["python/arm64:3.13"] == "e" * 64


def test_a_registry_without_the_platform_is_an_error_and_the_name_stays() -> None:
    engine = registry_engine()
    engine.registry_platforms[("python:3.13", ARM)] = "a" * 64  # a single-platform image
    with pytest.raises(EngineError, match="cannot pull python:3.13 for linux/arm64: the "
                       "registry gave an image for linux/amd64"):
        pulled(engine, "python:3.13", ARM)
    assert engine.refs["python:3.13"] == "a" * 64
    assert "python/arm64:3.13" not in engine.refs
    del engine.registry_platforms[("python:3.13", ARM)]
    with pytest.raises(EngineError, match="manifest unknown"):
        pulled(engine, "python:3.13", ARM)
    assert engine.refs["python:3.13"] == "a" * 64


def test_locked_base_by_index_digest_gives_each_platform_its_own_image() -> None:
    locked = "docker.io/library/python@sha256:" + "12" * 32  # an index: one digest, two images
    engine = registry_engine()
    engine.registry[locked] = "a" * 64
    engine.registry_platforms[(locked, ARM)] = "e" * 64
    use: Callable[..., str] = use_locked_base
    assert use(engine, "python:3.13", locked, print) == "a" * 64
    # The digest named the amd64 image: Docker 20.10 will not point it at another
    # ("Cannot overwrite digest", as the fake says) until the reference is removed.
    assert use(engine, "python:3.13", locked, print, ARM) == "e" * 64
    assert engine.refs["python/arm64:3.13"] == "e" * 64
    assert engine.refs["python:3.13"] == "a" * 64
    # The digest now resolves to the arm64 image here (one image per reference): the
    # host's build pulls its own again rather than start from arm64's.
    engine.calls.clear()
    assert use(engine, "python:3.13", locked, print) == "a" * 64
    assert engine.calls[0] == ("pull", locked)
    assert engine.refs["python:3.13"] == "a" * 64
    del engine.registry_platforms[(locked, ARM)]
    del engine.refs[locked]
    with pytest.raises(BuildError, match=f"names, {locked}, cannot be pulled for linux/arm64"):
        use(engine, "python:3.13", locked, print, ARM)
