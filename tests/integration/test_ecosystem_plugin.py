"""An ecosystem that lives in the tests (files_ecosystem.py: plain files), registered the way
a plug-in would be (pyrlab_with_files.py), built by a real engine: its step installs the
list, its collector records it, and it shows up in pyrlab.lock, `inspect`, `sbom`, the
self-test gate and a one-line delta, with no module of pyrlab changed for it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from files_ecosystem import FILES
from labtools import EngineCli, Lab

from pyrlab import ecosystems
from pyrlab.contents.lockfile import read_lock

pytestmark = pytest.mark.integration

ENGINE = "docker"
WITH_FILES = (str(Path(__file__).parent / "pyrlab_with_files.py"),)


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def files_here() -> Iterator[None]:
    """The ecosystem registered in this process too, while the lab exists: reading the
    lab's config (its cleanup does) needs it, like every pyrlab that works on the lab."""
    undo = ecosystems.register(FILES)
    yield
    undo()


@pytest.fixture(scope="module")
def lab(files_here: None, make_module_lab: Callable[..., Lab], engine: EngineCli) -> Lab:
    """The files lab, built once (with the gate) by pyrlab with the files ecosystem."""
    lab = dataclasses.replace(make_module_lab("files", ENGINE), program=WITH_FILES)
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    return lab


def test_without_its_registration_its_list_key_is_unknown(lab: Lab) -> None:
    plain = dataclasses.replace(lab, program=("-m", "pyrlab"))
    done = plain.pyrlab("check")
    assert done.returncode == 3
    assert "images.filelab.files: unknown key" in done.stderr


def test_its_step_installs_the_list_and_the_lock_records_it(lab: Lab, engine: EngineCli) -> None:
    shown = engine("run", "--rm", "--network", "none", lab.ref("filelab"),
                   "sh", "-c", "cd /opt/files && grep -H . *").stdout
    assert shown.split() == ["hello:1", "world:2"]
    lock = read_lock(lab.root / "pyrlab.lock")
    assert [(f.name, f.version) for f in lock["filelab"].packages("files")] == [
        ("hello", "1"), ("world", "2")]
    assert lock["pyrlab-base"].packages("files") == ()
    text = (lab.root / "pyrlab.lock").read_text()
    assert '[images.filelab.files]\nhello = "1"\nworld = "2"\n' in text


def test_inspect_and_sbom_show_its_packages(lab: Lab) -> None:
    inspected = lab.pyrlab("inspect", "filelab", "--json")
    assert inspected.returncode == 0, inspected.stderr
    image = json.loads(inspected.stdout)
    assert image["files"] == [{"name": "hello", "version": "1"}, {"name": "world", "version": "2"}]
    table = lab.pyrlab("inspect", "filelab")
    assert "Plain files (2)\npackage  version  folder\nhello    1        /opt/files\n" in table.stdout
    sbom = lab.pyrlab("sbom", "filelab")
    assert sbom.returncode == 0, sbom.stderr
    purls = {c.get("purl") for c in json.loads(sbom.stdout)["components"]}
    assert {"pkg:generic/hello@1", "pkg:generic/world@2"} <= purls


def test_the_gate_checks_its_files(lab: Lab) -> None:
    done = lab.pyrlab("test", "filelab", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    [result] = json.loads(done.stdout)["images"]
    assert {(c["kind"], c["name"], c["ok"], c["where"]) for c in result["checks"]} == {
        ("files", "hello", True, "files.txt:2"), ("files", "world", True, "files.txt:3")}
    text = lab.pyrlab("test", "filelab")
    assert "present: hello, world" in text.stdout


def test_a_line_added_to_its_list_is_a_delta_of_its_step(lab: Lab, engine: EngineCli) -> None:
    listed = lab.root / "files.txt"
    listed.write_text(listed.read_text() + "extra=3\n")
    done = lab.pyrlab("build", "filelab", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    [image] = [i for i in json.loads(done.stdout)["images"] if i["name"] == "filelab"]
    assert "1 added: a layer on" in image["reason"]
    assert [(c["name"], c["ok"]) for c in image["test"]["checks"]] == [("extra", True)]
    lock = read_lock(lab.root / "pyrlab.lock")
    assert [(f.name, f.version) for f in lock["filelab"].packages("files")] == [
        ("extra", "3"), ("hello", "1"), ("world", "2")]
