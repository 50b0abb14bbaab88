"""lab_settings.py, the build step that merges pyrlab's JupyterLab setting defaults into an
environment's overrides.json, run here against a throwaway virtual environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from labfiles import CONTAINER

from pyrlab.ecosystems.python import LAB_OVERRIDES

NEWS = "@jupyterlab/apputils-extension:notification"
THEMES = "@jupyterlab/apputils-extension:themes"


def merge_into_venv(tmp_path: Path, shipped: dict[str, object] | None) -> dict[str, object]:
    """What uv-install does after the packages: returns the venv's overrides.json after."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = venv / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    if shipped is not None:  # what a package put there
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(shipped))
    ours = tmp_path / "lab-overrides.json"
    ours.write_text(json.dumps(LAB_OVERRIDES))
    subprocess.run([str(venv / "bin" / "python"), "-I", str(CONTAINER / "lab_settings.py"),
                    str(ours)], check=True)
    merged: dict[str, object] = json.loads(target.read_text())
    return merged


def test_a_fresh_environment_gets_the_news_off(tmp_path: Path) -> None:
    assert merge_into_venv(tmp_path, None) == {NEWS: {"fetchNews": "false"}}


def test_a_shipped_overrides_file_keeps_its_other_settings(tmp_path: Path) -> None:
    merged = merge_into_venv(tmp_path, {
        NEWS: {"fetchNews": "true", "doNotDisturbMode": True},
        THEMES: {"theme": "JupyterLab Dark"},
    })
    assert merged == {
        NEWS: {"fetchNews": "false", "doNotDisturbMode": True},  # ours wins for our key
        THEMES: {"theme": "JupyterLab Dark"},
    }
