"""What the lab's user installed at run time on top of an image, read from the host side of
the mounted home ([run] home), without starting anything.

A lab keeps them per project and image (see container/user_env.py and R_LIBS_USER in the
Dockerfile); KEY is Config.layer_key: PROJECT/IMAGE, or IMAGE with bare names:

    HOME/.local/share/pyrlab/KEY/pythonX.Y/lib/pythonX.Y/site-packages/  Python
    HOME/.local/share/pyrlab/KEY/R/X.Y/                                   R
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyrlab.ecosystems.base import sort_key
from pyrlab.ecosystems.python import normalize_python_name

LAYERS = Path(".local") / "share" / "pyrlab"


@dataclass(frozen=True)
class UserPackage:
    ecosystem: Literal["python", "r"]
    name: str
    version: str
    runtime: str  # the Python or R version (x.y) whose layer holds it
    path: str  # its folder on the host


def layer_root(home: Path, image: str) -> Path:
    return home / LAYERS / image


def user_packages(home: Path, image: str) -> tuple[UserPackage, ...]:
    """Every Python distribution and R package in image's layers under home, by ecosystem,
    runtime and name."""
    root = layer_root(home, image)
    found: list[UserPackage] = []
    for site in sorted(root.glob("python*/lib/python*/site-packages")):
        runtime = site.parent.name.removeprefix("python")
        for dist in importlib.metadata.distributions(path=[str(site)]):
            name, version = dist.metadata["Name"], dist.version
            if name and version:
                found.append(UserPackage("python", normalize_python_name(name), version,
                                         runtime, str(site)))
    for library in sorted(p for p in (root / "R").glob("*") if p.is_dir()):
        for description in sorted(library.glob("*/DESCRIPTION")):
            fields = _dcf(description)
            if "Package" in fields and "Version" in fields:
                found.append(UserPackage("r", fields["Package"], fields["Version"],
                                         library.name, str(description.parent)))
    return tuple(sorted(found, key=lambda p: (p.ecosystem, p.runtime, *sort_key(p.name))))


def _dcf(path: Path) -> dict[str, str]:
    """The top-level fields of an R DESCRIPTION file (continuation lines left out)."""
    fields: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields
