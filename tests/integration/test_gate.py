"""The self-test for real: `pyrlab test` on a good image, the gate in `build` stopping a
requirement that installs but fails on import (a wheel made here, served on 127.0.0.1),
`--no-test` letting it through, and `rollback` putting the last good image back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from labtools import BAD_WHEEL_ERROR, EngineCli, Lab

from pyrlab.contents.lockfile import read_lock

pytestmark = pytest.mark.integration

ENGINE = "docker"
CHILD = """
[images.pylab-child]
from = "pylab"
requirements = ["child.txt"]
"""


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def lab(make_module_lab: Callable[..., Lab], engine: EngineCli) -> Lab:
    """The small lab plus a child of pylab, built once (with the gate)."""
    lab = make_module_lab("small", ENGINE)
    (lab.root / "pyrlab.toml").write_text((lab.root / "pyrlab.toml").read_text() + CHILD)
    (lab.root / "child.txt").write_text("six\n")
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    return lab


def images(done: Any) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in json.loads(done.stdout)["images"]}


def test_build_tests_each_image_and_pyrlab_test_lists_what_it_checked(lab: Lab) -> None:
    done = lab.pyrlab("test", "pylab", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    [result] = json.loads(done.stdout)["images"]
    modules = {(c["name"], c["what"]) for c in result["checks"]}
    assert modules == {("six", "six"), ("packaging", "packaging")}
    assert all(c["ok"] and c["where"].startswith("requirements.txt:") for c in result["checks"])
    text = lab.pyrlab("test", "pylab")
    assert text.returncode == 0
    assert "pylab (" in text.stdout and "ok; 2 imports" in text.stdout
    assert "imported: packaging, six" in text.stdout
    print(f"\npyrlab test pylab: {result['seconds']}s")


def test_a_one_package_delta_is_gated_in_seconds(lab: Lab, engine: EngineCli) -> None:
    requirements = lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "idna\n")
    done = lab.pyrlab("build", "pylab", "--json")
    assert done.returncode == 0, done.stderr
    pylab = images(done)["pylab"]
    assert "1 added: a layer on" in pylab["reason"]
    assert [(c["name"], c["ok"]) for c in pylab["test"]["checks"]] == [("idna", True)]
    seconds = json.loads(done.stdout)["seconds"]
    print(f"\none-package delta: build {pylab['seconds']}s, gate {pylab['test']['seconds']}s; "
          f"totals {seconds}")


def test_an_import_failure_stops_the_gate_and_no_test_lets_it_through(
        lab: Lab, engine: EngineCli, bad_wheel_url: str) -> None:
    latest = engine.image_id(lab.ref("pylab"))
    child = engine.image_id(lab.ref("pylab-child"))
    lock = (lab.root / "pyrlab.lock").read_bytes()
    requirements = lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + f"badmod @ {bad_wheel_url}\n")
    done = lab.pyrlab("build", "--network-host")
    assert done.returncode == 5, done.stderr
    assert "pylab failed its self-test: import badmod (badmod) [requirements.txt:" in done.stderr
    assert BAD_WHEEL_ERROR in done.stderr
    assert f"{lab.ref('pylab')} was not changed, the new image is {lab.ref('pylab', 'failed')}" \
        in done.stderr
    assert engine.image_id(lab.ref("pylab")) == latest
    failed = engine.image_id(lab.ref("pylab", "failed"))
    assert failed is not None and failed != latest
    assert engine.image_id(lab.ref("pylab-child")) == child  # not built on the failed one
    assert (lab.root / "pyrlab.lock").read_bytes() == lock
    # The failed image is there to look into: badmod is installed in it.
    shown = engine("run", "--rm", lab.ref("pylab", "failed"), "python", "-c",
                   "import importlib.metadata as m; print(m.version('badmod'))")
    assert shown.stdout.strip() == "1.0"

    through = lab.pyrlab("build", "--network-host", "--no-test", "--json")
    assert through.returncode == 0, through.stderr
    built = images(through)
    assert built["pylab"]["action"] == "built" and built["pylab"]["test"] is None
    assert built["pylab-child"]["action"] == "built"
    assert engine.image_id(lab.ref("pylab", "previous")) == latest
    assert "badmod" in {d.name for d in read_lock(lab.root / "pyrlab.lock")["pylab"].packages("python")}

    # pyrlab test finds the same failure in the image that went through.
    tested = lab.pyrlab("test", "pylab")
    assert tested.returncode == 7
    assert "FAIL import badmod (badmod) [requirements.txt:" in tested.stdout
    assert BAD_WHEEL_ERROR in tested.stdout


def test_rollback_restores_the_previous_image_and_its_lock_section(
        lab: Lab, engine: EngineCli) -> None:
    bad = engine.image_id(lab.ref("pylab"))
    good = engine.image_id(lab.ref("pylab", "previous"))
    assert good is not None and bad != good
    done = lab.pyrlab("rollback", "pylab")
    assert done.returncode == 0, done.stderr
    assert engine.image_id(lab.ref("pylab")) == good
    assert engine.image_id(lab.ref("pylab", "trixie")) == good
    assert engine.image_id(lab.ref("pylab", "rolled-back")) == bad
    names = {d.name for d in read_lock(lab.root / "pyrlab.lock")["pylab"].packages("python")}
    assert "badmod" not in names and "idna" in names
    assert "next `pyrlab build` rebuilds pylab-child" in done.stdout
    again = lab.pyrlab("rollback", "pylab")
    assert again.returncode == 8 and "nothing to roll back to" in again.stderr
