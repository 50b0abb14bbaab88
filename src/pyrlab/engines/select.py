"""Choosing the engine: --engine > PYRLAB_ENGINE > pyrlab.toml > auto-detect.

The choice is reported with its source, e.g. "docker with buildx (docker buildx build
--load), from auto-detection".
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyrlab.engine_names import AUTO
from pyrlab.engines import registry
from pyrlab.errors import EngineError

if TYPE_CHECKING:  # the engines are imported when one is chosen: the CLI imports this module
    from pyrlab.engines.base import Engine


@dataclass(frozen=True)
class Selection:
    engine: Engine
    source: str  # "--engine", "PYRLAB_ENGINE", "pyrlab.toml", "user file …", "auto-detection"

    def describe(self) -> str:
        return f"engine: {self.engine.describe()}, from {self.source}"


def named_engine(flag: str | None, config_value: str,
                 environ: Mapping[str, str] | None = None, *,
                 config_source: str = "pyrlab.toml") -> tuple[str, str]:
    """(engine, where the choice came from): --engine, else PYRLAB_ENGINE, else the config's
    `engine`, else ("auto", "auto-detection"). An unknown name is refused."""
    environ = os.environ if environ is None else environ
    if flag and flag != "auto":
        choice, source = flag, "--engine"
    elif environ.get("PYRLAB_ENGINE", "auto") != "auto":
        choice, source = environ["PYRLAB_ENGINE"], "PYRLAB_ENGINE"
    elif config_value != "auto":
        choice, source = config_value, config_source
    else:
        choice, source = "auto", "auto-detection"
    if choice not in registry.choices():
        raise EngineError(f"unknown engine {choice!r} (from {source}): use "
                          + " or ".join(registry.names()))
    return choice, source


@dataclass(frozen=True)
class EngineChoice:
    name: str  # one of registry.names()
    source: str


def engine_choice(flag: str | None, config_value: str,
                  environ: Mapping[str, str] | None = None, *,
                  config_source: str = "pyrlab.toml") -> EngineChoice:
    """The engine a build would use, by name, for what only needs to know which (rendering):
    a named engine need not be installed; "auto" looks for one as select_engine does and,
    finding none, answers the first registered engine, saying so."""
    choice, source = named_engine(flag, config_value, environ, config_source=config_source)
    if choice != AUTO:
        return EngineChoice(choice, source)
    try:
        selection = select_engine(None, "auto", {})
    except EngineError:
        return EngineChoice(registry.names()[0], "auto-detection, which found no usable engine")
    return EngineChoice(selection.engine.name, selection.source)


def select_engine(flag: str | None, config_value: str,
                  environ: Mapping[str, str] | None = None, *,
                  config_source: str = "pyrlab.toml") -> Selection:
    """The engine: --engine, else PYRLAB_ENGINE, else the config's `engine` (from
    `config_source`: pyrlab.toml or the user's file), else the first that works."""
    choice, source = named_engine(flag, config_value, environ, config_source=config_source)
    if choice != AUTO:
        return Selection(registry.find(choice), source)
    problems: list[str] = []
    for name in registry.names():
        try:
            engine = registry.find(name)
        except EngineError as exc:
            problems.append(exc.message)
            continue
        # Say why the first choice was passed over: "auto-detection (docker: not running)".
        return Selection(engine, source + (f" ({'; '.join(problems)})" if problems else ""))
    raise EngineError("no usable container engine: " + "; ".join(problems),
                      hint="install and start Docker (with buildx) or Podman, "
                      "or name one with --engine")


def add_engine_argument(parser: argparse.ArgumentParser, dest: str = "engine") -> None:
    parser.add_argument("--engine", choices=registry.choices(), default=None, dest=dest,
                        help="container engine (default: $PYRLAB_ENGINE, then pyrlab.toml's "
                        f"engine, then auto-detection: {', else '.join(registry.names())})")
