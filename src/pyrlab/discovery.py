"""Finding the project, as git and uv find theirs: the nearest folder at or above the
current one that holds pyrlab.toml.

The search stops at the user's home folder (a pyrlab.toml there is still found) and where
the folders' owner changes, as git's safe-directory rule does: a pyrlab.toml that someone
else put above the user's folders (/tmp, a shared mount) is never read by accident.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pyrlab.errors import PyrlabError
from pyrlab.output import info

CONFIG_NAME = "pyrlab.toml"  # the same name as pyrlab.config.model.CONFIG_NAME


def _owner(folder: Path) -> int | None:
    try:
        return folder.stat().st_uid
    except OSError:
        return None


def find_project(start: Path, *, home: Path | None = None) -> Path | None:
    """The nearest folder at or above `start` (made absolute) holding pyrlab.toml, or None
    (see the module's docstring for where the search stops)."""
    start = Path(os.path.abspath(start))
    home = Path(os.path.abspath(home if home is not None else Path.home()))
    owner = _owner(start)
    for folder in (start, *start.parents):
        if _owner(folder) != owner:
            return None
        if (folder / CONFIG_NAME).is_file():
            return folder
        if folder == home:
            return None
    return None


def no_project(start: Path) -> PyrlabError:
    """The one-line error (exit 3) for a command that needs a project where none is."""
    return PyrlabError(f"no {CONFIG_NAME} in {os.path.abspath(start)} or above; "
                       "`pyrlab init` makes one")


def project_root(args: argparse.Namespace) -> Path:
    """The project of this command line: found from args.project (the current folder, or
    -C DIR), said on stderr when it is another folder; ConfigError when there is none."""
    found = getattr(args, "project_root", None)
    if found is None:
        start = Path(os.path.abspath(args.project))
        found = find_project(start)
        if found is None:
            raise no_project(start)
        if found != start:
            info(f"pyrlab: using {found / CONFIG_NAME}")
        args.project_root = found
    assert isinstance(found, Path)
    return found
