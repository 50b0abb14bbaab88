"""Shell completion (bash, zsh, fish) through argcomplete.

The shell code (`pyrlab completion SHELL`, argcomplete's own) runs `pyrlab` with
_ARGCOMPLETE and COMP_LINE set; cli.main then calls complete(), which answers with the
candidates for the word under the cursor and exits: verbs and options from the parser
itself, image names from the project's pyrlab.toml (found as a command finds it: from -C
or the current folder, upwards), `--set` keys from the configuration's model, platforms
from pyrlab.platforms.

argcomplete is imported only here, and only when completing or printing the shell code, so
that every other command starts as fast as before. Nothing a completion does may reach the
shell's screen: a problem (an unreadable pyrlab.toml, a bug) means no candidates.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from pyrlab.config.model import Config

SHELLS = ("bash", "zsh", "fish")
# What each shell's user runs once to turn completion on (docs/completion.md: where).
TURN_ON = {
    "bash": 'eval "$(pyrlab completion bash)"',
    "zsh": 'eval "$(pyrlab completion zsh)"',
    "fish": "pyrlab completion fish | source",
}


def script(shell: str) -> str:
    """The shell code that makes `shell` ask pyrlab for completions."""
    from argcomplete.shell_integration import shellcode

    return shellcode(["pyrlab"], shell=shell)


def complete(parser: argparse.ArgumentParser, *, output_stream: TextIO | None = None,
             exit_method: Callable[[int], object] = os._exit) -> NoReturn:
    """Answer the shell's request (COMP_LINE, COMP_POINT) with the candidates and exit 0.

    Exits 1 with no output when anything goes wrong: the shell then offers file names."""
    with contextlib.suppress(Exception):  # a completion never shows a traceback
        _answer(parser, output_stream, exit_method)
    exit_method(1)
    raise SystemExit(1)  # exit_method returned (a test's): stop here all the same


def _answer(parser: argparse.ArgumentParser, output_stream: TextIO | None,
            exit_method: Callable[[int], object]) -> None:
    from argcomplete.completers import FilesCompleter
    from argcomplete.finders import CompletionFinder
    from argcomplete.lexers import split_line

    class Finder(CompletionFinder):
        def _init_debug_stream(self) -> None:
            # fd 9 is the shell's screen, kept for argcomplete's debug output: opened only
            # when that is asked for (_ARC_DEBUG), never otherwise.
            if "_ARC_DEBUG" in os.environ:
                super()._init_debug_stream()  # type: ignore[no-untyped-call]

    with _muted():
        words = split_line(os.environ["COMP_LINE"], int(os.environ["COMP_POINT"]))[3]
        _load_verb(parser, words[1:])
    _attach_completers(parser)
    # Options are offered once a '-' is typed, as git does: `pyrlab <TAB>` lists verbs,
    # `pyrlab up <TAB>` images.
    Finder()(parser, always_complete_options=False, exit_method=exit_method,
             output_stream=output_stream, default_completer=FilesCompleter())


@contextlib.contextmanager
def _muted() -> typing.Iterator[None]:
    """stdout and stderr swallowed (argparse's usage and errors, --version, --help)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _load_verb(parser: argparse.ArgumentParser, words: Sequence[str]) -> None:
    """Let the verb on the line add its options before argcomplete looks at the parsers.

    cli's verb parsers add their options when they first parse (lazy loading of the verb
    modules); argcomplete records a parser's options before it parses. Parsing the words
    once here, errors and all ignored, adds them for the one verb on the line."""
    with contextlib.suppress(BaseException):
        parser.parse_known_args(list(words))


# --------------------------------------------------------------------------- completers


class _Places:
    """The dests that hold -C, wherever the parsers put it (before or after the verb, or
    after an export kind): the completers read the line's value from them."""

    def __init__(self) -> None:
        self.project: dict[str, None] = {}  # in the parsers' order: root, verb, export kind

    def project_folder(self, parsed: argparse.Namespace) -> Path:
        """Where the command on the line would start looking for its project (as git's
        -C: the last -C given, relative to the current folder)."""
        given = [getattr(parsed, dest, None) for dest in self.project]
        chosen = next((value for value in reversed(given) if isinstance(value, str)), None)
        return Path(os.path.expanduser(chosen)) if chosen else Path.cwd()


def _attach_completers(parser: argparse.ArgumentParser) -> None:
    """Set argcomplete's `.completer` on the actions that take image names, -C, --set and
    a platform, in every parser reachable from `parser` (the verbs' options are added by
    their own modules: they are found by what they are, not listed here)."""
    from argcomplete.completers import DirectoriesCompleter, FilesCompleter

    from pyrlab.platforms import ALL, SUPPORTED

    places = _Places()
    files = FilesCompleter()

    def images(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
        return image_names(places.project_folder(parsed_args))

    def lab_images(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
        return image_names(places.project_folder(parsed_args), runnable=True)

    def images_or_files(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
        # `diff A B`: images, NAME:TAG, or lock files.
        return images(prefix, parsed_args) + list(files(prefix))

    def set_items(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
        return set_candidates(prefix, places.project_folder(parsed_args))

    seen: set[int] = set()

    def walk(node: argparse.ArgumentParser) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        # A verb that takes a lab's --port (up, down, logs, shell…) acts on a lab: only
        # images with a JupyterLab port have one.
        takes_port = any("--port" in action.option_strings for action in node._actions)
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif "-C" in action.option_strings:
                places.project[action.dest] = None
                action.completer = DirectoriesCompleter()  # type: ignore[attr-defined]
            elif "--set" in action.option_strings:
                action.completer = set_items  # type: ignore[attr-defined]
            elif {"--platform", "--drop-platform"} & set(action.option_strings):
                # Repeatable where it builds and in `outdated`, and there `all` names
                # [build] platforms.
                offered = [*SUPPORTED, ALL] if isinstance(action, argparse._AppendAction) \
                    else list(SUPPORTED)
                action.completer = (  # type: ignore[attr-defined]
                    lambda prefix, offered=offered, **_: offered)
            elif action.metavar == "IMAGE":
                action.completer = (  # type: ignore[attr-defined]
                    lab_images if takes_port and not action.option_strings else images)
            elif action.dest == "sides":
                action.completer = images_or_files  # type: ignore[attr-defined]

    walk(parser)


# --------------------------------------------------------------------------- the project


def _project_config(start: Path) -> Config | None:
    """The configuration of the project at or above `start`; None when there is none or its
    pyrlab.toml cannot be read (invalid values are the defaults, as `check` reads them)."""
    from pyrlab.config.readers import read_config
    from pyrlab.discovery import find_project
    from pyrlab.errors import PyrlabError

    try:
        root = find_project(start)
        return read_config(root)[0] if root is not None else None
    except (OSError, PyrlabError):
        return None


def image_names(start: Path, *, runnable: bool = False) -> list[str]:
    """The names of the project's images ([images.*], or the default graph without an
    [images] table), in file order; `runnable`: only those with a JupyterLab (`lab`) port."""
    config = _project_config(start)
    if config is None:
        return []
    return [name for name, image in config.images.items()
            if not runnable or image.lab_port is not None]


# --------------------------------------------------------------------------- --set keys


def set_keys(config: Config | None) -> dict[str, tuple[str, ...]]:
    """Every key `--set` takes, dotted (model.config_keys, leaves only: a table is set key
    by key), → the values it can only take (() when free)."""
    from pyrlab.config import model
    from pyrlab.engines import registry as engine_registry
    from pyrlab.platforms import SUPPORTED

    values_of = {"base": _choices(model.BaseConfig), "proxy": _choices(model.ProxyConfig),
                 "run": _choices(model.RunConfig), "build": _choices(model.BuildConfig),
                 "images": _choices(model.ImageConfig)}
    known = model.config_keys(config)
    tables = {key.rsplit(".", 1)[0] for key in known if "." in key}
    keys: dict[str, tuple[str, ...]] = {}
    for key in known:
        if key in tables:
            continue
        parts = key.split(".")
        if key == "engine":
            keys[key] = engine_registry.choices()
        elif key == "build.platforms":  # one of them (a list is written as TOML)
            keys[key] = SUPPORTED
        elif parts[0] == "images" and len(parts) == 3:
            keys[key] = values_of["images"].get(parts[2], ())
        elif len(parts) == 2 and parts[0] in values_of:
            keys[key] = values_of[parts[0]].get(parts[1], ())
        else:
            keys[key] = ()
    return keys


def _choices(model: type) -> dict[str, tuple[str, ...]]:
    """Field name → the values its type allows, for the fields of a config dataclass that
    are booleans or Literal choices."""
    hints = typing.get_type_hints(model)
    found: dict[str, tuple[str, ...]] = {}
    for field in fields(model):
        args = [a for a in typing.get_args(hints[field.name]) if a is not type(None)]
        if hints[field.name] is bool or args == [bool]:
            found[field.name] = ("true", "false")
        elif typing.get_origin(hints[field.name]) is typing.Literal:
            found[field.name] = tuple(str(a) for a in args)
        elif args and typing.get_origin(args[0]) is typing.Literal:  # Literal[...] | None
            found[field.name] = tuple(str(a) for a in typing.get_args(args[0]))
    return found


def set_candidates(prefix: str, start: Path) -> list[str]:
    """What `--set PREFIX` completes to: KEY= while the key is typed, then KEY=VALUE for a
    key whose values are a fixed few."""
    keys = set_keys(_project_config(start))
    key, sep, _ = prefix.partition("=")
    if sep:
        return [f"{key}={value}" for value in keys.get(key, ())]
    return [f"{key}=" for key in keys]
