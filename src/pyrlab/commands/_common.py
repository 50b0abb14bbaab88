"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse

from pyrlab.commands._args import add_platform, project_from
from pyrlab.engines.select import add_engine_argument

# The project of a command line: found upwards from the current folder (or -C DIR) by
# pyrlab.discovery, its warnings said once (see commands._args.project_from).
__all__ = ["add_build_options", "project_from"]


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that builds (`build`, `upgrade`)."""
    parser.add_argument("--network-host", action="store_true",
                        help="build with host networking (automatic when a proxy in "
                        "pyrlab.toml is on 127.0.0.1; config: proxy.network_host)")
    parser.add_argument("-j", "--jobs", type=int, default=2, metavar="N",
                        help="build up to N independent images at the same time (default 2)")
    add_platform(parser, many=True)
    add_engine_argument(parser)
