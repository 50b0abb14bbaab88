"""`pyrlab logs IMAGE [-f]`: the lab's log (JupyterLab's and the start script's output)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab import proc
from pyrlab.commands._args import add_image, config_from, engine_from
from pyrlab.engines.select import add_engine_argument
from pyrlab.run.labs import one_lab


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument("-n", "--tail", type=int, metavar="N", default=None,
                        help="only the last N lines")
    add_engine_argument(parser)


@dataclass(frozen=True)
class LogsResult:
    container: str
    exit_code: int

    def to_data(self) -> Any:
        return {"container": self.container, "exit_code": self.exit_code}

    def to_text(self) -> str:
        return ""  # the engine wrote the log straight to the terminal


def run(args: argparse.Namespace) -> LogsResult:
    config = config_from(args)
    engine = engine_from(args, config)
    # A lab that crashed is the one whose log matters most: stopped labs count too.
    lab = one_lab(engine, config, args.image, args.port, running=False)
    code = proc.interactive(engine.logs_argv(lab.name, follow=args.follow, tail=args.tail))
    return LogsResult(lab.name, code)
