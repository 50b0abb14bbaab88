"""pyrlab.lock as input to builds, against the in-memory engine of test_build_plan: a plain
build prefers the locked versions, `build --locked` checks the lists against the lock
(errors name FILE:LINE and the package) and installs exactly the lock, and the pins never
make an unchanged project look changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from fakes import FILES, FakeEngine
from labfiles import build_json, make_project, pyrlab, python_versions

from pyrlab.config.project import load_project
from pyrlab.contents.lockfile import read_lock, write_lock
from pyrlab.contents.model import Inventory, Meta
from pyrlab.dockerfile.render import RenderOptions, render_context
from pyrlab.ecosystems.base import Locked
from pyrlab.ecosystems.debian import Deb, unavailable_debs
from pyrlab.ecosystems.python import PyDist
from pyrlab.ecosystems.r import RPkg
from pyrlab.errors import EXIT_BUILD, EXIT_CONFIG, ConfigError
from pyrlab.imagebuild import executor, orchestration
from pyrlab.imagebuild.pins import ImagePins, check_locked, pins_for, with_pins


def exact(python: tuple[str, ...] = (), debs: tuple[str, ...] = ()) -> ImagePins:
    """--locked pins of Python NAME==VERSION and Debian NAME=VERSION."""
    return ImagePins("exact", Locked({
        "python": tuple(PyDist(*line.split("==")) for line in python),
        "debian": tuple(Deb(*line.split("="), "amd64") for line in debs)}))


def set_locked_version(lab: Path, name: str, version: str) -> None:
    """Edit pyrlab.lock as a teammate's commit would: every section that has `name`."""
    lock = read_lock(lab / "pyrlab.lock")
    for image, section in lock.items():
        python = tuple(PyDist(d.name, version) if d.name == name else d for d in section.packages("python"))
        lock[image] = dataclasses.replace(section, python=python)
    write_lock(lab / "pyrlab.lock", lock)


def actions(data: dict[str, object]) -> dict[str, str]:
    images = data["images"]
    assert isinstance(images, list)
    return {i["name"]: i["action"] for i in images}


FILES_IMAGES = ("pyrlab-base", "pylab", "pylab-torch", "other")


def test_pins_do_not_feed_the_input_hash(lab: Path) -> None:
    project = load_project(lab, environ={})
    context = render_context(project, "pylab")
    pinned = with_pins(context, exact(("six==1.0",), ("jq=1.7-1",)))
    assert pinned.input_hash == context.input_hash
    assert pinned.files["pyrlab/pins/python/exact.txt"][0] == b"six==1.0\n"
    assert "pyrlab/pins/python/prefer.txt" not in pinned.files
    # pylab has no apt step of its own (its parent does): no Debian pins folder.
    assert not any(path.startswith("pyrlab/pins/apt/") for path in pinned.files)
    # An image without a Python step gets no Python pins, but its apt step gets Debian's.
    base = render_context(project, "pyrlab-base")
    pinned_base = with_pins(base, exact(("six==1.0",), ("jq=1.7-1",)))
    assert not any(path.startswith("pyrlab/pins/python/") for path in pinned_base.files)
    assert pinned_base.files["pyrlab/pins/apt/debs.txt"][0] == b"jq=1.7-1\n"
    assert pinned_base.input_hash == base.input_hash


def test_upgrade_tells_the_apt_step_to_update_its_lists(lab: Path) -> None:
    # apt-install skips `apt-get update` on lists updated minutes ago, except for `upgrade`.
    base = render_context(load_project(lab, environ={}), "pyrlab-base")
    fresh = with_pins(base, ImagePins("fresh"))
    assert fresh.files["pyrlab/pins/apt/fresh"][0] == b""
    for mode in ("prefer", "exact"):
        assert "pyrlab/pins/apt/fresh" not in with_pins(base, ImagePins(mode)).files  # type: ignore[arg-type]


def test_with_run_input_keys_the_python_step_s_key_sees_the_pins(lab: Path) -> None:
    project = load_project(lab, environ={})
    context = render_context(project, "pylab", RenderOptions(run_input_keys=True))
    a = with_pins(context, exact(("six==1.0",)))
    b = with_pins(context, exact(("six==2.0",)))
    assert a.input_hash == b.input_hash == context.input_hash
    assert a.dockerfile != b.dockerfile
    assert "uv-install # inputs pins " in a.dockerfile
    # The apt step's key sees the Debian pins, and only those: Python pins leave it alone.
    base = render_context(project, "pyrlab-base", RenderOptions(run_input_keys=True))
    c = with_pins(base, exact(("six==1.0",), ("jq=1.7-1",)))
    d = with_pins(base, exact(("six==2.0",), ("jq=1.7-1",)))
    e = with_pins(base, exact(("six==1.0",), ("jq=1.7-2",)))
    assert "apt-install # inputs pins " in c.dockerfile
    assert c.dockerfile == d.dockerfile != e.dockerfile


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
    assert ("pylab", "python/prefer.txt", "six==1.0\n") in engine.pins


def test_a_new_image_prefers_what_its_parent_has_locked(lab: Path, engine: FakeEngine,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    project = load_project(lab, environ={})
    lock = read_lock(lab / "pyrlab.lock")
    del lock["pylab-torch"]
    prefer = pins_for(project, "pylab-torch", lock, "prefer")
    assert prefer.step_files()["python"] == {"prefer.txt": b"six==1.0\n"}
    assert pins_for(project, "pylab-torch", lock, "exact") == ImagePins("exact")


def test_locked_rebuilds_an_image_that_differs_from_the_lock_and_installs_exactly_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    set_locked_version(lab, "six", "0.9")
    data = build_json(capsys, lab, "--locked")
    reasons = {i["name"]: i["reason"] for i in data["images"]}
    assert actions(data)["pylab"] == "built"
    assert reasons["pylab"] == ("differs from pyrlab.lock: python: six 0.9 in the lock, "
                                "1.0 in the image")
    assert actions(data)["other"] == "skipped"
    assert ("pylab", "python/exact.txt", "six==0.9\n") in engine.pins
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
    assert "requirements.txt:3: idna: not in pyrlab.lock [images.pylab]" in err
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


def set_locked_deb(lab: Path, image: str, name: str, version: str) -> None:
    lock = read_lock(lab / "pyrlab.lock")
    section = lock[image]
    debs = tuple(Deb(d.name, version, d.arch) if d.name == name else d for d in section.packages("debian"))
    lock[image] = dataclasses.replace(section, debs=debs)
    write_lock(lab / "pyrlab.lock", lock)


def test_exact_pins_hold_every_ecosystem_of_the_image_s_own_section(lab: Path) -> None:
    project = load_project(lab, environ={})
    meta = Meta("pylab", "h", "0", "sha256:" + "b" * 64, "Debian", "debian", "13", "3.13.5")
    lock = {"pylab": Inventory(
        meta, debs=(Deb("tini", "0.19.0-3", "amd64"), Deb("libc6:i386", "2.41-12", "i386")),
        python=(PyDist("six", "1.0"),),
        r=(RPkg("jsonlite", "1.8.9", "debian"), RPkg("data.table", "1.16.0", "cran"),
           RPkg("old", "0.1", "archive")))}
    assert pins_for(project, "pylab", lock, "exact").step_files() == {
        "python": {"exact.txt": b"six==1.0\n"},
        "apt": {"debs.txt": b"tini=0.19.0-3\n"},  # no libc6:i386: apt cannot pin it alone
        "r": {"debs.txt": b"tini=0.19.0-3\n", "cran.txt": b"data.table==1.16.0\nold==0.1\n"}}
    # Plain builds pin Python only: a Debian suite has one version of a package.
    assert pins_for(project, "pylab", lock, "prefer").step_files() == {
        "python": {"prefer.txt": b"six==1.0\n"}, "apt": {"debs.txt": b""},
        "r": {"debs.txt": b"", "cran.txt": b""}}


def test_locked_stops_before_building_when_the_sources_no_longer_offer_a_locked_deb(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    built, refs = list(engine.built), dict(engine.refs)
    (lab / "requirements.txt").write_text("six>=0.5\n")  # so that pylab would rebuild
    set_locked_deb(lab, "pylab", "tini", "0.18.0-1")  # a point release replaced it
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--locked")
    assert code == EXIT_BUILD
    assert ("pyrlab.lock (pyrlab-base, pylab, pylab-torch, other): Debian package tini "
            "0.18.0-1: the sources offer 0.19.0-3; --locked cannot pin it") in err
    assert "libc6" not in err  # installed in the base at the locked version
    assert engine.built == built and engine.refs == refs  # nothing built or tagged
    # The same in the base image: one it holds at another version cannot be pinned.
    set_locked_deb(lab, "pylab", "tini", "0.19.0-3")
    set_locked_deb(lab, "pylab", "libc6", "2.41-11")
    engine.apt_offered["libc6"].append("2.41-11")
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--locked")
    assert code == EXIT_BUILD
    assert "libc6 2.41-11: the base image has 2.41-12" in err
    assert engine.built == built


def test_a_locked_build_that_does_not_hold_the_lock_moves_no_tag(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    latest = engine.refs["t/pyrlab-base:latest"]
    # The sources offer the locked version, the apt step gets it as its pin, but the image
    # holds another one (as if apt had ignored the pin): the check against the lock
    # refuses the image, and nothing is built on it.
    set_locked_deb(lab, "pyrlab-base", "tini", "0.18.0-1")
    engine.apt_offered["tini"].append("0.18.0-1")
    engine.pins.clear()
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--locked", "--no-cache",
                          "pyrlab-base")
    assert code == EXIT_BUILD
    assert ("pyrlab-base", "apt/debs.txt", "libc6=2.41-12\ntini=0.18.0-1\n") in engine.pins
    assert ("pyrlab-base failed the check against the lock: debs: tini 0.18.0-1 in the "
            "lock, 0.19.0-3 in the image") in err
    assert engine.refs["t/pyrlab-base:latest"] == latest
    assert "t/pyrlab-base:failed" in engine.refs


def test_locked_checks_debian_and_r_entries_against_the_lock(tmp_path: Path) -> None:
    files = dict(FILES)
    files["pyrlab.toml"] = str(files["pyrlab.toml"]).replace(
        'requirements = ["requirements.txt"]',
        'requirements = ["requirements.txt"]\ndebs = ["debs.txt"]\n'
        'r_packages = ["r.txt"]\nr = "debian"', 1)
    files["debs.txt"] = "tini\njq\n"
    files["r.txt"] = "apt:jsonlite\ndata.table>=1.17\nold==0.2\ndigest\n"
    project = load_project(make_project(tmp_path / "lab", files), environ={})
    meta = Meta("pylab", "h", "0", "sha256:" + "b" * 64, "Debian", "debian", "13", "3.13.5")
    lock = {"pylab": Inventory(
        meta, debs=(Deb("tini", "0.19.0-3", "amd64"),), python=(PyDist("six", "1.0"),),
        r=(RPkg("jsonlite", "1.8.9", "debian"), RPkg("data.table", "1.16.0", "cran"),
           RPkg("old", "0.1", "archive"), RPkg("digest", "0.6.37", "cran")))}
    with pytest.raises(ConfigError) as caught:
        check_locked(project, ["pylab"], lock, "pyrlab.lock")
    assert [str(p) for p in caught.value.problems] == [
        "debs.txt:2: jq: not in pyrlab.lock [images.pylab]",
        "r.txt:2: data.table: locked at 1.16.0, which 'data.table>=1.17' does not allow",
        "r.txt:3: old: locked at 0.1, which 'old==0.2' does not allow",
    ]


def test_apt_s_answer_names_what_cannot_be_pinned() -> None:
    answer = ("installed libc6 2.41-12\ninstalled tini 0.19.0-3\n"
              "offered jq | 1.7.1-6 | http://deb.debian.org/debian trixie/main amd64 Packages\n"
              "offered jq | 1.7.1-5 | http://deb.debian.org/debian trixie/main Sources\n")
    wanted = {"libc6": {"2.41-12"}, "tini": {"0.18.0-1"}, "jq": {"1.7.1-5", "1.7.1-6"},
              "gone": {"1.0-1"}}
    assert unavailable_debs(wanted, answer) == [
        "gone 1.0-1: the sources offer no version of it",
        "jq 1.7.1-5: the sources offer 1.7.1-6",
        "tini 0.18.0-1: the base image has 0.19.0-3",
    ]


def test_a_locked_build_reads_the_lock_once_and_compares_each_image_with_it_once(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, lock_reads: list[str]) -> None:
    build_json(capsys, lab)
    before = {name: engine.refs[f"t/{name}:latest"] for name in FILES_IMAGES}
    set_locked_version(lab, "six", "0.9")  # pylab and pylab-torch no longer hold the lock
    lock_reads.clear()
    compared: list[str] = []  # the image (its manifest's name and ID) of every comparison
    for module in (orchestration, executor):
        def spy(image: Inventory, section: Inventory | None,
                differs: Any = module.differs_from_lock) -> str | None:
            compared.append(image.meta.image)
            result: str | None = differs(image, section)
            return result

        monkeypatch.setattr(module, "differs_from_lock", spy)
    data = build_json(capsys, lab, "--locked")
    assert lock_reads == ["pyrlab.lock"]  # the check, the pins, the base and the record: one read
    assert actions(data) == {"pyrlab-base": "skipped", "pylab": "built",
                             "pylab-torch": "built", "other": "skipped"}
    # The four images there before, each once; then each new one once, after its build.
    assert sorted(compared) == sorted([*before, "pylab", "pylab-torch"])
    assert python_versions(lab, "pylab") == {"six": "0.9"}
