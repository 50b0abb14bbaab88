"""Cache mounts per platform (issue 23, step 7). BuildKit and buildah key a cache mount by
its id alone, so an arm64 build would use amd64's uv binary, compiled wheels and R
packages, and apt lists with no arm64 Packages, whose stamp (container/apt-install keeps it
inside the apt-lists cache) says they are fresh. Another platform's steps get ids of their
own, except the bytecode cache, whose entries are the same bytes on every platform
(test_platforms_lab.py compares them); the engine's own renders byte for byte as a build
without platforms (test_hash_pins.py pins those bytes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from labfiles import FULL_FILES, make_project

from pyrlab.config.project import Project, load_project
from pyrlab.dockerfile.render import BuildContext, Delta, RenderOptions, render_context
from pyrlab.engines.podman import Podman

HOST = "linux/amd64"
SHARED = "pyrlab-pyc"  # the bytecode cache: one for every platform
CACHE_MOUNT = re.compile(r"--mount=type=cache,id=([^,\s]+),target=([^,\s]+)")
ENGINES = {"docker": RenderOptions(), "podman": RenderOptions.for_builder(Podman)}


@pytest.fixture
def full(tmp_path: Path) -> Project:
    return load_project(make_project(tmp_path / "full", FULL_FILES), environ={})


def contexts(project: Project, options: RenderOptions) -> dict[str, BuildContext]:
    return {name: render_context(project, name, options) for name in project.order()}


def with_platform(options: RenderOptions, platform: str) -> RenderOptions:
    return RenderOptions(cache_sharing_locked=options.cache_sharing_locked,
                         run_input_keys=options.run_input_keys, platform=platform, host=HOST)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_engine_s_own_platform_named_renders_as_none_named(full: Project,
                                                               engine: str) -> None:
    options = ENGINES[engine]
    assert contexts(full, with_platform(options, HOST)) == contexts(full, options)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_cache_mount_of_another_platform_is_its_own(full: Project, engine: str) -> None:
    native = contexts(full, ENGINES[engine])
    arm64 = contexts(full, with_platform(ENGINES[engine], "linux/arm64"))
    targets = set()
    for name, context in arm64.items():
        mounts = CACHE_MOUNT.findall(context.dockerfile)
        assert mounts, name
        for mount_id, target in mounts:
            assert mount_id.startswith("pyrlab-") and (
                mount_id.endswith("-arm64") or mount_id == SHARED), (name, mount_id)
            targets.add(target)
        # The same mounts as the engine's own, each with the platform's token but the
        # bytecode cache's; FROM the platform's parent or base (NAME/IMAGE/arm64,
        # Config.image_ref), and its lab's run-time installs apart (KEY/arm64); nothing
        # else in the Dockerfile differs.
        own = native[name].dockerfile
        assert [(i if i == SHARED else f"{i}-arm64", t)
                for i, t in CACHE_MOUNT.findall(own)] == mounts
        froms = re.findall(r"^FROM (\S+)", context.dockerfile, re.MULTILINE)
        assert froms and all("/arm64:" in ref for ref in froms), froms
        assert (re.sub(r"(id=pyrlab-[^,]+)-arm64,", r"\1,", context.dockerfile)
                .replace("/arm64:", ":")
                .replace(f"{full.config.layer_key(name)}/arm64", full.config.layer_key(name))
                .replace(context.input_hash, "HASH")
                == own.replace(native[name].input_hash, "HASH"))
        assert context.input_hash != native[name].input_hash  # an image of its own
    # The apt lists (and apt-install's freshness stamp in them), uv's cache (its binary),
    # R's packages, apt's archives; and the one bytecode cache.
    assert {"/var/lib/apt/lists", "/var/cache/apt", "/var/cache/pyrlab/r",
            "/var/cache/pyrlab/uv", "/var/cache/pyrlab/pyc"} <= targets


def test_a_delta_of_another_platform_has_its_own_caches_too(full: Project) -> None:
    delta = Delta(("apt", "python"), 2, "d" * 64, {"python": ("six",)})
    context = render_context(full, "pylab", with_platform(RenderOptions(), "linux/arm64"),
                             delta=delta)
    ids = [mount_id for mount_id, _ in CACHE_MOUNT.findall(context.dockerfile)]
    assert SHARED in ids
    assert ids and all(mount_id.endswith("-arm64") for mount_id in ids if mount_id != SHARED)


def test_the_apt_stamp_lives_in_the_apt_lists_cache() -> None:
    # Why a cache of its own per platform is enough: the stamp is in the mounted folder.
    from pyrlab.container import __file__ as container_init
    from pyrlab.ecosystems.debian import APT_CACHES

    script = (Path(container_init).parent / "apt-install").read_text()
    stamp = re.search(r"^stamp=(\S+)$", script, re.MULTILINE)
    assert stamp is not None
    lists = next(cache.target for cache in APT_CACHES if cache.id == "apt-lists")
    assert stamp.group(1).startswith(lists + "/")


def test_a_platform_without_the_engine_s_own_is_refused() -> None:
    with pytest.raises(ValueError, match="needs the engine's own platform"):
        RenderOptions(platform="linux/arm64")
