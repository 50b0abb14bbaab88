"""Fixtures for the unit tests (helpers live in labfiles.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from labfiles import FULL_FILES, make_project

if TYPE_CHECKING:
    from pyrlab.contents.model import Inventory


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                       request: pytest.FixtureRequest) -> Iterator[None]:
    """The developer's own PYRLAB_* or sudo variables must not leak into any test, nor
    their user file (~/.config/pyrlab/config.toml): each test has its own, not there
    until it writes it (the `user_config` fixture)."""
    for name in list(os.environ):
        if name.startswith("PYRLAB_") or name in ("SUDO_UID", "SUDO_GID", "SUDO_USER"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYRLAB_USER_CONFIG", str(tmp_path / "user-config" / "config.toml"))
    if request.node.get_closest_marker("project_names") is None:
        # Most tests were written for the bare names (pylab:latest, pyrlab-pylab-8888) and
        # test something else: they run with `name = ""` (bare names, an explicit choice
        # pyrlab keeps). Tests of the default project names say @pytest.mark.project_names.
        monkeypatch.setenv("PYRLAB_NAME", "")
    yield


@pytest.fixture
def lock_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How pyrlab.lock is named in each parse of it during the test (read_lock's, wherever
    it is called): a spy, the parse itself is unchanged."""
    from pyrlab.contents import lockfile

    reads: list[str] = []
    parse = lockfile.parse_lock

    def spy(text: str, shown: str = lockfile.LOCK_NAME) -> dict[str, Inventory]:
        reads.append(shown)
        return parse(text, shown)

    monkeypatch.setattr(lockfile, "parse_lock", spy)
    return reads


@pytest.fixture
def user_config() -> Path:
    """This test's user file (where PYRLAB_USER_CONFIG points), its folder made."""
    path = Path(os.environ["PYRLAB_USER_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def full_project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "full", FULL_FILES)
