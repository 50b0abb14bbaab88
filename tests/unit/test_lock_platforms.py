"""pyrlab.lock with several platforms (issue 23, step 5): a lock of today (format version 1)
reads and writes byte for byte as before; a second platform makes it version 2, a table per
platform under each image; builds, `--locked`, `lock`, `diff` and `sbom` use one
platform's sections and keep the others'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeEngine
from inventories import inventory
from labfiles import build_json, pyrlab, python_versions
from test_inventory_lock import GOLDEN

from pyrlab.contents.lockfile import (
    Lock,
    LockError,
    infer_platform,
    key_lines,
    on_platform,
    parse_lock,
    parse_lock_all,
    read_lock,
    read_lock_all,
    render_lock,
    render_lock_all,
    update_lock,
)
from pyrlab.contents.model import Inventory
from pyrlab.contents.sbom import sbom
from pyrlab.ecosystems.debian import Deb
from pyrlab.ecosystems.python import PyDist
from pyrlab.errors import EXIT_CONFIG, ConfigError

AMD, ARM = "linux/amd64", "linux/arm64"


def arm_inventory(image: str = "pylab") -> Inventory:
    """`image` as arm64 holds it: arm64 Debian builds, another numpy."""
    return inventory(image, debs=(Deb("libc6", "2.41-12", "arm64"),
                                  Deb("tzdata", "2025b-4", "all")),
                     python=(PyDist("numpy", "2.3.4"),))


def two_platforms(path: Path) -> str:
    """GOLDEN (amd64) at `path`, with pylab's arm64 sections added; the text written."""
    path.write_text(GOLDEN)
    update_lock(path, {"pylab": arm_inventory()}, platform=ARM)
    return path.read_text()


def at(text: str, line_text: str) -> int:
    return text.splitlines().index(line_text) + 1


# --------------------------------------------------------------------------- version 1


def test_a_lock_of_today_reads_and_writes_back_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    path.write_text(GOLDEN)
    lock = read_lock_all(path, host=ARM)
    assert (lock.platforms, lock.recorded) == ((AMD,), False)  # its Debian arch, not the host
    assert render_lock_all(lock) == GOLDEN
    assert render_lock(read_lock(path)) == GOLDEN
    update_lock(path, {}, platform=AMD)  # its own platform: nothing moves
    assert path.read_text() == GOLDEN


def test_a_lock_a_build_wrote_keeps_its_bytes(lab: Path, engine: FakeEngine,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    text = (lab / "pyrlab.lock").read_text()
    assert "version = 1\n" in text and "linux/" not in text
    assert render_lock_all(read_lock_all(lab / "pyrlab.lock", host=ARM)) == text
    build_json(capsys, lab)  # nothing to do: nothing written
    assert (lab / "pyrlab.lock").read_text() == text


@pytest.mark.parametrize(("debs", "host", "inferred"), [
    ((Deb("libc6", "1", "arm64"), Deb("tzdata", "1", "all")), AMD, ARM),
    ((Deb("libc6", "1", "amd64"), Deb("a:i386", "1", "i386"), Deb("b", "1", "amd64")), ARM,
     AMD),  # the most common architecture: a multiarch package does not decide
    ((Deb("tzdata", "1", "all"),), ARM, ARM),  # nothing but `all`: the host's
    ((), AMD, AMD),
    ((Deb("libc6", "1", "riscv64"),), AMD, AMD),  # one pyrlab does not build for
])
def test_a_version_1_lock_describes_its_debian_architecture(
        debs: tuple[Deb, ...], host: str, inferred: str) -> None:
    assert infer_platform({"pylab": inventory(debs=debs)}, host) == inferred


# --------------------------------------------------------------------------- version 2


def test_a_second_platform_makes_version_2_with_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pyrlab.contents.lockfile.host_platform", lambda: AMD)
    path = tmp_path / "pyrlab.lock"
    text = two_platforms(path)
    assert "\nversion = 2\n" in text
    headers = [line for line in text.splitlines() if line.startswith("[")]
    assert headers == [
        '[images.pylab."linux/amd64"]', '[images.pylab."linux/amd64".debs]',
        '[images.pylab."linux/amd64".python]', '[images.pylab."linux/amd64".r]',
        '[images.pylab."linux/arm64"]', '[images.pylab."linux/arm64".debs]',
        '[images.pylab."linux/arm64".python]', '[images.pylab."linux/arm64".r]']
    # amd64's lines are GOLDEN's, under their new headers.
    amd64 = text[text.index('[images.pylab."linux/amd64"]'):text.index('[images.pylab."linux/arm64"]')]
    assert amd64.replace('."linux/amd64"', "") == GOLDEN[GOLDEN.index("[images.pylab]"):] + "\n"
    lock = read_lock_all(path, host=AMD)
    assert (lock.platforms, lock.recorded) == ((AMD, ARM), True)
    assert lock.view(ARM)["pylab"] == on_platform(arm_inventory(), ARM)
    assert lock.view(AMD)["pylab"] == on_platform(inventory(), AMD)
    assert lock.view(AMD)["pylab"].platform == AMD
    # Today's readers see this machine's platform; their inventories say no platform, as before.
    assert read_lock(path) == {"pylab": inventory()} == parse_lock(text)
    assert read_lock(path, platform=ARM) == lock.view(ARM)


def test_version_2_round_trips_byte_for_byte(tmp_path: Path) -> None:
    text = two_platforms(tmp_path / "pyrlab.lock")
    update_lock(tmp_path / "pyrlab.lock", {"rlab": inventory("rlab")}, platform=AMD)
    text = (tmp_path / "pyrlab.lock").read_text()
    assert render_lock_all(parse_lock_all(text, host=ARM)) == text
    # Images sorted, each image's platforms together: a hunk reads "pylab linux/arm64".
    assert text.index('[images.pylab."linux/arm64"]') < text.index('[images.rlab."linux/amd64"]')
    assert '[images.rlab."linux/arm64"]' not in text  # an image may lack a platform


def test_an_update_replaces_one_platform_and_keeps_the_other_s_bytes(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    text = two_platforms(path)
    arm64 = text[text.index('[images.pylab."linux/arm64"]'):]
    newer = inventory(python=(PyDist("numpy", "2.3.6"),))
    assert update_lock(path, {"pylab": newer}, platform=AMD)["pylab"].platform == AMD
    after = path.read_text()
    assert after.endswith(arm64)
    assert read_lock_all(path, host=AMD).view(AMD)["pylab"].packages("python") == (
        PyDist("numpy", "2.3.6"),)


def test_dropping_a_platform_writes_version_1_again(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    two_platforms(path)
    lock = read_lock_all(path, host=AMD)
    assert render_lock_all(lock.without(ARM)) == GOLDEN
    assert not lock.without(ARM).recorded and lock.without(ARM).with_platform(
        ARM, {"pylab": arm_inventory()}).recorded
    assert lock.without(AMD).platforms == (ARM,)
    assert "version = 1" in render_lock_all(lock.without(AMD))
    with pytest.raises(ValueError):
        Lock().with_platform("", {})


def test_problems_in_version_2_name_their_line(tmp_path: Path) -> None:
    text = two_platforms(tmp_path / "pyrlab.lock")
    lines = key_lines(text)  # quoted keys: the platform is one part of the path
    assert lines[("images", "pylab", ARM, "python", "numpy")] == at(text, 'numpy = "2.3.4"')
    assert lines[("images", "pylab", ARM)] == at(text, '[images.pylab."linux/arm64"]')

    def problems(bad: str) -> list[str]:
        with pytest.raises(LockError) as caught:
            parse_lock_all(bad, host=AMD)
        return [str(p) for p in caught.value.problems]

    bad = text.replace('numpy = "2.3.4"', 'numpy = "  "')
    line = at(bad, 'numpy = "  "')
    assert problems(bad) == [f"pyrlab.lock:{line}: 'numpy' has no version"]
    dup = text.replace('numpy = "2.3.4"', 'numpy = "2.3.4"\nNumpy = "1"')
    header = '[images.pylab."linux/arm64".python]'
    assert problems(dup) == [f"pyrlab.lock:{at(dup, header)}: {header} lists 'numpy' twice"]
    wrong = text.replace('"linux/arm64"', '"linux/arm64/v8"')
    line = at(wrong, '[images.pylab."linux/arm64/v8"]')
    assert problems(wrong) == [
        (f'pyrlab.lock:{line}: "linux/arm64/v8" in [images.pylab] is no platform (a version 2 '
        'lock holds a table per platform here, such as "linux/amd64"; write "linux/arm64")')]
    flat = text.replace('[images.pylab."linux/amd64"]\n',
                        '[images.pylab]\ncolour = "blue"\n[images.pylab."linux/amd64"]\n')
    line = at(flat, 'colour = "blue"')
    assert problems(flat) == [
        (f'pyrlab.lock:{line}: "colour" in [images.pylab] is no platform (a version 2 lock '
        'holds a table per platform here, such as "linux/amd64")')]


def test_a_newer_format_is_named() -> None:
    with pytest.raises(LockError, match=r"^pyrlab\.lock:2: unknown lock file version 3 \(this "
                       r"pyrlab reads versions 1 and 2; a newer pyrlab wrote it\?\)$"):
        parse_lock_all("# x\nversion = 3\n", host=AMD)


# --------------------------------------------------------------------------- builds


def test_a_build_keeps_the_other_platform_s_sections(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    path = lab / "pyrlab.lock"
    update_lock(path, {"pylab": arm_inventory()}, platform=ARM)
    arm64 = read_lock_all(path, host=AMD).view(ARM)
    (lab / "requirements.txt").write_text("six\nidna\n")
    code, out, err = pyrlab(capsys, "build", "-C", str(lab), "--platform", AMD, "--json")
    assert code == 0, err
    # The engine's own is built, the other platform's sections kept (version 2).
    assert {i["platform"] for i in json.loads(out)["images"]} == {None}
    lock = read_lock_all(path, host=AMD)
    assert lock.platforms == (AMD, ARM) and lock.view(ARM) == arm64
    assert {d.name for d in lock.view(AMD)["pylab"].packages("python")} == {"idna", "six"}


def test_a_version_1_lock_of_another_platform_gets_this_one_s_beside_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    path = lab / "pyrlab.lock"
    path.write_text(render_lock({"pylab": arm_inventory()}))  # written on an arm64 Mac
    code, out, err = pyrlab(capsys, "build", "-C", str(lab))
    assert code == 0, err
    assert ("pyrlab.lock describes linux/arm64 (its Debian packages' architecture): this "
            "build adds linux/amd64's sections beside it (lock format version 2)") in err + out
    lock = read_lock_all(path, host=AMD)
    assert lock.platforms == (AMD, ARM) and lock.recorded
    assert lock.view(ARM)["pylab"] == on_platform(arm_inventory(), ARM)
    assert python_versions(lab, "pylab") == {"six": "1.0"}  # read_lock: the host's


def test_locked_without_the_platform_fails_before_building_and_names_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    path = lab / "pyrlab.lock"
    path.write_text(render_lock({"pylab": arm_inventory()}))
    code, _, err = pyrlab(capsys, "build", "-C", str(lab), "--locked")
    assert code == EXIT_CONFIG
    assert ("pyrlab: error: pyrlab.lock: no section for "
            "linux/amd64 (it holds linux/arm64)\n") in err
    assert "pyrlab build --platform linux/amd64` (without --locked)" in err
    assert engine.built == [] and engine.contexts == []
    assert path.read_text() == render_lock({"pylab": arm_inventory()})


def test_check_locked_names_the_missing_platform(lab: Path) -> None:
    from pyrlab.config.project import load_project
    from pyrlab.imagebuild.pins import check_locked

    project = load_project(lab, environ={})
    lock = Lock({AMD: {"pylab": inventory()}})
    with pytest.raises(ConfigError) as caught:
        check_locked(project, ["pylab"], lock, "pyrlab.lock", ARM)
    assert str(caught.value) == ("pyrlab.lock: no section for linux/arm64 "
                                 "(it holds linux/amd64)")
    two = Lock({AMD: {"pylab": inventory()}, ARM: {"other": inventory("other")}}, True)
    with pytest.raises(ConfigError) as caught:
        check_locked(project, ["pylab"], two, "pyrlab.lock", ARM)
    assert "no section for the image 'pylab' on linux/arm64" in str(caught.value)


# --------------------------------------------------------------------------- lock, diff, sbom


def test_lock_drop_platform(lab: Path, engine: FakeEngine,
                            capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    path = lab / "pyrlab.lock"
    one = path.read_text()
    update_lock(path, {"pylab": arm_inventory()}, platform=ARM)
    # `pyrlab lock` rewrites the engine's platform's sections, keeps the others.
    code, _, err = pyrlab(capsys, "lock", "-C", str(lab))
    assert code == 0, err
    assert read_lock_all(path, host=AMD).platforms == (AMD, ARM)
    code, out, err = pyrlab(capsys, "lock", "-C", str(lab), "--drop-platform", "aarch64")
    assert code == 0, err
    assert out == "pyrlab.lock: dropped linux/arm64 (pylab); it holds linux/amd64\n"
    assert path.read_text() == one  # version 1 again, byte for byte
    update_lock(path, {"pylab": arm_inventory()}, platform=ARM)
    code, out, err = pyrlab(capsys, "lock", "-C", str(lab), "--drop-platform", ARM, "--json")
    assert code == 0, err
    assert json.loads(out) == {"path": "pyrlab.lock", "dropped": ARM, "images": ["pylab"],
                               "platforms": [AMD]}
    assert path.read_text() == one
    code, _, err = pyrlab(capsys, "lock", "-C", str(lab), "--drop-platform", "linux/arm64")
    assert code == EXIT_CONFIG
    assert "pyrlab.lock: no section for linux/arm64 (it holds linux/amd64)" in err
    code, _, err = pyrlab(capsys, "lock", "-C", str(lab), "--drop-platform", "linux/amd64")
    assert code == EXIT_CONFIG
    assert "linux/amd64 is the only platform pyrlab.lock holds" in err
    assert path.read_text() == one


def test_completion_offers_the_platforms_to_drop_and_to_compare(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from test_completion import candidates

    for name in ("_ARGCOMPLETE", "_ARGCOMPLETE_SUPPRESS_SPACE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("PYRLAB_USER_CONFIG", "")
    for line in ("pyrlab lock --drop-platform linux/", "pyrlab diff --platform linux/"):
        assert candidates(monkeypatch, line, tmp_path) == [AMD, ARM]


def test_diff_compares_one_platform_of_two_locks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_engine: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    two_platforms(tmp_path / "old.lock")
    two_platforms(tmp_path / "new.lock")
    update_lock(tmp_path / "new.lock", {"pylab": inventory(
        debs=(Deb("libc6", "2.41-12", "arm64"),), python=(PyDist("numpy", "2.3.5"),))},
        platform=ARM)
    code, out, _ = pyrlab(capsys, "diff", "old.lock", "new.lock", "--platform", "arm64",
                          "--json")
    data = json.loads(out)
    assert code == 1 and data["platform"] == ARM
    [image] = data["images"]
    assert image["image"] == "pylab"
    assert [(c["name"], c["old_version"], c["new_version"]) for c in image["python"]] == [
        ("numpy", "2.3.4", "2.3.5")]
    code, out, _ = pyrlab(capsys, "diff", "old.lock", "new.lock", "--platform", "amd64")
    assert code == 0 and out.startswith("old.lock → new.lock (linux/amd64)\n")
    (tmp_path / "one.lock").write_text(GOLDEN)
    code, _, err = pyrlab(capsys, "diff", "one.lock", "old.lock", "--platform", "arm64")
    assert code == EXIT_CONFIG
    assert "one.lock: no section for linux/arm64 (it holds linux/amd64)" in err


def test_diff_of_the_images_names_the_engine_s_platform(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab))
    assert code == 0 and out.startswith("pyrlab.lock → the images now\n")  # version 1: as before
    update_lock(lab / "pyrlab.lock", {"pylab": arm_inventory()}, platform=ARM)
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab))
    assert code == 0 and out.startswith("pyrlab.lock → the images now (linux/amd64)\n")
    # The lock's arm64 section against the arm64 images now: none is built here.
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "--platform", "linux/arm64",
                          "--json")
    data = json.loads(out)
    assert (code, data["platform"], data["images"]) == (0, ARM, [])
    assert "pylab" in data["not_built"]


def test_the_sbom_names_the_platform(lab: Path, engine: FakeEngine,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(sbom(inventory(), platform=ARM))
    assert data["metadata"]["component"]["properties"] == [
        {"name": "pyrlab:platform", "value": ARM}]
    assert "properties" not in json.loads(sbom(inventory()))["metadata"]["component"]
    # The serial number is the inventory's, as before.
    assert data["serialNumber"] == json.loads(sbom(inventory()))["serialNumber"]
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "sbom", "-C", str(lab), "pylab")
    assert code == 0
    assert json.loads(out)["metadata"]["component"]["properties"] == [
        {"name": "pyrlab:platform", "value": AMD}]


def test_rollback_replaces_the_engine_s_platform_s_section_only(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    (lab / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, lab)
    path = lab / "pyrlab.lock"
    update_lock(path, {"pylab": arm_inventory()}, platform=ARM)
    arm64 = read_lock_all(path, host=AMD).view(ARM)
    code, _, err = pyrlab(capsys, "rollback", "-C", str(lab), "pylab")
    assert code == 0, err
    lock = read_lock_all(path, host=AMD)
    assert lock.view(ARM) == arm64
    assert {d.name for d in lock.view(AMD)["pylab"].packages("python")} == {"six"}
