"""The layers of pyrlab's code, as pyproject.toml's import-linter contracts write them down:
imports only go down, no cycles. Imports inside functions and under TYPE_CHECKING count
(shown here on a copy of the code with such imports added), and docs/architecture.md draws
the same layers as the contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = ("import sys\nfrom importlinter.cli import lint_imports_command\n"
        "sys.exit(lint_imports_command())")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with `root`'s pyproject.toml on `root`/src, as a fresh process (its
    graph is of the code on that path, not of what this process imported)."""
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--no-logo",
                           str(root / "pyproject.toml")],
                          cwd=root, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(root / "src")})


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def copy_of_the_code(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "pyrlab", tmp_path / "src" / "pyrlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + code)


def test_imports_go_down_the_layers_without_cycles() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    for contract in contracts():
        assert f"{contract['name']} KEPT" in done.stdout


def test_an_import_up_inside_a_function_or_for_type_checking_breaks_the_contract(
        tmp_path: Path) -> None:
    copy = copy_of_the_code(tmp_path)
    # Each of these only runs when called, or never: they are imports all the same.
    append(copy / "src/pyrlab/errors.py",
           "\n\ndef _late() -> None:\n    from pyrlab.commands import COMMANDS  # noqa\n")
    append(copy / "src/pyrlab/config/key.py",
           "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
           "    from pyrlab.gate import ImageTest  # noqa\n")
    append(copy / "src/pyrlab/engines/base.py",
           "\n\ndef _options() -> None:\n    from pyrlab.dockerfile.render import Pins  # noqa\n")
    done = lint(copy)
    assert done.returncode != 0
    assert "pyrlab.errors is not allowed to import pyrlab.commands" in done.stdout
    assert "pyrlab.config is not allowed to import pyrlab.gate" in done.stdout
    # Siblings of one layer are independent: the engines do not import the renderer.
    assert "pyrlab.engines is not allowed to import pyrlab.dockerfile" in done.stdout


def test_a_cycle_inside_a_package_breaks_the_contract(tmp_path: Path) -> None:
    copy = copy_of_the_code(tmp_path)  # lockfile imports model; now model lockfile back
    append(copy / "src/pyrlab/contents/model.py",
           "\n\ndef _lock() -> None:\n    from pyrlab.contents import lockfile  # noqa\n")
    done = lint(copy)
    assert done.returncode != 0
    assert "No cycles are allowed in pyrlab.contents" in done.stdout


def test_a_new_top_level_module_must_be_given_a_layer(tmp_path: Path) -> None:
    copy = copy_of_the_code(tmp_path)
    (copy / "src/pyrlab/stray.py").write_text('"""Not in any layer yet."""\n')
    done = lint(copy)
    assert done.returncode != 0
    assert "pyrlab.stray" in done.stdout + done.stderr


def test_the_architecture_page_draws_the_contract_s_layers() -> None:
    layers = next(c for c in contracts() if c["type"] == "layers")["layers"]
    assert isinstance(layers, list)
    page = (ROOT / "docs" / "architecture.md").read_text()
    drawn = page.split("```text\n", 1)[1].split("```", 1)[0]
    # One line per layer, top first: the layer's modules, then what they are for.
    assert [line.split("  ", 1)[0].strip() for line in drawn.splitlines()
            if line.strip() and not line.lstrip().startswith("↓")] == layers
