"""pyrlab.lock as input to builds, against the in-memory engine of test_build_plan: a plain
build prefers the locked versions, `build --locked` checks the lists against the lock
(errors name FILE:LINE and the package) and installs exactly the lock, and the pins never
make an unchanged project look changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from labfiles import make_project
from test_build_lock import build_json, pyrlab, python_versions, use_fake_engine
from test_build_plan import FILES, FakeEngine

from pyrlab.config.project import load_project
from pyrlab.dockerfile.render import Pins, RenderOptions, render_context, with_pins
from pyrlab.errors import EXIT_CONFIG
from pyrlab.imagebuild.pins import pins_for
from pyrlab.inventory.lockfile import read_lock, write_lock
from pyrlab.inventory.model import PyDist


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path / "lab", FILES)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    return use_fake_engine(monkeypatch)


def set_locked_version(lab: Path, image: str, name: str, version: str) -> None:
    """Edit pyrlab.lock as a teammate's commit would."""
    lock = read_lock(lab / "pyrlab.lock")
    section = lock[image]
    python = tuple(PyDist(d.name, version) if d.name == name else d for d in section.python)
    lock[image] = dataclasses.replace(section, python=python)
    write_lock(lab / "pyrlab.lock", lock)


def actions(data: dict[str, object]) -> dict[str, str]:
    images = data["images"]
    assert isinstance(images, list)
    return {i["name"]: i["action"] for i in images}


def test_pins_do_not_feed_the_input_hash(lab: Path) -> None:
    project = load_project(lab, environ={})
    context = render_context(project, "pylab")
    pinned = with_pins(context, Pins("exact", ("six==1.0",)))
    assert pinned.input_hash == context.input_hash
    assert pinned.files["pyrlab/pins/exact.txt"][0] == b"six==1.0\n"
    assert "pyrlab/pins/prefer.txt" not in pinned.files
    # An image without a Python step gets no pins at all.
    base = render_context(project, "pyrlab-base")
    assert with_pins(base, Pins("exact", ("six==1.0",))) == base


def test_with_run_input_keys_the_python_step_s_key_sees_the_pins(lab: Path) -> None:
    project = load_project(lab, environ={})
    context = render_context(project, "pylab", RenderOptions(run_input_keys=True))
    a = with_pins(context, Pins("exact", ("six==1.0",)))
    b = with_pins(context, Pins("exact", ("six==2.0",)))
    assert a.input_hash == b.input_hash == context.input_hash
    assert a.dockerfile != b.dockerfile
    assert "uv-install # inputs pins " in a.dockerfile


def test_a_plain_build_after_a_build_is_a_no_op_in_either_mode(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    assert set(actions(build_json(capsys, lab)).values()) == {"skipped"}
    assert set(actions(build_json(capsys, lab, "--locked")).values()) == {"skipped"}
    assert set(actions(build_json(capsys, lab)).values()) == {"skipped"}


def test_a_plain_build_keeps_locked_versions_and_resolves_new_entries(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    engine.versions = {"six": "2.0", "idna": "3.0"}  # newer releases on the index now
    (lab / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, lab)
    assert python_versions(lab, "pylab") == {"six": "1.0", "idna": "3.0"}
    assert ("pylab", "prefer.txt", "six==1.0\n") in engine.pins


def test_a_new_image_prefers_what_its_parent_has_locked(lab: Path, engine: FakeEngine,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    project = load_project(lab, environ={})
    lock = read_lock(lab / "pyrlab.lock")
    del lock["pylab-torch"]
    assert pins_for(project, "pylab-torch", lock, "prefer") == Pins("prefer", ("six==1.0",))
    assert pins_for(project, "pylab-torch", lock, "exact") == Pins("exact", ())


def test_locked_rebuilds_an_image_that_differs_from_the_lock_and_installs_exactly_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    set_locked_version(lab, "pylab", "six", "0.9")
    data = build_json(capsys, lab, "--locked")
    reasons = {i["name"]: i["reason"] for i in data["images"]}
    assert actions(data)["pylab"] == "built"
    assert reasons["pylab"] == "Python packages differ from the lock: six"
    assert actions(data)["other"] == "skipped"
    assert ("pylab", "exact.txt", "six==0.9\n") in engine.pins
    assert python_versions(lab, "pylab") == {"six": "0.9"}
    # What was built is the lock: the next builds, plain or locked, have nothing to do.
    assert set(actions(build_json(capsys, lab)).values()) == {"skipped"}
    assert set(actions(build_json(capsys, lab, "--locked")).values()) == {"skipped"}


def test_locked_refuses_entries_the_lock_cannot_satisfy_naming_file_line_and_package(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    built = list(engine.built)
    (lab / "requirements.txt").write_text("six>=2\n# a comment\nidna\n")
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--locked")
    assert code == EXIT_CONFIG
    assert ("requirements.txt:1: six: locked at 1.0, which 'six>=2' does not allow"
            in err)
    assert "requirements.txt:3: idna: not in lab/pyrlab.lock [pylab]" in err
    assert engine.built == built  # nothing was built


def test_locked_accepts_a_loosened_entry_the_locked_version_satisfies(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    engine.versions = {"six": "2.0"}
    (lab / "requirements.txt").write_text("six>=0.5\n")
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--locked")
    assert code == 0, err
    assert python_versions(lab, "pylab") == {"six": "1.0"}


def test_locked_without_a_lock_section_says_to_build_first(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--locked")
    assert code == EXIT_CONFIG
    assert "no section for the image 'pylab': build it without --locked first" in err
    assert engine.built == []
