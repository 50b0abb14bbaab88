"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyrlab.config.project import Project, load_project
from pyrlab.engines.select import add_engine_argument
from pyrlab.output import info
from pyrlab.run.session import announce_name


def project_from(args: argparse.Namespace) -> Project:
    project = load_project(Path(args.project), sets=tuple(args.sets))
    announce_name(project.config)
    for warning in project.warnings:
        info(f"pyrlab: warning: {warning}")
    return project


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that builds (`build`, `upgrade`)."""
    parser.add_argument("--network-host", action="store_true",
                        help="build with host networking (automatic when a proxy in "
                        "pyrlab.toml is on 127.0.0.1; config: proxy.network_host)")
    parser.add_argument("-j", "--jobs", type=int, default=2, metavar="N",
                        help="build up to N independent images at the same time (default 2)")
    add_engine_argument(parser)
