"""Inventory and the self-test gate on Podman, for real (cases/small on the session's base
bootstrapped into Podman): after a build, pyrlab.lock lists exactly what the containers
report, and a requirement that installs but fails on import fails the gate, keeping
`latest` and the lock, and naming the module.

The expectations come from the containers themselves (importlib.metadata in /opt/venv,
dpkg-query), never from the collector pyrlab puts into images; test_image_inventory.py
and test_gate.py check the same with Docker.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from labtools import BAD_WHEEL_ERROR, EngineCli, Lab, installed_debs, venv_dists

from pyrlab.contents.lockfile import read_lock

pytestmark = pytest.mark.integration

ENGINE = "podman"
IMAGES = ("pyrlab-base", "pylab")


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def lab(make_module_lab: Callable[..., Lab], engine: EngineCli) -> Lab:
    """The small lab, built once for the module with Podman (and its self-test gate)."""
    lab = make_module_lab("small", ENGINE)
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    assert "engine: podman" in done.stderr
    assert json.loads(done.stdout)["lock"]["recorded"] == list(IMAGES)
    return lab


def test_the_lock_lists_exactly_what_the_podman_containers_report(
        lab: Lab, engine: EngineCli) -> None:
    lock = read_lock(lab.root / "pyrlab.lock")
    assert sorted(lock) == sorted(IMAGES)
    for image in IMAGES:
        ref = lab.ref(image)
        section = lock[image]
        assert {p.name: p.version for p in section.packages("python")} == venv_dists(engine, ref), image
        assert {p.name: p.version for p in section.packages("debian")} == installed_debs(engine, ref), image
        assert section.packages("r") == ()
        assert section.meta.input_hash == engine.labels(ref)["org.pyrlab.input-hash"]
    # The lab's own list is in there (what the venv reports is not empty by accident).
    assert {"six", "packaging"} <= {p.name for p in lock["pylab"].packages("python")}


def test_an_import_failure_fails_the_gate_on_podman_and_keeps_latest(
        lab: Lab, engine: EngineCli, bad_wheel_url: str) -> None:
    latest = engine.image_id(lab.ref("pylab"))
    assert latest is not None
    lock = (lab.root / "pyrlab.lock").read_bytes()
    requirements = lab.root / "requirements.txt"
    before = requirements.read_text()
    requirements.write_text(before + f"badmod @ {bad_wheel_url}\n")
    try:
        done = lab.pyrlab("build", "--network-host")
    finally:
        requirements.write_text(before)
    assert done.returncode == 5, done.stderr  # a build failed
    assert "pylab failed its self-test: import badmod (badmod) [requirements.txt:" in done.stderr
    assert BAD_WHEEL_ERROR in done.stderr
    assert f"{lab.ref('pylab')} was not changed, the new image is {lab.ref('pylab', 'failed')}" \
        in done.stderr
    assert engine.image_id(lab.ref("pylab")) == latest
    assert (lab.root / "pyrlab.lock").read_bytes() == lock
    failed = engine.image_id(lab.ref("pylab", "failed"))
    assert failed is not None and failed != latest
    # NAME:failed is the image that failed: badmod is installed in it.
    assert venv_dists(engine, lab.ref("pylab", "failed")).get("badmod") == "1.0"
