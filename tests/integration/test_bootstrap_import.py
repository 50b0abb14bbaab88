"""Bootstrapping again under a name that exists (`pyrlab upgrade`, `bootstrap --tag` of a
present base), for real, with each engine: the name moves to the new image and the one it
named before is removed when nothing uses it, instead of staying behind untagged (about
120 MB per bootstrap). It is kept while another name or a container still uses it.

The import is pyrlab's own (bootstrap.import_base, what `bootstrap` does with the tarball
debootstrap made), fed tiny root file systems written here: no mirror, seconds per test.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labtools import EngineCli

from pyrlab.baseimage import LABEL_SUITE, import_base
from pyrlab.engines.select import select_engine

pytestmark = pytest.mark.integration

ENGINES = pytest.mark.parametrize("engine_name", ["docker", "podman"], indirect=True)


def rootfs(folder: Path, text: str) -> Path:
    """A root file system tarball holding only /hello (text): a distinct image per text."""
    tarball = folder / f"rootfs-{len(list(folder.iterdir()))}.tar"
    data = text.encode()
    with tarfile.open(tarball, "w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return tarball


@pytest.fixture
def made(engine: EngineCli, lab_prefix: str) -> Iterator[list[str]]:
    """IDs of the images a test imports (appended by the test), removed after it by ID,
    with every name under the test's prefix."""
    ids: list[str] = []
    yield ids
    engine.remove_by_prefix(lab_prefix)
    for image_id in ids:
        if engine.image(image_id) is not None:
            engine("rmi", image_id, check=False)


def replace(engine: EngineCli, tmp_path: Path, ref: str, made: list[str],
            between: Callable[[str], None] = lambda first: None) -> tuple[str, list[str]]:
    """Import a root file system as ref, run between(its ID), import another one as ref;
    returns the first image's ID and what the second import said."""
    pyrlab = select_engine(engine.name, "auto").engine
    first, none = import_base(pyrlab, rootfs(tmp_path, "one"), ref, "trixie", lambda _: None)
    made.append(first)
    assert none is None  # nothing was named ref before
    assert engine.labels(ref)[LABEL_SUITE] == "trixie"
    between(first)
    lines: list[str] = []
    second, _ = import_base(pyrlab, rootfs(tmp_path, "two"), ref, "trixie", lines.append)
    made.append(second)
    assert second != first
    assert engine.image_id(ref) == second
    return first, lines


@ENGINES
def test_the_replaced_base_is_removed_when_nothing_uses_it(
        engine: EngineCli, lab_prefix: str, tmp_path: Path, made: list[str]) -> None:
    ref = f"{lab_prefix}debian:trixie"
    first, lines = replace(engine, tmp_path, ref, made)
    assert engine.image(first) is None
    assert f"removed the image {ref} named before ({first[:12]})" in lines


@ENGINES
def test_the_replaced_base_is_kept_while_another_name_points_to_it(
        engine: EngineCli, lab_prefix: str, tmp_path: Path, made: list[str]) -> None:
    ref = f"{lab_prefix}debian:trixie"
    first, lines = replace(engine, tmp_path, ref, made,
                           lambda first: engine("tag", first, f"{lab_prefix}mine:kept"))
    assert engine.image_id(f"{lab_prefix}mine:kept") == first
    kept = [line for line in lines if "named before" in line]
    assert len(kept) == 1, lines
    assert kept[0].startswith(f"kept the image {ref} named before ({first[:12]}): still named ")
    assert f"{lab_prefix}mine:kept" in kept[0]


@ENGINES
def test_the_replaced_base_is_kept_while_a_container_uses_it(
        engine: EngineCli, lab_prefix: str, tmp_path: Path, made: list[str]) -> None:
    ref = f"{lab_prefix}debian:trixie"
    containers: list[str] = []
    try:
        # A container created (never started) from the first image.
        first, lines = replace(engine, tmp_path, ref, made, lambda first: containers.append(
            engine("create", first, "/hello").stdout.split()[-1]))
        assert engine.image(first) is not None
        kept = [line for line in lines if "named before" in line]
        assert len(kept) == 1, lines
        assert kept[0].startswith(f"kept the image {ref} named before ({first[:12]}): "), lines
    finally:
        for container in containers:
            engine("rm", "--force", container, check=False)


def test_docker_and_podman_load_one_root_file_system_as_one_image_id(
        get_engine: Callable[[str], EngineCli], lab_prefix: str, tmp_path: Path) -> None:
    """The archive pyrlab writes is the image: each engine's ID is the digest of its
    configuration, so both engines (and every machine) name it alike."""
    tarball = rootfs(tmp_path, f"the same everywhere {lab_prefix}")
    ids = {}
    for name in ("docker", "podman"):
        cli = get_engine(name)
        ref = f"{lab_prefix}debian:trixie"
        try:
            ids[name], _ = import_base(select_engine(name, "auto").engine, tarball, ref,
                                       "trixie", lambda _: None, epoch=1795252544)
            assert cli.image_id(ref).removeprefix("sha256:") == ids[name]
        finally:
            cli.remove_by_prefix(lab_prefix)
    assert ids["docker"] == ids["podman"]
