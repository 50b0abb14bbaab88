"""Command line wiring only: parse → run the command → render its result → exit code."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"pyrlab: error: interrupted\n")
    os._exit(128 + signum)


# Ctrl-C while the modules below load (before main() can catch it) ends as it does later,
# with one line and no traceback; main() puts Python's own handler back first thing.
if (threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import argparse
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from pyrlab import __version__, proc
from pyrlab.commands import COMMANDS, load
from pyrlab.engines import registry as engine_registry
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_USAGE,
    PyrlabError,
    UsageError,
)
from pyrlab.output import emit, error, error_json, set_quiet

# The environment variables that change what pyrlab does (`pyrlab --help` lists them; the
# config keys' own variables are one line, PYRLAB_SECTION__KEY).
ENVIRONMENT: dict[str, str] = {
    "PYRLAB_KEY, PYRLAB_SECTION__KEY": "override a pyrlab.toml value: PYRLAB_RUN__BIND=0.0.0.0",
    "PYRLAB_ENGINE": "docker or podman (--engine wins over it, it over pyrlab.toml)",
    "PYRLAB_USER_CONFIG": "your config file (default ~/.config/pyrlab/config.toml)",
    "PYRLAB_STATE_DIR": "where tokens and logs go (default: the project's .pyrlab/)",
    "PYRLAB_LOG_LEVEL": "DEBUG: every engine command pyrlab runs (as -v)",
    "NO_COLOR": "no colour in tables",
}

# Verbs whose answer on stdout is the point (a listing, a file's text): -q keeps it. Every
# other verb does something and says what, which -q leaves out (errors only).
QUIET_KEEPS_OUTPUT = frozenset({"help", "config", "ps", "logs", "url", "inspect", "diff",
                                "why", "sbom", "outdated", "export", "completion"})


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    """"; did you mean X?" for the nearest of `known`, or ""."""
    from pyrlab.config.guess import did_you_mean  # only on a mistake: not on every start

    by_name = {k.lstrip("-"): k for k in known}  # "--" alike in every option: not a match
    close = did_you_mean(word.lstrip("-"), by_name, cutoff=0.75, fold_case=False)
    return f"; did you mean {by_name[close]}?" if close else ""


class _Parser(argparse.ArgumentParser):
    json_errors = False  # --json is on the command line: errors also go to stdout as JSON

    def error(self, message: str) -> None:  # type: ignore[override]
        message = self._suggest(message)
        self.print_usage(sys.stderr)
        error(message)
        if _Parser.json_errors:
            error_json(message, None, EXIT_USAGE)
        raise SystemExit(EXIT_USAGE)

    @staticmethod
    def _suggest(message: str) -> str:
        """argparse's "invalid choice" with a did-you-mean, and for a verb in plain words."""
        found = re.fullmatch(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)",
                             message, re.DOTALL)
        if found is None:
            return message
        argument, word, choices = found.groups()
        known = [c.strip().strip("'") for c in choices.split(",")]
        if argument == "COMMAND":
            return f"unknown command '{word}'{_did_you_mean(word, known)} (`pyrlab help` " \
                   "lists the commands)"
        return message + _did_you_mean(word, known)


class _VerbParser(_Parser):
    """A verb's parser, whose options its module adds only when this verb is the one on the
    command line (or its help or usage is shown): `pyrlab up …` imports pyrlab.commands.up
    and none of the other verbs' modules."""

    verb: str | None = None  # the verb whose module is still to add its options

    def _add_verb_arguments(self) -> None:
        if self.verb is None:
            return
        module, self.verb = load(self.verb), None
        _add_global_options(self, prefix="")  # here, not at start: for one verb, not all
        module.add_arguments(self)
        self.set_defaults(handler=module.run)
        if "--engine" not in self._option_string_actions:  # global: accepted everywhere
            self.add_argument("--engine", choices=engine_registry.choices(), default=None,
                              help="accepted for every command; this one uses no engine")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        self._add_verb_arguments()
        return super().parse_known_args(args, namespace)

    def add_subparsers(self, **kwargs: Any) -> Any:
        """A verb's own sub-commands (`export KIND`) take the global options too."""
        kwargs.setdefault("action", _NestedVerbs)
        return super().add_subparsers(**kwargs)

    def format_usage(self) -> str:
        self._add_verb_arguments()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_verb_arguments()
        return super().format_help()


class _NestedVerbs(argparse._SubParsersAction):  # type: ignore[type-arg]
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        _add_global_options(sub, prefix=AFTER_KIND)
        return sub


# Global options: each works before the verb (`pyrlab -C DIR down pylab`) exactly as after it
# (`pyrlab down pylab -C DIR`), or after a verb's own sub-command (`export compose -C DIR`).
# Each parser declares them with a default of None, "not given", in dests of its own level
# (a sub-parser would otherwise reset what an outer one parsed), merged by
# `_merge_global_options`: the last one given wins.
BEFORE_VERB = "before_verb_"
AFTER_KIND = "after_kind_"
LEVELS = (BEFORE_VERB, "", AFTER_KIND)
GLOBAL_DEFAULTS: dict[str, object] = {"project": ".", "sets": [], "json": False, "engine": None,
                                      "quiet": False, "verbose": False}
GLOBAL_OPTIONS = ("-C", "--project", "--set", "--json", "--engine", "-q", "--quiet", "-v",
                  "--verbose", "--version", "-h", "--help")


def _add_global_options(parser: argparse.ArgumentParser, *, prefix: str) -> None:
    parser.add_argument("-C", "--project", metavar="DIR", default=None, dest=prefix + "project",
                        help="change to DIR first, as git -C does: the project is found "
                        "from there, and relative paths on the command line are inside it")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=None,
                        dest=prefix + "sets",
                        help="override a pyrlab.toml value, e.g. --set run.bind=0.0.0.0")
    parser.add_argument("--json", action="store_true", default=None, dest=prefix + "json",
                        help="print the result as JSON (an error too: "
                        '{"ok": false, "message", "hint", "exit_code"})')
    parser.add_argument("-q", "--quiet", action="store_true", default=None,
                        dest=prefix + "quiet", help="print errors only")
    parser.add_argument("-v", "--verbose", action="store_true", default=None,
                        dest=prefix + "verbose",
                        help="print the debug log: every engine command pyrlab runs")
    if prefix != "":  # after the verb, each verb's module adds --engine (or _VerbParser does)
        add_engine_argument(parser, dest=prefix + "engine")


def _epilog() -> str:
    width = max(len(name) for name in ENVIRONMENT)
    lines = [("Global options (-C, --set, --json, --engine, -q, -v) may come before or after "
              "COMMAND."), "",
             ("The project is the nearest folder at or above the current one (or -C DIR) that "
              "holds pyrlab.toml."), "", "exit codes:"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in sorted(EXIT_CODES.items())]
    lines += ["", "environment:"]
    lines += [f"  {name:<{width}}  {meaning}" for name, meaning in ENVIRONMENT.items()]
    lines += ["", "`pyrlab help COMMAND` (or `pyrlab COMMAND --help`) shows a command's options."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pyrlab", description="Build, run and upgrade JupyterLab images "
                     "for Python and R from plain package lists.",
                     epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pyrlab {__version__}")
    _add_global_options(parser, prefix=BEFORE_VERB)
    # "verb", not "command": `shell` has a positional of that name (the command to run).
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND",
                                       parser_class=_VerbParser)
    for verb, text in COMMANDS.items():
        sub = subparsers.add_parser(verb, help=text, description=text)
        sub.verb = verb
    helper = subparsers.add_parser("help", help="show pyrlab's help, or a command's",
                                   description="show pyrlab's help, or a command's")
    _add_global_options(helper, prefix="")
    helper.add_argument("topic", nargs="*", metavar="COMMAND",
                        help="the command (and the export kind), e.g. up or export compose")
    helper.set_defaults(handler=_help_command)
    helper.add_argument("--engine", choices=engine_registry.choices(), default=None,
                        help=argparse.SUPPRESS)
    return parser


class HelpResult:
    """What `pyrlab help` prints (a plain class: a dataclass costs every start ~0.5 ms)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def to_data(self) -> Any:
        return {"help": self.text}

    def to_text(self) -> str:
        return self.text


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_command(args: argparse.Namespace) -> HelpResult:
    return _help(build_parser(), args.topic)


def _help(parser: argparse.ArgumentParser, topic: Sequence[str]) -> HelpResult:
    """`pyrlab help [COMMAND [KIND]]`: the help `--help` would print."""
    for word in topic:
        choices = _subparsers(parser)
        if word not in choices:
            what = "command" if parser.prog == "pyrlab" else f"kind of `{parser.prog}`"
            raise UsageError(f"unknown {what} '{word}'{_did_you_mean(word, choices)}",
                             hint=f"`{parser.prog} --help` lists them")
        parser = choices[word]
        if isinstance(parser, _VerbParser):
            parser._add_verb_arguments()  # `help export compose`: export's kinds exist now
    return HelpResult(parser.format_help())


def _merge_global_options(args: argparse.Namespace) -> None:
    """One value per global option: the one given last (after the verb wins over before
    it) wins; `--set`s add up, in the order given (so the later one wins, as on one side)."""
    for dest, default in GLOBAL_DEFAULTS.items():
        given = []
        for level in LEVELS:
            if hasattr(args, level + dest):
                given.append(getattr(args, level + dest))
                if level:
                    delattr(args, level + dest)
        value: object
        if dest == "sets":
            value = [s for sets in given if sets for s in sets]
        else:
            value = next((v for v in reversed(given) if v is not None), None)
        setattr(args, dest, default if value is None else value)


def _unknown_before_verb(argv: Sequence[str], extras: Sequence[str], verb: str) -> str | None:
    """The first unrecognised option that stands before the verb, if any."""
    verb_at = argv.index(verb) if verb in argv else len(argv)
    return next((arg for arg in argv[:verb_at] if arg in extras), None)


def _refuse_json(args: argparse.Namespace) -> str | None:
    """Why this command line cannot give JSON, if it cannot."""
    if not args.json:
        return None
    if args.verb == "shell":
        return "`pyrlab shell` cannot print JSON: it hands the terminal to a shell in the lab"
    if args.verb == "logs" and getattr(args, "follow", False):
        return ("`pyrlab logs -f` cannot print JSON: it prints the log as it grows "
                "(without -f, --json gives the lines so far)")
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as one namespace, global options merged (see GLOBAL_DEFAULTS).
    No verb (bare `pyrlab`) is the verb `help`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = "--json" in (argv[:argv.index("--")] if "--" in argv else argv)
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.verb is None and not extras:
        args, extras = parser.parse_known_args([*argv, "help"])
    if extras:
        unknown = _unknown_before_verb(argv, extras, args.verb or "")
        if unknown is not None or args.verb is None:
            unknown = unknown or extras[0]
            option = unknown.split("=", 1)[0]
            parser.error(f"unknown global option {option}"
                         + (_did_you_mean(option, GLOBAL_OPTIONS)
                            or ": before the command pyrlab takes -C/--project, --set, --json, "
                            "--engine, -q, -v and --version; the options of "
                            f"`{args.verb or 'COMMAND'}` go after it"))
        verb_parser = _subparsers(parser)[args.verb]
        kinds = _subparsers(verb_parser)  # `export KIND`: the kind's own options
        kind = getattr(args, "export_kind", None)
        if kind in kinds:
            verb_parser = kinds[kind]
        options = [o for o in verb_parser._option_string_actions if o.startswith("--")]
        first = extras[0]
        if first.startswith("-") and first != "-":
            option = first.split("=", 1)[0]
            verb_parser.error(f"`{verb_parser.prog}` has no option {option}"
                              f"{_did_you_mean(option, options)}")
        verb_parser.error(f"unrecognized arguments: {' '.join(extras)}")
    _merge_global_options(args)
    refused = _refuse_json(args)
    if refused is not None:
        parser.error(refused)
    if args.quiet and args.verbose:
        parser.error("-q (errors only) and -v (the debug log) cannot go together")
    return args


def _log_level(args: argparse.Namespace) -> int:
    # PYRLAB_LOG_LEVEL=DEBUG, like -v, shows every engine command pyrlab runs (see proc.py).
    if args.verbose:
        return logging.DEBUG
    if args.quiet:
        return logging.ERROR
    level = os.environ.get("PYRLAB_LOG_LEVEL", "WARNING").upper()
    return int(getattr(logging, level, logging.WARNING))


def _change_folder(args: argparse.Namespace) -> None:
    """-C DIR as git's: into DIR before anything else, so that the project is found from
    there and every relative path on the command line is inside DIR."""
    folder = os.path.abspath(args.project)
    try:
        os.chdir(folder)
    except OSError as exc:
        raise UsageError(f"-C {args.project}: cannot change to it: "
                         f"{(exc.strerror or str(exc)).lower()}") from None
    args.project = folder


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(format="pyrlab: %(message)s")
    logging.getLogger().setLevel(_log_level(args))
    set_quiet(bool(args.quiet))
    try:
        _change_folder(args)
        # SIGINT and SIGTERM end the command through proc.Interrupted: what it started is
        # stopped and cleaned up on the way out, no tag moves (see proc.py), exit 130 / 143.
        with proc.handle_signals():
            result = args.handler(args)
            if args.json or not args.quiet or args.verb in QUIET_KEEPS_OUTPUT:
                emit(result, as_json=args.json)
        return int(getattr(result, "exit_code", 0))
    except PyrlabError as exc:
        error(exc.message, exc.hint)
        if args.json:
            error_json(exc.message, exc.hint, exc.exit_code)
        return exc.exit_code


def _stop_writing() -> None:
    """The reader of stdout (or stderr) went away: send what is still buffered, and all
    later writes, to /dev/null, so that Python's flush at exit raises nothing either."""
    null = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(null, stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # not a real file (a test's capture): nothing is flushed at exit
    os.close(null)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and "_ARGCOMPLETE" in os.environ:  # the shell asks for completions
        from pyrlab.completion import complete
        complete(build_parser())
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        here: str | None = os.getcwd()
    except OSError:  # the current folder was removed
        here = None
    try:
        args = parse_args(argv)
        return _run(args)
    except BrokenPipeError:
        # `pyrlab check | head -1`: the reader has what it wanted; as git and cat do, no
        # message, and the exit code a shell shows for SIGPIPE.
        _stop_writing()
        return EXIT_PIPE
    except KeyboardInterrupt as exc:  # Ctrl-C before or after the command's own handling
        try:
            error("interrupted")
        except BrokenPipeError:
            _stop_writing()
        return exc.exit_code if isinstance(exc, proc.Interrupted) else EXIT_INTERRUPTED
    finally:
        if here is not None:
            os.chdir(here)  # main() called in-process (tests) leaves the folder as it found it


if __name__ == "__main__":
    raise SystemExit(main())
