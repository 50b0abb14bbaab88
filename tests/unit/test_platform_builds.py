"""A build for several platforms, against the in-memory engine (issue 23, step 6): each
image for every platform, on that platform's parent and base, through that platform's
self-test, its tags moved for all platforms together or for none, and pyrlab.lock
recording each platform's sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import ARM_BASE_ID, BASE_REF, FakeEngine
from labfiles import pyrlab

from pyrlab.contents.lockfile import read_lock_all
from pyrlab.errors import EXIT_BUILD

AMD, ARM = "linux/amd64", "linux/arm64"
GRAPH = ["pyrlab-base", "pylab", "pylab-torch", "other"]



def platform_of(engine: FakeEngine, ref: str) -> str:
    return engine.image_platforms.get(engine.refs[ref], engine.host_platform)


def test_each_image_is_built_for_every_platform_on_its_own_parent(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = pyrlab(capsys, "build", "-C", str(two), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [(i["name"], i["platform"], i["action"]) for i in data["images"]] == [
        *[(name, None, "built") for name in GRAPH], *[(name, ARM, "built") for name in GRAPH]]
    assert [(b["platform"], b["ref"]) for b in data["bases"]] == [
        (None, BASE_REF), (ARM, "t/debian/arm64:trixie")]
    for name in GRAPH:
        assert platform_of(engine, f"t/{name}:latest") == AMD
        assert platform_of(engine, f"t/{name}/arm64:latest") == ARM
        assert engine.refs[f"t/{name}/arm64:trixie"] == engine.refs[f"t/{name}/arm64:latest"]
    # On the platform's parent (the fake engine refuses a FROM of another platform's).
    assert engine.parents[engine.refs["t/pylab/arm64:latest"]] == \
        engine.refs["t/pyrlab-base/arm64:latest"]
    assert engine.parents[engine.refs["t/pyrlab-base/arm64:latest"]] == ARM_BASE_ID
    # An image's platforms are built before any of its children start.
    built = engine.built
    for parent, child in (("pyrlab-base", "pylab"), ("pylab", "pylab-torch")):
        assert max(i for i, n in enumerate(built) if n == parent) < built.index(child)
    # The arm64 images' self-test ran under emulation: `docker run --platform`.
    assert {r.platform for r in engine.runs} == {"", ARM}
    # The lock holds both platforms (version 2), each image's section of each.
    lock = read_lock_all(two / "pyrlab.lock", host=AMD)
    assert lock.platforms == (AMD, ARM) and lock.recorded
    assert set(lock.view(ARM)) == set(GRAPH) == set(lock.view(AMD))
    assert "version = 2" in (two / "pyrlab.lock").read_text()
    # Nothing changed: nothing is built, on either platform.
    engine.built.clear()
    code, out, err = pyrlab(capsys, "build", "-C", str(two))
    assert code == 0 and engine.built == [], err


def test_another_platform_s_build_takes_the_cache_of_its_own_pushed_tag_first(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    """An arm64 build also asks for the tag push gave the arm64 image (TAG-arm64), first:
    that image's config holds its inline cache."""
    code, _, err = pyrlab(capsys, "build", "-C", str(two), "--cache-from", "reg.example/t/",
                          "--cache-from", "reg.example/u/pylab:v2",
                          "--cache-from", f"reg.example/v/pylab@sha256:{'a' * 64}")
    assert code == 0, err
    refs = {(name, platform): cache for name, platform, cache in engine.cache_from}
    pinned = f"reg.example/v/pylab@sha256:{'a' * 64}"
    assert refs[("pylab", "")] == (*(f"reg.example/t/{n}:latest" for n in GRAPH),
                                   "reg.example/u/pylab:v2", pinned)
    assert refs[("pylab", ARM)] == (*(ref for n in GRAPH for ref in (
        f"reg.example/t/{n}:latest-arm64", f"reg.example/t/{n}:latest")),
        "reg.example/u/pylab:v2-arm64", "reg.example/u/pylab:v2", pinned)


def test_a_platform_that_fails_leaves_every_platform_s_tags_where_they_were(
        two: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrlab(capsys, "build", "-C", str(two))
    assert code == 0, err
    before, images = dict(engine.refs), set(engine.images)
    lock_before = (two / "pyrlab.lock").read_text()
    # A Debian package for every platform, and one for arm64 only, which the fake engine
    # cannot install ("broken").
    (two / "debs.txt").write_text("curl\nbroken [arm64]\n")
    toml = (two / "pyrlab.toml").read_text().replace(
        '[images.pylab]\nfrom = "pyrlab-base"\n',
        '[images.pylab]\nfrom = "pyrlab-base"\ndebs = ["debs.txt"]\n')
    (two / "pyrlab.toml").write_text(toml)
    code, _, err = pyrlab(capsys, "build", "-C", str(two))
    assert code == EXIT_BUILD
    assert "error: building pylab (linux/arm64) failed at [1/2] RUN uv-install (and " \
           "pylab)" in err
    assert "pylab: FAILED at promotion" in err
    assert "passed, but not promoted: pylab failed for linux/arm64 (an image's platforms " \
           "are promoted together)" in err
    # Neither pylab moved, amd64's new one (which passed) is gone, and nothing after it
    # was built: pylab was built for amd64 (arm64's failed), then the build stopped.
    assert engine.refs == before
    assert set(engine.images) == images
    assert engine.built[-1] == "pylab" and engine.built.count("pylab") == 3
    assert engine.built.count("pylab-torch") == 2
    assert (two / "pyrlab.lock").read_text() == lock_before
