"""Fixtures for the integration tests: a real engine, a Debian base image that `pyrlab
bootstrap` made once per session, lab projects copied from cases/, and cleanup of every
image the tests make. The helpers they use live in labtools.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labtools import (
    BASE_REF,
    HOST_CA_DIR,
    KEEP_BASE,
    EngineCli,
    ForeignBase,
    Lab,
    checked_engine,
    copy_case,
    engine_unavailable,
    make_bad_wheel,
    new_prefix,
    remove_lab_images,
    run_pyrlab,
    serve_folder,
)

from pyrlab.engines.emulation import host_problem
from pyrlab.platforms import SUPPORTED, host_platform, platform_ref


@pytest.fixture(params=["docker"])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The engine under test: "docker" unless a test parametrizes it, e.g.
    `@pytest.mark.parametrize("engine_name", ["podman"], indirect=True)`."""
    return str(request.param)


@pytest.fixture
def engine(engine_name: str) -> EngineCli:
    """The engine's CLI, checked to work (skip, or fail in CI, when it does not)."""
    return checked_engine(engine_name)


@pytest.fixture(scope="session")
def bootstrapped_bases() -> Iterator[Callable[[str], str]]:
    """A function engine_name → the session's Debian trixie base image in that engine
    (BASE_REF), made by `pyrlab bootstrap` the first time it is asked for and removed at
    the end of the session (PYRLAB_TEST_KEEP_BASE=1: kept as pyrlab-test-debian:trixie, and
    a kept one is reused)."""
    keep = KEEP_BASE
    made: dict[str, tuple[EngineCli, str | None]] = {}  # engine name → (CLI, image ID)

    def get(engine_name: str) -> str:
        if engine_name in made:
            return BASE_REF
        engine = checked_engine(engine_name)
        if not (keep and engine.image(BASE_REF)):
            done = run_pyrlab("bootstrap", "--engine", engine_name, "--suite", "trixie",
                              "--tag", BASE_REF, timeout=900)
            assert done.returncode == 0, f"pyrlab bootstrap failed:\n{done.stderr}"
        made[engine_name] = (engine, engine.image_id(BASE_REF))
        return BASE_REF

    yield get
    if not keep:
        for engine, image_id in made.values():
            engine("rmi", BASE_REF, check=False)
            # The image itself only where no name is left on it: a bootstrap is
            # reproducible, so the user's own base (pyrlab-debian:trixie) can be this very
            # image, and `rmi ID` of an image with one name left removes that name too.
            left = engine.image(image_id) if image_id else None
            if image_id and left is not None and not left.get("RepoTags"):
                engine("rmi", image_id, check=False)


@pytest.fixture(scope="session")
def foreign_bases() -> Iterator[Callable[[str], ForeignBase]]:
    """A function engine_name → the session's Debian trixie base for the other supported
    platform, made under emulation by `pyrlab bootstrap --platform P --tag BASE_REF` the
    first time it is asked for (a few minutes: the platform's tests share it) and removed
    at the end of the session (kept, and reused, with PYRLAB_TEST_KEEP_BASE=1). Skipped
    without emulation (failed in CI)."""
    host = host_platform()
    foreign = next((p for p in SUPPORTED if p != host), "")
    made: dict[str, tuple[EngineCli, ForeignBase]] = {}

    def get(engine_name: str) -> ForeignBase:
        if engine_name in made:
            return made[engine_name][1]
        if not foreign or host not in SUPPORTED:
            pytest.skip(f"no other platform to build for on {host}")
        problem = host_problem(foreign, host)
        if problem is not None:
            engine_unavailable(f"no emulation here: {problem}: bash .ci/setup-host.sh "
                               "--tests registers it")
        engine = checked_engine(engine_name)
        ref = platform_ref(BASE_REF, foreign, host)
        data: dict[str, Any] = {}
        started = time.monotonic()
        if not (KEEP_BASE and engine.image(ref)):
            done = run_pyrlab("bootstrap", "--engine", engine_name, "--suite", "trixie",
                              "--tag", BASE_REF, "--platform", foreign, "--json", timeout=1200)
            assert done.returncode == 0, f"pyrlab bootstrap --platform failed:\n{done.stderr}"
            data = json.loads(done.stdout)
        made[engine_name] = (engine, ForeignBase(foreign, ref, data,
                                                 time.monotonic() - started))
        return made[engine_name][1]

    yield get
    if not KEEP_BASE:
        for engine, base in made.values():
            engine("rmi", base.ref, check=False)


@pytest.fixture
def base_image(engine_name: str, bootstrapped_bases: Callable[[str], str]) -> str:
    """The session's bootstrapped base in the engine under test (see bootstrapped_bases)."""
    return bootstrapped_bases(engine_name)


@pytest.fixture(scope="session")
def host_ca_files() -> list[Path]:
    """The host's extra CA certificates (/usr/local/share/ca-certificates/*.crt): what a
    lab needs in [base] ca_certificates where TLS goes through an intercepting proxy."""
    return sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []


@pytest.fixture
def lab_prefix() -> str:
    """A fresh `pyrlab-test-<random>/` image prefix for this test's labs."""
    return new_prefix()


@pytest.fixture
def make_lab(tmp_path: Path, engine_name: str, lab_prefix: str, host_ca_files: list[Path],
             bootstrapped_bases: Callable[[str], str]) -> Iterator[Callable[..., Lab]]:
    """make_lab(case, name=None, **values) → Lab in tmp_path (see copy_case); after the
    test, every image under lab_prefix and every untagged image its labs built is removed."""
    labs: list[Lab] = []

    def make(case: str, *, name: str | None = None, **values: str) -> Lab:
        lab = copy_case(case, tmp_path / (name or case), prefix=lab_prefix,
                        engine_name=engine_name, host_ca_files=host_ca_files,
                        base=bootstrapped_bases, **values)
        labs.append(lab)
        return lab

    yield make
    remove_lab_images(engine_name, lab_prefix, labs)


@pytest.fixture(scope="session")
def get_engine() -> Callable[[str], EngineCli]:
    """get_engine(name) → that engine's CLI, checked to work (skip, or fail in CI)."""
    return checked_engine


@pytest.fixture(scope="module")
def make_module_lab(tmp_path_factory: pytest.TempPathFactory, host_ca_files: list[Path],
                    bootstrapped_bases: Callable[[str], str]) -> Iterator[Callable[..., Lab]]:
    """make_module_lab(case, engine_name, name=None, **values) → Lab, like make_lab but
    shared by the tests of one module (built once, looked at by several); its images go
    when the module is done."""
    made: list[Lab] = []

    def make(case: str, engine_name: str, *, name: str | None = None, **values: str) -> Lab:
        checked_engine(engine_name)
        root = tmp_path_factory.mktemp(name or case) / (name or case)
        lab = copy_case(case, root, prefix=new_prefix(), engine_name=engine_name,
                        host_ca_files=host_ca_files, base=bootstrapped_bases, **values)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        remove_lab_images(lab.engine_name, lab.prefix, [lab])


@pytest.fixture(scope="module")
def bad_wheel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a wheel that installs but raises on import (labtools.make_bad_wheel),
    served on 127.0.0.1 while the module's tests run (builds need host networking)."""
    folder = tmp_path_factory.mktemp("wheels")
    name = make_bad_wheel(folder)
    with serve_folder(folder) as url:
        yield f"{url}/{name}"
