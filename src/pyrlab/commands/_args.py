"""What every lab command starts with, read from its arguments: the configuration (or the
project: configuration and lists) and the engine."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pyrlab.config.model import Config
from pyrlab.config.readers import load_config
from pyrlab.discovery import project_root
from pyrlab.engines.select import select_engine
from pyrlab.launch.state import name_note
from pyrlab.output import info

if TYPE_CHECKING:
    from pyrlab.config.project import Project
    from pyrlab.engines.base import Engine


def config_from(args: argparse.Namespace) -> Config:
    """The configuration only: `down`, `ps`, `logs`… work even while a list has a mistake."""
    config = load_config(project_root(args), sets=tuple(args.sets))
    announce_name(config)
    return config


def announce_name(config: Config) -> None:
    """Say once that an old project is named for its folder (see launch.state.name_note), and
    every time what the configuration warns of (a stray PYRLAB_* variable)."""
    for warning in config.warnings:
        info(f"pyrlab: warning: {warning}")
    note = name_note(config)
    if note is not None:
        info(f"pyrlab: note: {note}")


def project_from(args: argparse.Namespace) -> Project:
    """Configuration and lists: `up` may build, which needs both."""
    from pyrlab.config.project import load_project  # parsing lists: not for `down` or `ps`

    project = load_project(project_root(args), sets=tuple(args.sets))
    announce_name(project.config)
    for warning in project.warnings:
        info(f"pyrlab: warning: {warning}")
    return project


def engine_from(args: argparse.Namespace, config: Config, *, announce: bool = False) -> Engine:
    selection = select_engine(getattr(args, "engine", None), config.engine,
                              config_source=config.source_of("engine"))
    if announce:
        info(selection.describe())
    return selection.engine


def add_image(parser: argparse.ArgumentParser, *, optional: bool = False,
              port_help: str = "the lab's port, when several labs of the image run") -> None:
    parser.add_argument("image", metavar="IMAGE", nargs="?" if optional else None,
                        help="the image whose lab to act on, e.g. pylab")
    parser.add_argument("--port", type=int, metavar="N", default=None, help=port_help)
