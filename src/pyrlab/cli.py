"""Command line wiring only: parse → run the command → render its result → exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pyrlab import __version__
from pyrlab.commands import COMMANDS
from pyrlab.errors import EXIT_USAGE, PyrlabError
from pyrlab.output import emit, error


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        error(message)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("-C", "--project", metavar="DIR", default=".",
                        help="the lab project folder (default: the current folder)")
    common.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                        help="override a pyrlab.toml value, e.g. --set run.bind=0.0.0.0")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    parser = _Parser(prog="pyrlab", description="Build, run and upgrade JupyterLab images "
                     "for Python and R from plain package lists.")
    parser.add_argument("--version", action="version", version=f"pyrlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module in COMMANDS:
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                                    parents=[common])
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # PYRLAB_LOG_LEVEL=DEBUG shows every engine command pyrlab runs (see proc.py).
    level = os.environ.get("PYRLAB_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING),
                        format="pyrlab: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
        emit(result, as_json=args.json)
        return int(getattr(result, "exit_code", 0))
    except PyrlabError as exc:
        error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
