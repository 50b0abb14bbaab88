"""`upgrade`: rebuild without the layer cache and without pyrlab.lock's versions, update
the lock, show what changed; `--dry-run` is `outdated`. Against the in-memory engine of
test_build_plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import APT_OUTPUT, RESOLUTION_JSON, FakeEngine
from labfiles import build_json, make_project, pyrlab, python_versions

from pyrlab.config.project import load_project
from pyrlab.contents.lockfile import read_lock
from pyrlab.ecosystems.python import UV_RESOLVE
from pyrlab.engines.base import RunRequest
from pyrlab.errors import EXIT_BUILD, EngineError
from pyrlab.imagebuild.planner import make_plan


def test_upgrade_rebuilds_everything_without_pins_and_shows_what_changed(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.versions = {"six": "1.0"}
    build_json(capsys, lab)
    engine.versions = {"six": "2.0"}
    # A plain build keeps six at its locked version, an upgrade moves it.
    (lab / "requirements.txt").write_text("six>=0.1\n")
    assert {i["name"]: i["action"] for i in build_json(capsys, lab)["images"]}["pylab"] == "built"
    assert python_versions(lab, "pylab") == {"six": "1.0"}
    engine.pins.clear()
    code, out, err = pyrlab(capsys, "upgrade", "-C", str(lab), "--keep-base", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [i["name"] for i in data["images"]] == ["pyrlab-base", "pylab", "pylab-torch",
                                                   "other"]
    assert python_versions(lab, "pylab") == {"six": "2.0"}
    assert {(image, pins, text) for image, pins, text in engine.pins
            if pins.startswith("python/")} == {
        ("pylab", "python/fresh.txt", ""), ("pylab-torch", "python/fresh.txt", ""),
        ("other", "python/fresh.txt", "")}
    assert all(text == "" for _, _, text in engine.pins)  # no Debian or R pins either
    changes = {c["image"]: c for c in data["changes"]}
    assert changes["pylab"]["status"] == "changed"
    code, out, _ = pyrlab(capsys, "upgrade", "-C", str(lab), "--keep-base")
    assert "No package changed." in out


def test_upgrade_dry_run_is_outdated(lab: Path, engine: FakeEngine,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    build_json(capsys, lab)
    built = list(engine.built)

    def run(request: RunRequest) -> str:
        return RESOLUTION_JSON if request.command == UV_RESOLVE else APT_OUTPUT

    monkeypatch.setattr(engine, "run", run)
    code, out, _ = pyrlab(capsys, "upgrade", "-C", str(lab), "--dry-run", "pylab")
    assert code == 0 and "pylab: 1 outdated" in out and "six" in out
    assert engine.built == built


def test_upgrade_makes_a_present_base_again(tmp_path: Path) -> None:
    engine = FakeEngine()
    boot = make_project(tmp_path / "boot", {"pyrlab.toml": '[base]\nbootstrap = "trixie"\n'
                                           'image = "t/debian:trixie"\ndebs = []\n'
                                           '[images.pyrlab-base]\n'})
    project = load_project(boot, environ={})
    assert make_plan(project, engine, None).base.action == "use"
    plan = make_plan(project, engine, None, no_cache=True, rebootstrap=True)
    assert (plan.base.action, plan.base.reason) == ("bootstrap", "made again from Debian trixie")
    assert plan.images[0].decision.build


def test_upgrade_of_a_base_with_no_registry_names_keep_base(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    build_json(capsys, lab)

    def no_registry(ref: str, on_line: object) -> None:
        raise EngineError(f"cannot pull {ref}: pull access denied")

    monkeypatch.setattr(engine, "pull", no_registry)
    code, _, err = pyrlab(capsys, "upgrade", "-C", str(lab))
    assert code == EXIT_BUILD
    assert "t/debian:trixie cannot be pulled: pull access denied" in err
    assert "`pyrlab upgrade --keep-base` builds on it as it is" in err


def test_upgrade_reads_the_lock_once(lab: Path, engine: FakeEngine,
                                     capsys: pytest.CaptureFixture[str],
                                     lock_reads: list[str]) -> None:
    engine.versions = {"six": "1.0"}
    build_json(capsys, lab)
    engine.versions = {"six": "2.0"}
    lock_reads.clear()
    code, out, err = pyrlab(capsys, "upgrade", "-C", str(lab), "--keep-base", "--json")
    assert code == 0, err
    # What changed is told from the lock as read before the build and as written after it.
    assert lock_reads == ["pyrlab.lock"]
    changes = {c["image"]: c["status"] for c in json.loads(out)["changes"]}
    assert changes == {"pyrlab-base": "unchanged", "pylab": "changed",
                       "pylab-torch": "changed", "other": "unchanged"}
    assert read_lock(lab / "pyrlab.lock")["pylab"].packages("python")[0].version == "2.0"
