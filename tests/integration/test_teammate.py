"""A teammate's `build --locked` reproduces the committed pyrlab.lock byte for byte (Docker,
the small lab): build a project, copy what a clone holds (its files and pyrlab.lock, not
.pyrlab/), remove every image of the project and pyrlab's build-cache records (`clean
--cache`, as test_clean_cache.py checks it), then `build --locked` in the copy.

The base is the session's bootstrapped trixie, which a fresh bootstrap on any machine makes
again with the same ID (test_reproducible_base.py shows that for bookworm); every section's
base-id must come out the same, and so must every version and input hash.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from labtools import EngineCli, Lab, remove_lab_images

pytestmark = pytest.mark.integration


def built_images(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return {image["name"]: image["action"] for image in json.loads(done.stdout)["images"]}


def test_a_teammates_locked_build_reproduces_the_lock(
        make_lab: Callable[..., Lab], engine: EngineCli, tmp_path: Path) -> None:
    lab = make_lab("small")
    assert set(built_images(lab.pyrlab("build", "--json")).values()) == {"built"}
    lock = (lab.root / "pyrlab.lock").read_bytes()
    assert b"base-id = " in lock

    # The clone: the project's files and its lock, nothing of this machine's .pyrlab/.
    clone = Lab(root=tmp_path / "teammate" / "lab", prefix=lab.prefix,
                engine_name=lab.engine_name)
    shutil.copytree(lab.root, clone.root, ignore=shutil.ignore_patterns(".pyrlab"))
    try:
        done = lab.pyrlab("clean", "--cache", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["removed"], "clean removed no image"
        for name in ("pyrlab-base", "pylab"):
            assert engine.image(lab.ref(name)) is None

        actions = built_images(clone.pyrlab("build", "--locked", "--json"))
        assert set(actions.values()) == {"built"}, actions
        again = (clone.root / "pyrlab.lock").read_bytes()
        assert again == lock, "the teammate's --locked build changed pyrlab.lock"
    finally:
        remove_lab_images(clone.engine_name, clone.prefix, [clone])
