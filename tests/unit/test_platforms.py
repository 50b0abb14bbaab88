"""The platform vocabulary (pyrlab/platforms.py) and what the engines say of platforms: their
own (`Engine.platform()`, asked of a stand-in client once) and their images'."""

from __future__ import annotations

import json
import platform as host
import stat
from pathlib import Path

import pytest
from fakes import BASE_REF, FakeEngine

from pyrlab import platforms, rootfs
from pyrlab.engines.docker import DockerBuildx
from pyrlab.engines.podman import Podman
from pyrlab.errors import EngineError
from pyrlab.platforms import (
    NATIVE,
    SUPPORTED,
    UnknownPlatform,
    debian_arch,
    host_platform,
    normalize,
    parse,
    qemu_name,
    token,
)


@pytest.mark.parametrize(("written", "platform"), [
    ("linux/arm64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"),  # the baseline variant, as engines leave it out
    ("linux/arm64/8", "linux/arm64"),
    ("LINUX/ARM64", "linux/arm64"),
    (" linux/amd64 ", "linux/amd64"),
    ("linux/amd64/v1", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),  # uname -m's names
    ("linux/aarch64", "linux/arm64"),
    ("arm64", "linux/arm64"),  # a bare architecture is Linux's, as `docker --platform` takes it
    ("x86_64", "linux/amd64"),
])
def test_a_platform_has_one_spelling(written: str, platform: str) -> None:
    assert parse(written) == platform


@pytest.mark.parametrize(("written", "says", "misspelt"), [
    ("linux/arm/v7", ("linux/arm/v7 is not supported: pyrlab builds for linux/amd64 and "
     "linux/arm64"), False),
    ("linux/arm64/v9", "linux/arm64/v9 is not supported", False),
    ("linux/ppc64le", "linux/ppc64le is not supported", False),
    ("darwin/arm64", ("darwin/arm64 is not a Linux platform: pyrlab's images are Linux images, "
     "on a Mac too"), False),
    ("linux/amr64", ("unknown platform 'linux/amr64': pyrlab builds for linux/amd64 and "
     "linux/arm64"), True),
    ("lnux/arm64", "unknown platform 'lnux/arm64'", True),
    ("linux/", "expected a platform such as linux/arm64 (OS/ARCH), got 'linux/'", True),
    ("linux/arm64/v8/x", "expected a platform such as linux/arm64", True),
    ("", "expected a platform such as linux/arm64", True),
])
def test_what_is_no_supported_platform_says_why(written: str, says: str, misspelt: bool) -> None:
    with pytest.raises(UnknownPlatform) as caught:
        parse(written)
    assert str(caught.value).startswith(says)
    assert caught.value.misspelt is misspelt


def test_each_supported_platform_has_its_names_in_each_tool() -> None:
    assert SUPPORTED == ("linux/amd64", "linux/arm64")
    names = {p: (token(p), debian_arch(p), qemu_name(p)) for p in SUPPORTED}
    assert names == {"linux/amd64": ("amd64", "amd64", "x86_64"),
                     "linux/arm64": ("arm64", "arm64", "aarch64")}
    # What runs inside says its qemu name; parse reads it back.
    assert all(parse(qemu_name(p)) == p for p in SUPPORTED)
    with pytest.raises(KeyError):
        token("linux/ppc64le")


def test_an_engine_s_own_platform_is_normalised_but_not_limited_to_the_supported() -> None:
    assert normalize("linux/ppc64le") == "linux/ppc64le"
    assert normalize("Linux/aarch64/v8") == "linux/arm64"


@pytest.mark.parametrize(("machine", "platform", "arch"), [
    ("x86_64", "linux/amd64", "amd64"),
    ("aarch64", "linux/arm64", "arm64"),  # Linux on arm64
    ("arm64", "linux/arm64", "arm64"),  # macOS on Apple silicon: Docker Desktop's VM
    ("ppc64le", "linux/ppc64le", "ppc64le"),
])
def test_the_host_platform_comes_from_the_machine(monkeypatch: pytest.MonkeyPatch,
                                                  machine: str, platform: str, arch: str) -> None:
    monkeypatch.setattr(host, "machine", lambda: machine)
    assert host_platform() == platform
    # The bootstrapped base's image configuration says the same architecture as before.
    assert rootfs.architecture() == arch


def test_the_ecosystem_interface_speaks_of_the_same_platforms() -> None:
    from pyrlab.ecosystems import base

    assert base.NATIVE == platforms.NATIVE == ""
    assert base.Platform is str


# --------------------------------------------------------------------------- engines


def _client(folder: Path, answers: dict[str, str]) -> tuple[str, Path]:
    """A container engine's client stand-in: prints the answer to the exact arguments it
    knows (exit 1 for others) and appends each call's arguments to a file."""
    calls = folder / "calls"
    path = folder / "client"
    cases = "".join(f"  {json.dumps(args)}) echo {json.dumps(out)};;\n"
                    for args, out in answers.items())
    path.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\ncase "$*" in\n{cases}'
                    '  *) echo "unknown: $*" >&2; exit 1;;\nesac\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path), calls


def test_docker_says_its_server_s_platform_once(tmp_path: Path) -> None:
    binary, calls = _client(tmp_path, {
        "version --format {{.Server.Os}}/{{.Server.Arch}}": "linux/arm64"})
    engine = DockerBuildx(binary)
    assert engine.platform() == "linux/arm64"
    assert engine.platform() == "linux/arm64"
    assert calls.read_text().splitlines() == [
        "version --format {{.Server.Os}}/{{.Server.Arch}}"]


def test_podman_says_its_host_s_platform(tmp_path: Path) -> None:
    binary, calls = _client(tmp_path, {"info --format {{.Host.OS}}/{{.Host.Arch}}": "linux/amd64"})
    assert Podman(binary).platform() == "linux/amd64"
    assert calls.read_text().splitlines() == ["info --format {{.Host.OS}}/{{.Host.Arch}}"]


def test_an_engine_that_cannot_say_its_platform_is_an_engine_error(tmp_path: Path) -> None:
    binary, _ = _client(tmp_path, {"version --format {{.Server.Os}}/{{.Server.Arch}}": "/"})
    with pytest.raises(EngineError) as caught:
        DockerBuildx(binary).platform()
    assert "did not say its platform" in caught.value.message
    with pytest.raises(EngineError) as caught:
        Podman(binary).platform()  # the stand-in does not know podman's question: exit 1
    assert "info --format" in caught.value.message


def test_an_image_says_its_platform(tmp_path: Path) -> None:
    arm = {"Id": "sha256:" + "a" * 64, "RepoTags": ["t/pylab:latest"], "Os": "linux",
           "Architecture": "arm64", "Variant": "v8"}
    old = {"Id": "sha256:" + "b" * 64, "RepoTags": ["t/old:latest"]}  # says nothing
    binary, _ = _client(tmp_path, {"image inspect t/pylab:latest": json.dumps([arm]),
                                   "image inspect t/old:latest": json.dumps([old])})
    engine = DockerBuildx(binary)
    found = engine.image("t/pylab:latest")
    assert found is not None and found.platform == "linux/arm64"
    found = engine.image("t/old:latest")
    assert found is not None and found.platform == NATIVE


def test_the_fake_engine_is_an_amd64_machine() -> None:
    engine = FakeEngine()
    assert engine.platform() == "linux/amd64"
    base = engine.image(BASE_REF)
    assert base is not None and base.platform == "linux/amd64"


@pytest.mark.parametrize("ref, named", [
    ("pyrlab/debian:trixie", "pyrlab/debian/arm64:trixie"),
    ("mylab/pylab:latest", "mylab/pylab/arm64:latest"),
    ("pylab", "pylab/arm64"),
    ("localhost:5000/team/pylab:previous", "localhost:5000/team/pylab/arm64:previous"),
    ("localhost:5000/pylab", "localhost:5000/pylab/arm64"),
    ("debian@sha256:" + "a" * 64, "debian/arm64@sha256:" + "a" * 64),
])
def test_a_foreign_platform_s_image_has_its_token_in_the_repository(ref: str,
                                                                    named: str) -> None:
    assert platforms.platform_ref(ref, "linux/arm64", "linux/amd64") == named


@pytest.mark.parametrize("platform", [platforms.NATIVE, "linux/amd64"])
def test_the_host_s_names_and_cache_ids_are_today_s(platform: str) -> None:
    assert platforms.platform_ref("mylab/pylab:latest", platform, "linux/amd64") \
        == "mylab/pylab:latest"
    assert platforms.cache_id("pyrlab-uv", platform, "linux/amd64") == "pyrlab-uv"
    assert platforms.is_native(platform, "linux/amd64")


def test_a_foreign_platform_s_cache_mounts_are_its_own() -> None:
    assert platforms.cache_id("pyrlab-uv", "linux/arm64", "linux/amd64") == "pyrlab-uv-arm64"
    assert platforms.cache_id("pyrlab-uv", "linux/amd64", "linux/arm64") == "pyrlab-uv-amd64"
    assert not platforms.is_native("linux/arm64", "linux/amd64")


def test_a_platform_s_tag_in_a_push_of_several_is_the_tag_and_its_token() -> None:
    assert platforms.platform_tag("reg:5000/team/pylab:latest", "linux/arm64") == \
        "reg:5000/team/pylab:latest-arm64"
    assert platforms.platform_tag("reg:5000/team/pylab", "linux/amd64") == \
        "reg:5000/team/pylab:latest-amd64"
    pinned = f"reg/team/pylab@sha256:{'0' * 64}"
    assert platforms.platform_tag(pinned, "linux/arm64") == pinned
