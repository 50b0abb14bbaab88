"""`pyrlab shell IMAGE [-- COMMAND…]`: a shell (or a command) in the lab, as its user."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from pyrlab import proc
from pyrlab.commands._args import add_image, config_from, engine_from
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import RunError
from pyrlab.launch.plan import WORK
from pyrlab.run.labs import one_lab


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image(parser)
    parser.add_argument("--root", action="store_true",
                        help="as root (only in labs started with run.sudo = true)")
    parser.add_argument("command", nargs="*", metavar="-- COMMAND",
                        help="a command to run instead of bash")
    add_engine_argument(parser)


@dataclass(frozen=True)
class ShellResult:
    container: str
    exit_code: int

    def to_data(self) -> Any:
        return {"container": self.container, "exit_code": self.exit_code}

    def to_text(self) -> str:
        return ""


def run(args: argparse.Namespace) -> ShellResult:
    config = config_from(args)
    engine = engine_from(args, config)
    lab = one_lab(engine, config, args.image, args.port)
    if args.root and not lab.privileged:
        raise RunError(f"{lab.name} runs without capabilities and cannot gain privileges, so "
                       "root in it could not administer anything",
                       hint=f"set run.sudo = true in pyrlab.toml and `pyrlab restart {lab.image}`")
    command = args.command or ["bash"]
    # Without --user the engine uses the lab's own user (the host UID/GID it was started as).
    argv = engine.exec_argv(lab.name, command, interactive=True, tty=sys.stdin.isatty(),
                            user="0:0" if args.root else None, workdir=WORK)
    return ShellResult(lab.name, proc.interactive(argv))
