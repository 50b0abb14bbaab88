"""The image commands for a project built for several platforms, against the in-memory
engine (issue 23): `rollback` moves every platform back together (or one, with
--platform) and warns when they would not hold images of one build; `test`, `sbom` and
`why` read the platform's images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeEngine
from labfiles import build_json, pyrlab

from pyrlab.contents.lockfile import read_lock_all
from pyrlab.errors import EXIT_NOT_BUILT

AMD, ARM = "linux/amd64", "linux/arm64"



def ids(engine: FakeEngine, tag: str) -> tuple[str | None, str | None]:
    """pylab's image under `tag`, on amd64 and on arm64."""
    return engine.refs.get(f"t/pylab:{tag}"), engine.refs.get(f"t/pylab/arm64:{tag}")


def python_names(lab: Path, platform: str) -> set[str]:
    lock = read_lock_all(lab / "pyrlab.lock", host=AMD)
    return {d.name for d in lock.view(platform)["pylab"].packages("python")}


def two_builds(capsys: pytest.CaptureFixture[str], lab: Path, engine: FakeEngine,
               ) -> tuple[tuple[str | None, str | None], tuple[str | None, str | None]]:
    """Build both platforms, add idna to pylab, build both again: (first, second) IDs."""
    build_json(capsys, lab)
    first = ids(engine, "latest")
    (lab / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, lab)
    second = ids(engine, "latest")
    assert None not in first + second and set(first).isdisjoint(second)
    return first, second


def test_rollback_moves_every_platform_back_together(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two_builds(capsys, two, engine)
    code, out, err = pyrlab(capsys, "rollback", "-C", str(two), "pylab")
    assert code == 0, err
    assert ids(engine, "latest") == first == ids(engine, "trixie")
    assert ids(engine, "rolled-back") == second
    assert ids(engine, "previous") == (None, None)
    # One write, each platform's section from its restored image.
    assert python_names(two, AMD) == {"six"} == python_names(two, ARM)
    assert "version = 2" in (two / "pyrlab.lock").read_text()
    assert "pylab (linux/arm64): t/pylab/arm64:latest, t/pylab/arm64:trixie → " in out
    assert "pylab (linux/amd64): t/pylab:latest, t/pylab:trixie → " in out
    assert "pyrlab.lock: pylab's sections for linux/amd64 and linux/arm64 are what" in out
    # What the next build does, per platform: the lists still ask for idna.
    for platform in (AMD, ARM):
        assert (f"next `pyrlab build` rebuilds pylab ({platform}): changed: Python packages"
                in out)
        assert f"next `pyrlab build` rebuilds pylab-torch ({platform}): " in out
    assert "warning" not in out + err
    # Nothing is left to roll back to, on either platform.
    code, _, err = pyrlab(capsys, "rollback", "-C", str(two), "pylab")
    assert code == EXIT_NOT_BUILT
    assert "t/pylab:previous and t/pylab/arm64:previous do not exist" in err


def test_rollback_json_lists_each_platform(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two_builds(capsys, two, engine)
    code, out, err = pyrlab(capsys, "rollback", "-C", str(two), "pylab", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [(p["platform"], p["restored"], p["rolled_back"], p["kept_as"])
            for p in data["platforms"]] == [
        (AMD, first[0], second[0], "t/pylab:rolled-back"),
        (ARM, first[1], second[1], "t/pylab/arm64:rolled-back")]
    assert data["restored"] == first[0] and data["warnings"] == []
    assert {(b["image"], b["platform"]) for b in data["next_build"]} == {
        (n, p) for n in ("pylab", "pylab-torch") for p in (AMD, ARM)}


def test_rollback_of_one_platform_leaves_the_others(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two_builds(capsys, two, engine)
    amd_section = read_lock_all(two / "pyrlab.lock", host=AMD).view(AMD)
    code, out, err = pyrlab(capsys, "rollback", "-C", str(two), "pylab",
                            "--platform", "linux/arm64")
    assert code == 0, err
    assert ids(engine, "latest") == (second[0], first[1])
    assert ids(engine, "previous") == (first[0], None)
    assert read_lock_all(two / "pyrlab.lock", host=AMD).view(AMD) == amd_section
    assert python_names(two, ARM) == {"six"}
    assert "pylab (linux/arm64): " in out and "linux/amd64" not in out
    # The engine's own platform, named: today's text.
    code, out, err = pyrlab(capsys, "rollback", "-C", str(two), "pylab",
                            "--platform", "linux/amd64")
    assert code == 0, err
    assert ids(engine, "latest") == first
    assert out.startswith("pylab: t/pylab:latest, t/pylab:trixie → ")
    assert "pyrlab.lock: pylab's section is what" in out


def test_rollback_warns_when_a_build_for_one_platform_came_between(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = two_builds(capsys, two, engine)
    (two / "requirements.txt").write_text("six\nidna\nattrs\n")
    build_json(capsys, two, "--platform", "linux/arm64")  # arm64 only
    third = ids(engine, "latest")
    assert third[0] == second[0] and third[1] not in (first[1], second[1])
    code, out, err = pyrlab(capsys, "rollback", "-C", str(two), "pylab")
    assert code == 0, err
    # Both moved, each to its own previous: amd64's first build, arm64's second.
    assert ids(engine, "latest") == (first[0], second[1])
    assert ("warning: pylab:previous of linux/amd64 and linux/arm64 do not come from one "
            "build (their Python packages differ" in out)


def test_rollback_warns_of_a_platform_that_keeps_its_latest(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, two)
    first = ids(engine, "latest")
    (two / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, two, "--platform", "linux/arm64")  # arm64 only
    code, out, err = pyrlab(capsys, "rollback", "-C", str(two), "pylab")
    assert code == 0, err
    assert ids(engine, "latest") == first
    assert "pylab (linux/arm64): " in out and "pylab (linux/amd64)" not in out
    assert ("warning: linux/amd64 has no pylab:previous, so its pylab:latest stays" in out)


def test_test_checks_the_platform_s_images_under_emulation(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, two)
    engine.runs.clear()
    code, out, err = pyrlab(capsys, "test", "-C", str(two), "pylab", "--platform", ARM,
                            "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["platform"] == ARM
    assert [i["id"] for i in data["images"]] == [engine.refs["t/pylab/arm64:latest"]]
    assert engine.runs and {r.platform for r in engine.runs} == {ARM}
    code, out, _ = pyrlab(capsys, "test", "-C", str(two), "pylab", "--platform", ARM)
    assert out.startswith("linux/arm64's images, under emulation:\npylab (")
    # Default: the engine's own, as before (no platform asked of `docker run`).
    engine.runs.clear()
    code, out, err = pyrlab(capsys, "test", "-C", str(two), "pylab", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["platform"] is None
    assert [i["id"] for i in data["images"]] == [engine.refs["t/pylab:latest"]]
    assert {r.platform for r in engine.runs} == {""}


def test_test_names_the_platform_an_image_is_not_built_for(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, two, "--platform", AMD)
    code, _, err = pyrlab(capsys, "test", "-C", str(two), "pylab", "--platform", ARM)
    assert code == EXIT_NOT_BUILT
    assert "not built for linux/arm64: pylab" in err
    assert "pyrlab build --platform linux/arm64 pylab" in err


def test_sbom_of_the_platform_s_image_names_it(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, two)
    boms = {}
    for flag in ((), ("--platform", ARM), ("--platform", AMD)):
        code, out, err = pyrlab(capsys, "sbom", "-C", str(two), "pylab", *flag)
        assert code == 0, err
        boms[flag[1:]] = json.loads(out)
    props = {key: bom["metadata"]["component"]["properties"] for key, bom in boms.items()}
    assert props == {(): [{"name": "pyrlab:platform", "value": AMD}],
                     (ARM,): [{"name": "pyrlab:platform", "value": ARM}],
                     (AMD,): [{"name": "pyrlab:platform", "value": AMD}]}
    code, out, err = pyrlab(capsys, "sbom", "-C", str(two), "pylab:previous", "--platform", ARM)
    assert code == EXIT_NOT_BUILT and "t/pylab/arm64:previous is not built" in err


def test_why_reads_the_platform_s_image_and_lock_section(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.requires = {"six": []}
    build_json(capsys, two)
    # arm64's section says another version of six than amd64's.
    lock = two / "pyrlab.lock"
    head = '[images.pylab."linux/arm64".python]\n'
    text = lock.read_text()
    assert head + 'six = "1.0"' in text
    lock.write_text(text.replace(head + 'six = "1.0"', head + 'six = "0.9"'))
    engine.runs.clear()
    code, out, err = pyrlab(capsys, "why", "-C", str(two), "six", "--image", "pylab",
                            "--platform", ARM, "--json")
    assert code == 0, err
    data = json.loads(out)
    [answer] = data["images"]
    assert answer["ref"] == "t/pylab/arm64:latest"
    assert answer["id"] == engine.refs["t/pylab/arm64:latest"]
    assert answer["lock"]["requirement"] == "six==0.9"
    assert {r.platform for r in engine.runs} == {ARM}
    engine.runs.clear()
    code, out, err = pyrlab(capsys, "why", "-C", str(two), "six", "--image", "pylab", "--json")
    assert code == 0, err
    [answer] = json.loads(out)["images"]
    assert answer["ref"] == "t/pylab:latest" and answer["lock"]["requirement"] == "six==1.0"
    assert {r.platform for r in engine.runs} == {""}
