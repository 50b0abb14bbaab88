"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyrlab.config.project import Project, load_project


def project_from(args: argparse.Namespace) -> Project:
    return load_project(Path(args.project), sets=tuple(args.sets))
