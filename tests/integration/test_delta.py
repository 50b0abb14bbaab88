"""Delta builds for real: adding lines to a list builds one small layer on the image's
previous version (only the new packages installed and compiled), the result holds what a
full build holds, and removing a line goes back to a full build."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from labtools import EngineCli, Lab

pytestmark = pytest.mark.integration

ENGINE = "docker"
FREEZE = ("import importlib.metadata as m, json; "
          "print(json.dumps(sorted((d.metadata['Name'].lower(), d.version) "
          "for d in m.distributions())))")


def by_name(done: object) -> dict[str, dict[str, object]]:
    stdout = done.stdout
    return {image["name"]: image for image in json.loads(stdout)["images"]}


def distributions(engine: EngineCli, ref: str) -> list[list[str]]:
    return json.loads(engine("run", "--rm", ref, "python", "-c", FREEZE).stdout)


def layers(engine: EngineCli, ref: str) -> list[str]:
    info = engine.image(ref)
    assert info is not None
    return list(info["RootFS"]["Layers"])  # type: ignore[index]


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


def test_adding_a_package_builds_a_small_layer_that_equals_a_full_build(
        make_module_lab: Callable[..., Lab], engine: EngineCli) -> None:
    lab = make_module_lab("small", ENGINE)
    first = lab.pyrlab("build", "--json")
    assert first.returncode == 0, first.stderr
    before = layers(engine, lab.ref("pylab"))
    base_id = engine.image_id(lab.ref("pyrlab-base"))

    requirements = lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "idna\n")
    delta = lab.pyrlab("build", "--json")
    assert delta.returncode == 0, delta.stderr
    images = by_name(delta)
    assert images["pyrlab-base"]["action"] == "skipped"
    assert images["pylab"]["action"] == "built"
    assert "1 added: a layer on" in str(images["pylab"]["reason"])
    labels = engine.labels(lab.ref("pylab"))
    assert labels["org.pyrlab.delta-depth"] == "1"
    assert labels["org.pyrlab.parent-id"] == base_id
    # The new image is the old one plus its own layers: nothing below was redone.
    after = layers(engine, lab.ref("pylab"))
    assert after[: len(before)] == before and len(after) > len(before)
    # idna is installed and compiled: another UID imports it without writing bytecode.
    check = engine("run", "--rm", "--user", "4242:4242", lab.ref("pylab"), "python", "-c",
                   "import idna, pathlib, sys; p = pathlib.Path(idna.__file__).parent; "
                   "assert list((p / '__pycache__').glob('*.pyc')), 'no bytecode'; "
                   "print(sys.dont_write_bytecode)")
    assert check.stdout.strip() == "False"
    # A plain next build finds it current.
    again = lab.pyrlab("build", "--json")
    assert {n: i["action"] for n, i in by_name(again).items()} == {
        "pyrlab-base": "skipped", "pylab": "skipped"}
    # The same lists built in full give the same distributions and versions.
    delta_dists = distributions(engine, lab.ref("pylab"))
    full = lab.pyrlab("build", "pylab", "--no-cache", "--json")
    assert full.returncode == 0, full.stderr
    assert engine.labels(lab.ref("pylab"))["org.pyrlab.delta-depth"] == "0"
    assert distributions(engine, lab.ref("pylab")) == delta_dists
    assert any(name == "idna" for name, _ in delta_dists)


def test_removing_a_package_builds_in_full(make_module_lab: Callable[..., Lab],
                                          engine: EngineCli) -> None:
    lab = make_module_lab("small", ENGINE, name="removal")
    requirements = lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "idna\n")
    assert lab.pyrlab("build").returncode == 0
    requirements.write_text(requirements.read_text().replace("idna\n", ""))
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    assert "entries were removed or changed" in str(by_name(done)["pylab"]["reason"])
    assert engine.labels(lab.ref("pylab"))["org.pyrlab.delta-depth"] == "0"
    names = [name for name, _ in distributions(engine, lab.ref("pylab"))]
    assert "idna" not in names and "six" in names
