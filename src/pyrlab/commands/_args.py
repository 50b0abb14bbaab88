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
from pyrlab.platforms import ALL

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


def add_platform(parser: argparse.ArgumentParser, *, many: bool,
                 help: str | None = None) -> None:
    """--platform PLATFORM (platforms.SUPPORTED; `linux/arm64/v8` reads as linux/arm64):
    repeatable for the commands that build and `outdated` (`all`: every one of [build]
    platforms), once for those that act on one image (`up`, `inspect`, `diff`). `help`
    says what it does where it is not the default's."""
    if many:
        parser.add_argument(
            "--platform", action="append", default=[], dest="platforms", metavar="PLATFORM",
            type=_platform_or_all,
            help=help or "build for PLATFORM (linux/amd64, linux/arm64; `all`: every one of "
            "[build] platforms; another than the engine's own under emulation); repeatable; "
            "default: [build] platforms, else the platforms pyrlab.lock records, else the "
            "engine's own")
    else:
        parser.add_argument(
            "--platform", default=None, metavar="PLATFORM", type=platform_argument,
            help=help or "the platform whose image to use (linux/amd64, linux/arm64); "
            "default: the engine's own. Another platform's image is named IMAGE/arm64:TAG "
            "and runs under emulation")


def platform_argument(text: str) -> str:
    """A platform on the command line, as platforms.parse writes it."""
    from pyrlab.config.validators import platform_of

    found, problem = platform_of(text)
    if found is None:
        raise argparse.ArgumentTypeError(problem or f"not a platform: {text!r}")
    return found


def _platform_or_all(text: str) -> str:
    return ALL if text.strip().lower() == ALL else platform_argument(text)
