"""Command line wiring only: parse → run the command → render its result → exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pyrlab import __version__, proc
from pyrlab.commands import COMMANDS, load
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import EXIT_INTERRUPTED, EXIT_USAGE, PyrlabError, UsageError
from pyrlab.output import emit, error


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        error(message)
        raise SystemExit(EXIT_USAGE)


class _VerbParser(_Parser):
    """A verb's parser, whose options its module adds only when this verb is the one on the
    command line (or its help or usage is shown): `pyrlab up …` imports pyrlab.commands.up
    and none of the other verbs' modules."""

    verb: str | None = None  # the verb whose module is still to add its options

    def _add_verb_arguments(self) -> None:
        if self.verb is None:
            return
        module, self.verb = load(self.verb), None
        module.add_arguments(self)
        self.set_defaults(handler=module.run)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        self._add_verb_arguments()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._add_verb_arguments()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_verb_arguments()
        return super().format_help()


# Global options: each works before the verb (`pyrlab -C DIR down pylab`) exactly as after it
# (`pyrlab down pylab -C DIR`). Both parsers declare them with a default of None, "not given";
# before the verb they land in dests of their own, merged by `_merge_global_options`.
BEFORE_VERB = "before_verb_"
GLOBAL_DEFAULTS: dict[str, object] = {"project": ".", "sets": [], "json": False, "engine": None}


def _add_global_options(parser: argparse.ArgumentParser, *, before_verb: bool) -> None:
    prefix = BEFORE_VERB if before_verb else ""
    parser.add_argument("-C", "--project", metavar="DIR", default=None, dest=prefix + "project",
                        help="the lab project folder (default: the current folder)")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=None,
                        dest=prefix + "sets",
                        help="override a pyrlab.toml value, e.g. --set run.bind=0.0.0.0")
    parser.add_argument("--json", action="store_true", default=None, dest=prefix + "json",
                        help="print the result as JSON")
    if before_verb:  # after the verb, only the commands that use an engine take --engine
        add_engine_argument(parser, dest=prefix + "engine")


def build_parser() -> argparse.ArgumentParser:
    common = _VerbParser(add_help=False)  # the options every verb shares (no verb of its own)
    _add_global_options(common, before_verb=False)
    parser = _Parser(prog="pyrlab", description="Build, run and upgrade JupyterLab images "
                     "for Python and R from plain package lists.",
                     epilog="-C, --set, --json and --engine may come before or after COMMAND.")
    parser.add_argument("--version", action="version", version=f"pyrlab {__version__}")
    _add_global_options(parser, before_verb=True)
    # "verb", not "command": `shell` has a positional of that name (the command to run).
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND",
                                       parser_class=_VerbParser)
    subparsers.required = True
    for verb, text in COMMANDS.items():
        sub = subparsers.add_parser(verb, help=text, description=text, parents=[common])
        sub.verb = verb
    return parser


def _merge_global_options(args: argparse.Namespace) -> None:
    """One value per global option: given after the verb wins over before it; `--set`s
    add up, the ones before the verb first (so the later one wins, as on one side)."""
    for dest, default in GLOBAL_DEFAULTS.items():
        before = getattr(args, BEFORE_VERB + dest)
        delattr(args, BEFORE_VERB + dest)
        if not hasattr(args, dest):  # a verb without this option (`init` has no --engine)
            if before is not None:
                raise UsageError(f"`pyrlab {args.verb}` takes no --{dest}")
            continue
        after = getattr(args, dest)
        if dest == "sets":
            value = [*(before or []), *(after or [])]
        else:
            value = after if after is not None else before
        setattr(args, dest, default if value is None else value)


def _unknown_before_verb(argv: Sequence[str], extras: Sequence[str], verb: str) -> str | None:
    """The first unrecognised option that stands before the verb, if any."""
    verb_at = argv.index(verb) if verb in argv else len(argv)
    return next((arg for arg in argv[:verb_at] if arg in extras), None)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as one namespace, global options merged (see GLOBAL_DEFAULTS)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        unknown = _unknown_before_verb(argv, extras, args.verb)
        if unknown is not None:
            parser.error(f"unknown global option {unknown.split('=', 1)[0]}: before the command "
                         "pyrlab takes -C/--project, --set, --json, --engine and --version; "
                         f"the options of `{args.verb}` go after it")
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        _merge_global_options(args)
    except UsageError as exc:
        parser.error(exc.message)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and "_ARGCOMPLETE" in os.environ:  # the shell asks for completions
        from pyrlab.completion import complete
        complete(build_parser())
    # PYRLAB_LOG_LEVEL=DEBUG shows every engine command pyrlab runs (see proc.py).
    level = os.environ.get("PYRLAB_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING),
                        format="pyrlab: %(message)s")
    args = parse_args(argv)
    # SIGINT and SIGTERM end the command through proc.Interrupted: what it started is
    # stopped and cleaned up on the way out, no tag moves (see proc.py), exit 130 / 143.
    try:
        with proc.handle_signals():
            result = args.handler(args)
            emit(result, as_json=args.json)
        return int(getattr(result, "exit_code", 0))
    except PyrlabError as exc:
        error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        error("interrupted")
        return exc.exit_code if isinstance(exc, proc.Interrupted) else EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
