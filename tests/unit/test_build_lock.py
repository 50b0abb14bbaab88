"""`build` keeps pyrlab.lock up to date, against the in-memory engine (fakes.py):
each image built is read from its manifest, skipped ones keep their section (unless it is
missing or of another build), a failed build leaves the lock alone, a broken lock stops the
build before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import BASE_ID, FakeEngine
from labfiles import build_json, pyrlab, python_versions

from pyrlab.cli import main
from pyrlab.contents.lockfile import read_lock
from pyrlab.ecosystems.python import PyDist
from pyrlab.errors import EXIT_BUILD, EXIT_CONFIG

IMAGES = ["other", "pylab", "pylab-torch", "pyrlab-base"]
# --------------------------------------------------------------------------- build → lock


def test_a_build_records_every_image_it_built_in_pyrlab_lock(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    data = build_json(capsys, lab)
    assert data["lock"] == {"path": "pyrlab.lock", "changed": True,
                            "recorded": ["pyrlab-base", "pylab", "pylab-torch", "other"]}
    lock = read_lock(lab / "pyrlab.lock")
    assert sorted(lock) == IMAGES
    pylab = lock["pylab"]
    assert pylab.packages("python") == (PyDist("six", "1.0"),)
    assert lock["pylab-torch"].packages("python") == (PyDist("packaging", "1.0"), PyDist("six", "1.0"))
    built = engine.image("t/pylab:latest")
    assert built is not None
    assert pylab.meta.input_hash == built.labels["org.pyrlab.input-hash"]
    assert pylab.meta.base_id == f"sha256:{BASE_ID}"  # the build argument of the last step
    assert {args["PYRLAB_BASE_ID"] for args in engine.build_args} == {f"sha256:{BASE_ID}"}


def test_a_rebuild_records_what_it_built_and_keeps_the_other_sections(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    other_before = read_lock(lab / "pyrlab.lock")["other"]
    (lab / "requirements.txt").write_text("six\nidna\n")
    data = build_json(capsys, lab)
    assert data["lock"]["recorded"] == ["pylab", "pylab-torch"]
    assert python_versions(lab, "pylab") == {"idna": "1.0", "six": "1.0"}
    assert read_lock(lab / "pyrlab.lock")["other"] == other_before
    text = main(["build", "-C", str(lab)])
    assert text == 0
    assert capsys.readouterr().out.splitlines()[-1] == "pyrlab.lock: unchanged"


def test_a_build_with_nothing_to_do_leaves_the_lock_file_alone(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    before = (lab / "pyrlab.lock").stat()
    data = build_json(capsys, lab)
    assert data["lock"] == {"path": "pyrlab.lock", "changed": False, "recorded": []}
    assert (lab / "pyrlab.lock").stat().st_mtime_ns == before.st_mtime_ns


def test_skipped_images_without_a_section_are_read_from_their_images(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    written = (lab / "pyrlab.lock").read_text()
    (lab / "pyrlab.lock").unlink()
    data = build_json(capsys, lab)
    assert {i["action"] for i in data["images"]} == {"skipped"}
    assert sorted(data["lock"]["recorded"]) == IMAGES
    assert (lab / "pyrlab.lock").read_text() == written


def test_a_failed_build_leaves_the_lock_untouched_and_the_next_one_catches_up(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    written = (lab / "pyrlab.lock").read_bytes()
    (lab / "requirements.txt").write_text("six\nidna\n")
    (lab / "torch.txt").write_text("broken\n")
    code, _, err = pyrlab(capsys, "build", "-C", str(lab))
    assert code == EXIT_BUILD and "building pylab-torch failed" in err
    assert engine.image("t/pylab:latest") is not None and "pylab" in engine.built[4:]
    assert (lab / "pyrlab.lock").read_bytes() == written
    # pylab is up to date now and skipped; its section is of the image before: read again.
    (lab / "torch.txt").write_text("packaging\n")
    data = build_json(capsys, lab)
    assert [(i["name"], i["action"]) for i in data["images"] if i["action"] == "built"] == [
        ("pylab-torch", "built")]
    assert data["lock"]["recorded"] == ["pylab", "pylab-torch"]
    assert python_versions(lab, "pylab") == {"idna": "1.0", "six": "1.0"}


def test_a_broken_lock_stops_the_build_before_anything_is_built(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    (lab / "pyrlab.lock").write_text("version = 1\n\n[images.pylab\n")
    code, _, err = pyrlab(capsys, "build", "-C", str(lab))
    assert code == EXIT_CONFIG
    assert "pyrlab: error: pyrlab.lock:3: not valid TOML" in err
    assert "delete pyrlab.lock and run `pyrlab lock`" in err
    assert engine.built == []
