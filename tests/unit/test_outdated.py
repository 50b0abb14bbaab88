"""`outdated`: what an upgrade would change, from the indexes' answers inside each image
(throwaway containers) compared with its manifest, against the in-memory engine of
test_build_plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import APT_OUTPUT, RESOLUTION_JSON, FakeEngine
from labfiles import build_json, pyrlab

from pyrlab.contents.model import Inventory, Meta, Outdated
from pyrlab.contents.upgradable import outdated_rows
from pyrlab.ecosystems.debian import APT_UPGRADABLE, apt_simulation_versions
from pyrlab.ecosystems.python import UV_RESOLVE, PyDist, python_resolution
from pyrlab.ecosystems.r import RPkg, r_available_versions
from pyrlab.engines.base import RunRequest


def test_the_indexes_answers_are_read() -> None:
    answer = python_resolution("pip's chatter\n" + RESOLUTION_JSON + "\n")
    assert answer.available == {"six": "2.0", "idna": "1.0"}
    assert [h.describe() for h in answer.notes] == [
        ("held back: idna 1.0, newest 3.0 (major version 3 is out); held by six==2.0 "
        "depends on idna<2")]
    # Only packages installed now: a new dependency is not "outdated".
    assert apt_simulation_versions(APT_OUTPUT).available == {"libc6": "2.41-13"}


def test_outdated_compares_the_answers_with_each_image_s_manifest(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    build_json(capsys, lab)
    asked: list[RunRequest] = []

    def run(request: RunRequest) -> str:
        asked.append(request)
        if request.command == UV_RESOLVE:
            return RESOLUTION_JSON
        assert request.command == APT_UPGRADABLE
        return APT_OUTPUT

    monkeypatch.setattr(engine, "run", run)
    code, out, err = pyrlab(capsys, "outdated", "-C", str(lab), "--json", "pylab",
                            "pyrlab-base")
    assert code == 0, err
    # Debian is "debs" there, as in the lock and `diff --json`.
    assert json.loads(out)["outdated"] == [
        {"image": "pylab", "ecosystem": "python", "name": "six", "installed": "1.0",
         "available": "2.0"},
        {"image": "pyrlab-base", "ecosystem": "debs", "name": "libc6", "installed": "2.41-12",
         "available": "2.41-13"}]
    # Throwaway containers as root, removed after; the Python step's files mounted read-only,
    # and the build secrets (none here: an empty folder), run through net-env.
    assert all(r.remove and not r.detach and r.user == "0:0" for r in asked)
    uv = next(r for r in asked if r.command == UV_RESOLVE)
    assert {m.target for m in uv.mounts} == {"/run/pyrlab/python", "/run/pyrlab/net",
                                             "/run/pyrlab/bin", "/run/pyrlab/secret"}
    assert all(m.read_only for m in uv.mounts)
    held = json.loads(out)["held_back"]
    assert [(h["image"], h["name"], h["holder"]) for h in held] == [
        ("pylab", "idna", "six==2.0 depends on idna<2")]
    # pylab has no Debian step of its own, pyrlab-base no Python step: one question each.
    assert [r.image for r in asked] == ["t/pylab:latest", "t/pyrlab-base:latest"]
    code, out, _ = pyrlab(capsys, "outdated", "-C", str(lab), "pylab")
    assert code == 0 and "pylab: 1 outdated" in out and "six" in out
    assert "pylab: held back: idna 1.0, newest 3.0" in out


def test_r_packages_from_the_repository_are_compared_pinned_and_debian_ones_not() -> None:
    meta = Meta("rlab", "h", "0", "b", "Debian", "debian", "13", "3.13.5", "4.5.0")
    inventory = Inventory(meta, python=(PyDist("six", "2.0"), PyDist("idna", "3.0")), r=(
        RPkg("cli", "3.6.4", "cran"), RPkg("rlang", "1.1.0", "archive"),
        RPkg("MASS", "7.3-60", "debian"), RPkg("glue", "1.8.0", "cran")))
    available = r_available_versions("cli 3.6.5\nrlang 1.1.6\nMASS 7.3-65\nglue 1.8.0\n"
                                     "Warning: something\n")
    rows = outdated_rows("rlab", inventory, {"python": {"six": "1.0", "idna": "3.1"},
                                             "r": available.available})
    assert rows == [Outdated("rlab", "python", "idna", "3.0", "3.1"),
                    Outdated("rlab", "r", "cli", "3.6.4", "3.6.5")]
