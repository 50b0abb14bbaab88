"""`inspect`, `lock`, `diff` and `sbom` against the in-memory engine of test_build_plan
(images built by `build`, each with the manifest its inventory step would write): text,
JSON, and every user mistake as one message, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fakes import BASE_ID, ORDER, FakeEngine
from labfiles import build_json, pyrlab

from pyrlab.errors import EXIT_BUILD, EXIT_CONFIG, EXIT_DIFFERENT, EXIT_NOT_BUILT, EXIT_USAGE

# --------------------------------------------------------------------------- inspect


def test_inspect_shows_the_facts_and_each_ecosystem(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "inspect", "-C", str(lab), "pylab")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "pylab: Debian GNU/Linux 13 (trixie), Python 3.13.5, no R"
    assert lines[1].startswith("input hash ") and f"base sha256:{BASE_ID}" in lines[1]
    assert "Debian packages (2)" in lines and "Python packages (1)" in lines
    assert "R packages: none" in lines
    assert any(line.split() == ["six", "1.0"] for line in lines)


def test_inspect_json_groups_packages_by_ecosystem(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "inspect", "-C", str(lab), "--json", "pylab-torch")
    assert code == 0
    data = json.loads(out)
    assert data["ref"] == "t/pylab-torch:latest"
    assert data["meta"]["image"] == "pylab-torch"
    assert data["meta"]["os_id"] == "debian" and data["meta"]["python"] == "3.13.5"
    assert data["python"] == [{"name": "packaging", "version": "1.0", "url": ""},
                              {"name": "six", "version": "1.0", "url": ""}]
    assert data["debs"][0] == {"name": "libc6", "version": "2.41-12", "arch": "amd64"}
    assert data["r"] == []


def test_inspect_of_another_tag(lab: Path, engine: FakeEngine,
                                capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    (lab / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "inspect", "-C", str(lab), "--json", "pylab:previous")
    assert code == 0
    assert [p["name"] for p in json.loads(out)["python"]] == ["six"]


def test_inspect_of_a_missing_image_names_the_build_command(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrlab(capsys, "inspect", "-C", str(lab), "pylab")
    assert code == EXIT_NOT_BUILT
    assert "pyrlab: error: image t/pylab:latest is not built" in err
    assert "pyrlab: hint: build it with `pyrlab build pylab`" in err


def test_inspect_of_an_unknown_image(lab: Path, engine: FakeEngine,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrlab(capsys, "inspect", "-C", str(lab), "nolab")
    assert code == EXIT_CONFIG
    assert "unknown image 'nolab' (known: pyrlab-base, pylab, pylab-torch, other)" in err


def test_an_image_without_a_manifest_asks_for_a_rebuild(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    engine.manifests.clear()  # as built by a pyrlab before inventories
    code, _, err = pyrlab(capsys, "inspect", "-C", str(lab), "pylab")
    assert code == EXIT_NOT_BUILT
    assert "t/pylab:latest has no inventory: cannot read /opt/pyrlab/manifest.json" in err
    assert "rebuild it with `pyrlab build pylab`" in err


def test_a_broken_manifest_is_one_error_naming_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    image = engine.image("t/pylab:latest")
    assert image is not None
    engine.manifests[image.id] = b'{"format": 1, "meta": {"pinned_r": "x"}}'
    code, _, err = pyrlab(capsys, "inspect", "-C", str(lab), "pylab")
    assert code == EXIT_BUILD
    assert ("/opt/pyrlab/manifest.json in t/pylab:latest: not a valid pyrlab inventory: "
            "meta.pinned_r: expected a list of strings") in err
    engine.manifests[image.id] = b"\xff not json"
    code, _, err = pyrlab(capsys, "inspect", "-C", str(lab), "pylab")
    assert code == EXIT_BUILD and "not a valid pyrlab inventory: not JSON" in err


def write_user_installs(home: Path) -> None:
    """What pip in pylab and install.packages() in another image leave in the home."""
    site = home / ".local/share/pyrlab/pylab/python3.13/lib/python3.13/site-packages"
    for name, version in (("Tabulate", "0.9.0"), ("six", "1.17.0")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    library = home / ".local/share/pyrlab/other/R/4.5"
    (library / "pyrlabextra").mkdir(parents=True)
    (library / "pyrlabextra" / "DESCRIPTION").write_text(
        "Package: pyrlabextra\nVersion: 0.3\nDescription: a long\n    text\n")


def test_inspect_home_lists_what_the_user_added_per_image_without_an_engine(
        lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    home = lab.parent / "home"
    write_user_installs(home)
    monkeypatch.setenv("PATH", "/nonexistent")  # no engine client: none is needed
    code, out, _ = pyrlab(capsys, "--set", f"run.home={home}", "inspect", "-C", str(lab),
                          "--home", "pylab")
    assert code == 0
    assert out.splitlines() == [
        f"pylab: installed by the lab's user in {home}/.local/share/pyrlab/pylab",
        "Python (2)", "  six       1.17.0  (Python 3.13)", "  tabulate  0.9.0  (Python 3.13)",
        "R: none"]
    code, out, _ = pyrlab(capsys, "--set", f"run.home={home}", "inspect", "-C", str(lab),
                          "--home", "--json", "other")
    assert code == 0
    data = json.loads(out)
    assert data["python"] == []
    assert data["r"] == [{"ecosystem": "r", "name": "pyrlabextra", "version": "0.3",
                          "runtime": "4.5",
                          "path": f"{home}/.local/share/pyrlab/other/R/4.5/pyrlabextra"}]


def test_inspect_home_without_a_home_folder_says_nothing_is_kept(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrlab(capsys, "--set", "run.home=", "inspect", "-C", str(lab), "--home",
                          "pylab")
    assert code == EXIT_CONFIG
    assert "run.home: empty: labs mount no home folder" in err


# --------------------------------------------------------------------------- lock


def test_lock_rewrites_what_build_wrote(lab: Path, engine: FakeEngine,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    written = (lab / "pyrlab.lock").read_text()
    (lab / "pyrlab.lock").unlink()
    code, out, _ = pyrlab(capsys, "lock", "-C", str(lab), "--json")
    assert code == 0
    assert json.loads(out) == {"path": "pyrlab.lock", "images": ORDER,
                               "changed": ORDER, "replaced_unreadable": False}
    assert (lab / "pyrlab.lock").read_text() == written
    code, out, _ = pyrlab(capsys, "lock", "-C", str(lab))
    assert out == "pyrlab.lock: pyrlab-base, pylab, pylab-torch, other (unchanged)\n"


def test_lock_replaces_a_broken_lock_and_drops_images_no_longer_in_the_project(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    written = (lab / "pyrlab.lock").read_text()
    (lab / "pyrlab.lock").write_text(written.replace("[images.pylab]", "[images.old-lab]", 1)
                                     + "[images.pylab\n")
    code, out, _ = pyrlab(capsys, "lock", "-C", str(lab))
    assert code == 0 and "(replaced the unreadable file)" in out
    assert (lab / "pyrlab.lock").read_text() == written


def test_lock_needs_every_image_built(lab: Path, engine: FakeEngine,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab, "pylab")
    code, _, err = pyrlab(capsys, "lock", "-C", str(lab))
    assert code == EXIT_NOT_BUILT
    assert "not built: pylab-torch, other" in err and "`pyrlab build`" in err


# --------------------------------------------------------------------------- diff


def test_diff_without_arguments_compares_the_lock_with_the_images(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab))
    assert code == 0
    assert out.splitlines()[0] == "pyrlab.lock → the images now"
    assert "pylab: unchanged" in out.splitlines()
    # An image rebuilt some other way (here: with a newer six) shows up, as an upgrade.
    engine.versions["six"] = "1.1"
    image = engine.image("t/pylab:latest")
    assert image is not None
    engine.manifests[image.id] = engine.manifests[image.id].replace(b'"1.0"', b'"1.1"')
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "--json")
    assert code == EXIT_DIFFERENT  # as diff(1): 1 when something differs
    data = json.loads(out)
    pylab = next(d for d in data["images"] if d["image"] == "pylab")
    assert pylab["status"] == "changed"
    assert pylab["python"] == [{"ecosystem": "python", "name": "six", "kind": "upgraded",
                                "old_version": "1.0", "new_version": "1.1",
                                "old_origin": "", "new_origin": ""}]
    assert {d["image"]: d["status"] for d in data["images"]}["other"] == "unchanged"


def test_diff_of_two_lock_files_and_of_two_images(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    shutil.copy(lab / "pyrlab.lock", lab / "old.lock")
    (lab / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "--json", "old.lock",
                          "pyrlab.lock")
    assert code == EXIT_DIFFERENT
    changes = {d["image"]: [(c["name"], c["kind"], c["new_version"]) for c in d["python"]]
               for d in json.loads(out)["images"]}
    assert changes == {"other": [], "pylab": [("idna", "added", "1.0")],
                       "pylab-torch": [("idna", "added", "1.0")], "pyrlab-base": []}
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "pylab:previous", "pylab")
    assert code == EXIT_DIFFERENT
    lines = out.splitlines()
    assert lines[0] == "t/pylab:previous → t/pylab:latest"
    assert lines[1] == "pylab: 1 added"
    assert lines[-1].split() == ["python", "idna", "added", "-", "1.0"]
    # The same on both sides: nothing differs, exit code 0.
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "old.lock", "old.lock")
    assert code == 0 and "added" not in out
    code, _, _ = pyrlab(capsys, "diff", "-C", str(lab), "pylab", "pylab:latest")
    assert code == 0


def test_diff_of_two_lock_files_needs_no_project_and_no_engine(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    build_json(capsys, lab)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(lab / "pyrlab.lock", elsewhere / "old.lock")
    (lab / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, lab)
    shutil.copy(lab / "pyrlab.lock", elsewhere / "new.lock")
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(elsewhere))  # no project above: the search stops here
    request.getfixturevalue("no_engine")  # from here on, choosing an engine fails the test
    code, out, err = pyrlab(capsys, "diff", "--engine", "podman", "old.lock", "new.lock")
    assert (code, err) == (EXIT_DIFFERENT, "")
    assert out.splitlines()[0] == "old.lock → new.lock"


def test_diff_of_one_image_compares_its_lock_section(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "pylab")
    assert code == 0
    assert out.splitlines() == ["pyrlab.lock [pylab] → t/pylab:latest", "pylab: unchanged"]


def test_diff_leaves_out_images_that_are_not_built(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    del engine.refs["t/other:latest"]
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["not_built"] == ["other"]
    assert "other" not in {d["image"] for d in data["images"]}


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["a.lock", "b.lock", "c.lock"], EXIT_USAGE, "give at most two images or lock files"),
    (["pylab", "pyrlab.lock"], EXIT_USAGE, "cannot compare an image with a lock file"),
    (["nosuch.lock"], EXIT_CONFIG, "nosuch.lock: no such lock file"),
])
def test_diff_mistakes_are_one_message(lab: Path, engine: FakeEngine,
                                       capsys: pytest.CaptureFixture[str], argv: list[str],
                                       code: int, message: str) -> None:
    build_json(capsys, lab)
    result, _, err = pyrlab(capsys, "diff", "-C", str(lab), *argv)
    assert result == code and message in err


def test_diff_without_a_lock_names_the_command_that_writes_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrlab(capsys, "diff", "-C", str(lab))
    assert code == EXIT_CONFIG
    assert "pyrlab.lock: no such lock file" in err and "`pyrlab lock`" in err


def test_a_corrupt_lock_is_file_and_line(lab: Path, engine: FakeEngine,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    text = (lab / "pyrlab.lock").read_text().replace('six = "1.0"', "six = 1.0", 1)
    (lab / "pyrlab.lock").write_text(text)
    line = text.splitlines().index("six = 1.0") + 1
    code, _, err = pyrlab(capsys, "diff", "-C", str(lab))
    assert code == EXIT_CONFIG
    assert f"pyrlab: error: pyrlab.lock:{line}: 'six' must be a string" in err


# --------------------------------------------------------------------------- sbom


def test_sbom_to_stdout_is_valid_cyclonedx(lab: Path, engine: FakeEngine,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cyclonedx.validation.json import JsonStrictValidator

    from pyrlab.contents.sbom import SCHEMA_VERSION

    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "sbom", "-C", str(lab), "pylab")
    assert code == 0
    assert JsonStrictValidator(SCHEMA_VERSION).validate_str(out) is None
    purls = {c.get("purl") for c in json.loads(out)["components"]}
    assert "pkg:pypi/six@1.0" in purls
    assert "pkg:deb/debian/tini@0.19.0-3?arch=amd64&distro=debian-13" in purls


def test_sbom_to_a_file(lab: Path, engine: FakeEngine,
                        capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "sbom", "-C", str(lab), "pylab", "-o", "pylab.cdx.json")
    assert code == 0
    assert out == ("wrote pylab.cdx.json: CycloneDX 1.6 SBOM of t/pylab:latest "
                   "(4 components)\n")
    document = json.loads((lab / "pylab.cdx.json").read_text())  # -C: inside the lab
    assert document["bomFormat"] == "CycloneDX"
    code, _, err = pyrlab(capsys, "sbom", "-C", str(lab), "pylab", "-o", "no/such/dir/x.json")
    assert code == EXIT_CONFIG and "no/such/dir/x.json: cannot write" in err


def test_the_sbom_command_names_the_cyclonedx_version_it_writes() -> None:
    from pyrlab.commands.sbom import SPEC_VERSION
    from pyrlab.contents.sbom import SCHEMA_VERSION

    assert SCHEMA_VERSION.to_version() == SPEC_VERSION
