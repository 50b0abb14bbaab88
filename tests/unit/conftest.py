"""Fixtures for the unit tests (helpers live in labfiles.py, the fake engine in fakes.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from fakes import ARM_BASE_ID, BASE_ID, BASE_REF, FILES, FakeEngine
from labfiles import FULL_FILES, make_project

from pyrlab.engines import registry
from pyrlab.engines.base import Engine

E = TypeVar("E", bound=Engine)


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


@pytest.fixture(autouse=True)
def _ctrl_c_as_python_sets_it() -> Iterator[None]:
    """Ctrl-C as a Python program started from a terminal has it, also when the suite runs
    with SIGINT ignored (a background job of a script, nohup): tests of pyrlab's own
    handling would otherwise meet what a user's terminal never gives."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.fixture
def lock_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How pyrlab.lock is named in each parse of it during the test (read_lock's, wherever
    it is called): a spy, the parse itself is unchanged."""
    from pyrlab.contents import lockfile

    reads: list[str] = []
    parse = lockfile.parse_lock_all

    def spy(text: str, shown: str = lockfile.LOCK_NAME, *, host: str) -> lockfile.Lock:
        reads.append(shown)
        return parse(text, shown, host=host)

    monkeypatch.setattr(lockfile, "parse_lock_all", spy)
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


# --------------------------------------------------------------------------- the engine
# Every command chooses its engine through pyrlab.engines.select, which makes each engine
# it tries with registry.find: the one place a test puts its own.


@pytest.fixture
def use_engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[E], E]:
    """use_engine(engine): every command, from now to the end of the test, gets `engine`,
    whichever engine is named or auto-detected (the source is reported as usual)."""

    def use(engine: E) -> E:
        monkeypatch.setattr(registry, "find", lambda name: engine)
        return engine

    return use


@pytest.fixture
def engine(use_engine: Callable[[FakeEngine], FakeEngine]) -> FakeEngine:
    """A FakeEngine that every command uses."""
    return use_engine(FakeEngine())


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing an engine fails the test: for commands that must not need one."""

    def refuse(name: str) -> Engine:
        raise AssertionError(f"an engine was chosen ({name})")

    monkeypatch.setattr(registry, "find", refuse)


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: FakeEngine) -> Path:
    """The FILES lab for linux/amd64 and linux/arm64 ([build] platforms); the FakeEngine's
    registry has its base for both (ARM_BASE_ID for arm64). Run from its parent folder."""
    monkeypatch.chdir(tmp_path)
    toml = FILES["pyrlab.toml"]
    assert isinstance(toml, str)
    lab = make_project(tmp_path / "lab", {**FILES, "pyrlab.toml": toml.replace(
        "[images.pyrlab-base]", '[build]\nplatforms = ["linux/amd64", "linux/arm64"]\n\n'
        "[images.pyrlab-base]")})
    engine.registry[BASE_REF] = BASE_ID
    engine.registry_platforms[(BASE_REF, "linux/arm64")] = ARM_BASE_ID
    engine.images[ARM_BASE_ID] = {}
    engine.image_platforms[ARM_BASE_ID] = "linux/arm64"
    return lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The FILES lab, which the FakeEngine builds; run from its parent folder (messages
    name files relative to the current folder). Modules with another lab define their
    own `lab`."""
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path / "lab", FILES)
