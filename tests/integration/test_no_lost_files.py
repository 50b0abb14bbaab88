"""`pyrlab render -o` over a folder that holds a user's file refuses and keeps the file
(issue 21: `render -o .` in a project deleted pylab/analysis.ipynb and exited 0).

A real `pyrlab` process in a real project folder, with the real engine found by
auto-detection, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from labtools import EngineCli

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


def pyrlab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYRLAB_")}
    env["PYRLAB_USER_CONFIG"] = str(cwd / "no-user-file.toml")
    return subprocess.run([sys.executable, "-m", "pyrlab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_render_over_a_users_folder_refuses_and_keeps_the_file(
        tmp_path: Path, engine: EngineCli) -> None:
    done = pyrlab(tmp_path, "init", "lab", "--base", "debian", "--no-host-ca")
    assert done.returncode == 0, done.stderr
    lab = tmp_path / "lab"
    notebook = lab / "pylab" / "analysis.ipynb"
    notebook.parent.mkdir()
    notebook.write_bytes(NOTEBOOK)
    os.utime(notebook, (1_000_000_000, 1_000_000_000))
    before = sorted(str(p.relative_to(lab)) for p in lab.rglob("*"))

    done = pyrlab(lab, "render", "-o", ".")
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        ("pyrlab: error: .: holds files pyrlab did not make (pylab/analysis.ipynb, .gitignore, "
         "Makefile and 6 more); pyrlab writes only into a new or empty folder, or one it made "
         "(with a .pyrlab-output file)"),
        "pyrlab: hint: name a new or empty folder with -o; nothing was written",
    ]
    assert "Traceback" not in done.stderr
    assert notebook.read_bytes() == NOTEBOOK
    assert notebook.stat().st_mtime == 1_000_000_000
    assert sorted(str(p.relative_to(lab)) for p in lab.rglob("*")) == before  # nothing added

    # A new folder is fine, rendered for the engine a build would use: here the real one.
    done = pyrlab(lab, "render", "-o", "contexts", "pylab")
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"rendering for {engine.name}, from auto-detection\n"
    assert done.stdout == "pylab            contexts/pylab\n"
    assert (lab / "contexts" / ".pyrlab-output").is_file()
    assert (lab / "contexts" / "pylab" / "Dockerfile").is_file()
    assert notebook.read_bytes() == NOTEBOOK
