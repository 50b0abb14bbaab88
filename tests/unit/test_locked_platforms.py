"""The lock's commands for several platforms (issue 23), against the in-memory engine:
`build --locked` checks and pins each platform with its own sections (Debian's preflight
in that platform's base, under emulation); `outdated` asks each platform's images;
`upgrade` resolves the engine's own platform first and the others prefer its versions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import APT_OUTPUT, ARM_BASE_ID, BASE_ID, BASE_REF, RESOLUTION_JSON, FakeEngine
from labfiles import pyrlab

from pyrlab.contents.lockfile import read_lock_all, update_lock
from pyrlab.contents.model import Inventory
from pyrlab.ecosystems.debian import Deb
from pyrlab.ecosystems.python import UV_RESOLVE, PyDist
from pyrlab.engines.base import RunRequest
from pyrlab.errors import EXIT_BUILD

AMD, ARM = "linux/amd64", "linux/arm64"
GRAPH = ["pyrlab-base", "pylab", "pylab-torch", "other"]



def build(capsys: pytest.CaptureFixture[str], lab: Path, *args: str) -> None:
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), *args)
    assert code == 0, err


def lock_python(lab: Path, platform: str, image: str = "pylab") -> dict[str, str]:
    section = read_lock_all(lab / "pyrlab.lock", host=AMD).view(platform)[image]
    return {d.name: d.version for d in section.packages("python")}


def relock(lab: Path, platform: str, image: str, **parts: Any) -> None:
    """Replace parts of one platform's section of an image, as an edit of the file would."""
    section = read_lock_all(lab / "pyrlab.lock", host=AMD).view(platform)[image]
    update_lock(lab / "pyrlab.lock", {image: dataclasses.replace(section, **parts)},
                platform=platform)


# --------------------------------------------------------------------------- --locked


def test_locked_asks_apt_in_each_platform_s_base_with_its_own_sections(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build(capsys, two)
    engine.runs.clear()
    build(capsys, two, "--locked", "--no-cache")
    offered = [r for r in engine.runs if r.command[-1:] == ("--offered",)]
    # Once per platform, in its own base; arm64's under emulation (`run --platform`).
    assert [(r.image, r.platform) for r in offered] == [(BASE_ID, ""), (ARM_BASE_ID, ARM)]

    # arm64's section locks a tini the sources no longer offer: named with its platform,
    # before anything is built; no tag moves, the lock is as it was.
    section = read_lock_all(two / "pyrlab.lock", host=AMD).view(ARM)["pyrlab-base"]
    debs: tuple[Any, ...] = section.packages("debian")
    relock(two, ARM, "pyrlab-base", debs=tuple(
        Deb(d.name, "0.0.1-1", d.arch) if d.name == "tini" else d for d in debs))
    lock, refs, built = (two / "pyrlab.lock").read_text(), dict(engine.refs), len(engine.built)
    code, _, err = pyrlab(capsys, "build", "-C", str(two), "--locked", "--no-cache")
    assert code == EXIT_BUILD
    assert ("pyrlab: error: pyrlab.lock (pyrlab-base, pylab, pylab-torch, other on "
            "linux/arm64): Debian package tini 0.0.1-1: the sources offer 0.19.0-3; --locked "
            "cannot pin it") in err
    assert "tini 0.19.0-3" not in err  # amd64's sections were offered
    assert len(engine.built) == built and engine.refs == refs
    assert (two / "pyrlab.lock").read_text() == lock


def test_locked_pins_each_platform_to_its_own_python_versions(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build(capsys, two)
    relock(two, ARM, "pylab", python=(PyDist("six", "1.5"),))
    engine.pins.clear()
    build(capsys, two, "--locked", "--no-cache", "pylab")
    assert {text for image, pins, text in engine.pins if (image, pins) == (
        "pylab", "python/exact.txt")} == {"six==1.0\n", "six==1.5\n"}
    manifest = json.loads(engine.manifests[engine.refs["t/pylab/arm64:latest"]])
    assert ["six", "1.5", ""] in manifest["python_dists"]
    assert lock_python(two, ARM) == {"six": "1.5"} and lock_python(two, AMD) == {"six": "1.0"}


def test_locked_with_a_python_version_gone_for_arm64_fails_and_moves_no_tag(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    """As on the engine's own platform: uv's install step cannot meet the constraint and
    says which; the image's platforms are promoted together, so neither moves."""
    build(capsys, two)
    relock(two, ARM, "pylab", python=(PyDist("six", "1.99.99"),))
    engine.gone = {"six==1.99.99"}
    lock, refs = (two / "pyrlab.lock").read_text(), dict(engine.refs)
    # arm64's pylab no longer holds its section: it is rebuilt, the others are not.
    code, _, err = pyrlab(capsys, "build", "-C", str(two), "--locked")
    assert code == EXIT_BUILD
    assert "error: building pylab (linux/arm64) failed at [1/2] RUN uv-install" in err
    assert "there is no version of six==1.99.99" in err
    assert engine.refs == refs and (two / "pyrlab.lock").read_text() == lock


def test_locked_pulls_each_platform_s_base_by_the_digest_its_sections_name(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    """A registry base's index digest names each platform's image: arm64's base is pulled
    by it for arm64 (Docker 20.10 keeps one image per reference: the host's went first)."""
    build(capsys, two)
    index = "t/debian@sha256:" + "12" * 32
    for platform in (AMD, ARM):
        section = read_lock_all(two / "pyrlab.lock", host=AMD).view(platform)["pyrlab-base"]
        relock(two, platform, "pyrlab-base",
               meta=dataclasses.replace(section.meta, base_id=index))
    engine.registry[index] = BASE_ID
    engine.registry_platforms[(index, ARM)] = ARM_BASE_ID
    engine.calls.clear()
    code, _, err = pyrlab(capsys, "build", "-C", str(two), "--locked")
    assert code == 0, err
    assert [c for c in engine.calls if c[0] == "pull"] == [("pull", index), ("pull", index, ARM)]
    assert (f"base: t/debian:trixie (linux/arm64) is {index} ({ARM_BASE_ID[:12]}), as "
            "pyrlab.lock says") in err
    assert engine.refs["t/debian/arm64:trixie"] == ARM_BASE_ID
    assert engine.refs[BASE_REF] == BASE_ID


# --------------------------------------------------------------------------- outdated


def answer(asked: list[RunRequest]) -> object:
    def run(request: RunRequest) -> str:
        asked.append(request)
        return RESOLUTION_JSON if request.command == UV_RESOLVE else APT_OUTPUT
    return run


def test_outdated_asks_each_platform_s_images_under_its_heading(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    build(capsys, two)
    asked: list[RunRequest] = []
    monkeypatch.setattr(engine, "run", answer(asked))
    code, out, err = pyrlab(capsys, "outdated", "-C", str(two), "--json", "pylab")
    assert code == 0, err
    # Each platform's image, arm64's in a container run for arm64 (under emulation).
    assert [(r.image, r.platform) for r in asked] == [
        ("t/pylab:latest", ""), ("t/pylab/arm64:latest", ARM)]
    data = json.loads(out)
    assert [(r["platform"], r["name"], r["available"]) for r in data["outdated"]] == [
        (None, "six", "2.0"), (ARM, "six", "2.0")]
    assert [(h["platform"], h["name"]) for h in data["held_back"]] == [(None, "idna"), (ARM, "idna")]
    assert data["platforms"] == [
        {"platform": AMD, "native": True, "checked": ["pylab"], "not_built": []},
        {"platform": ARM, "native": False, "checked": ["pylab"], "not_built": []}]
    assert data["checked"] == ["pylab"]
    code, out, _ = pyrlab(capsys, "outdated", "-C", str(two), "pylab")
    assert out.startswith("linux/amd64:\npylab: 1 outdated")
    assert "\n\nlinux/arm64:\npylab: 1 outdated" in out

    # One platform: --platform (upgrade --dry-run's too); the engine's own alone as before.
    asked.clear()
    code, out, _ = pyrlab(capsys, "upgrade", "--dry-run", "-C", str(two), "--platform", ARM,
                          "pylab")
    assert code == 0 and out.startswith("linux/arm64:\npylab: 1 outdated")
    assert [r.image for r in asked] == ["t/pylab/arm64:latest"]
    code, out, _ = pyrlab(capsys, "outdated", "-C", str(two), "--json", "--platform", AMD,
                          "pylab")
    assert code == 0 and "platforms" not in json.loads(out)
    assert "platform" not in json.loads(out)["outdated"][0]


def test_outdated_defaults_to_the_platforms_the_lock_records(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    build(capsys, two)
    toml = two / "pyrlab.toml"
    toml.write_text(toml.read_text().replace(
        '[build]\nplatforms = ["linux/amd64", "linux/arm64"]\n', ""))
    del engine.refs["t/other/arm64:latest"]
    monkeypatch.setattr(engine, "run", answer([]))
    code, out, err = pyrlab(capsys, "outdated", "-C", str(two), "other")
    assert code == 0, err
    assert ("linux/arm64:\nEverything is up to date.\nother: not built, not checked "
            "(`pyrlab build other --platform linux/arm64`)") in out


# --------------------------------------------------------------------------- upgrade


def test_upgrade_resolves_the_engine_s_platform_first_and_the_others_prefer_it(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.versions = {"six": "1.0"}
    build(capsys, two)
    engine.versions = {"six": "2.0", "idna": "3.0"}
    engine.pins.clear()
    engine.built.clear()
    code, out, err = pyrlab(capsys, "upgrade", "-C", str(two), "--keep-base", "--json")
    assert code == 0, err
    # Each image on amd64 first, fresh; then arm64, preferring what amd64's image holds.
    assert engine.built == [name for name in GRAPH for _ in (AMD, ARM)]
    python = [(image, pins, text) for image, pins, text in engine.pins
              if pins.startswith("python/")]
    assert python == [
        ("pylab", "python/fresh.txt", ""), ("pylab", "python/prefer.txt", "six==2.0\n"),
        ("pylab-torch", "python/fresh.txt", ""),
        ("pylab-torch", "python/prefer.txt", "packaging==1.0\nsix==2.0\n"),
        ("other", "python/fresh.txt", ""), ("other", "python/prefer.txt", "idna==3.0\n")]
    data = json.loads(out)
    assert {(i["name"], i["platform"]) for i in data["images"]} == {
        (name, p) for name in GRAPH for p in (None, ARM)}
    assert [c["image"] for c in data["changes"] if c["status"] == "changed"] == [
        "other", "pylab", "pylab-torch"]
    [arm] = data["platforms"]
    assert arm["platform"] == ARM and arm["apart"] == []
    assert [c["image"] for c in arm["changes"] if c["status"] == "changed"] == [
        "other", "pylab", "pylab-torch"]
    assert lock_python(two, ARM) == lock_python(two, AMD) == {"six": "2.0"}


def test_upgrade_names_what_another_platform_could_not_take(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build(capsys, two)
    engine.versions = {"six": "2.0"}
    engine.platform_versions = {ARM: {"six": "1.9"}}  # no arm64 wheel of six 2.0
    code, out, err = pyrlab(capsys, "upgrade", "-C", str(two), "--keep-base")
    assert code == 0, err
    assert "\nlinux/amd64:\n" in out and "\nlinux/arm64:\n" in out
    apart = out[out.index("\n\nlinux/arm64's versions that are not linux/amd64's (old: "
                          "linux/amd64's, new: linux/arm64's):\n"):]
    assert "six" in apart and "2.0" in apart and "1.9" in apart
    assert "pylab-torch" in apart and "other" not in apart
    assert lock_python(two, AMD) == {"six": "2.0"} and lock_python(two, ARM) == {"six": "1.9"}


def test_upgrade_builds_no_other_platform_of_an_image_the_engine_s_own_failed(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build(capsys, two)
    pylab = {ref: engine.refs[ref] for ref in ("t/pylab:latest", "t/pylab/arm64:latest")}
    lock = (two / "pyrlab.lock").read_text()
    (two / "requirements.txt").write_text("six\nbroken\n")  # amd64's resolution fails
    engine.built.clear()
    code, _, err = pyrlab(capsys, "upgrade", "-C", str(two), "--keep-base", "--json")
    assert code == EXIT_BUILD
    assert "error: building pylab failed at [1/2] RUN uv-install" in err
    # arm64's pylab would have preferred what amd64's resolved: it is not built.
    assert "pylab (linux/arm64): building" not in err
    assert engine.built == ["pyrlab-base", "pyrlab-base"]
    assert {ref: engine.refs[ref] for ref in pylab} == pylab
    assert (two / "pyrlab.lock").read_text() == lock


def test_an_image_s_pins_prefer_the_lead_s_versions_in_fresh_mode_only() -> None:
    from pyrlab.contents.model import Meta
    from pyrlab.imagebuild.pins import ImagePins, preferring

    lead = Inventory(Meta("pylab", "h", "0", "b", "Debian", "debian", "13", "3.13.5", ""),
                     python=(PyDist("six", "2.0"),), debs=(Deb("tini", "0.19.0-3", "amd64"),))
    files = preferring(ImagePins("fresh"), lead).step_files(ARM)
    assert files["python"] == {"prefer.txt": b"six==2.0\n"}
    assert files["apt"] == {"debs.txt": b"", "fresh": b""}  # Debian does not prefer
    exact = ImagePins("exact")
    assert preferring(exact, lead) is exact
