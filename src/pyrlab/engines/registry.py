"""The container engines pyrlab knows (their table is pyrlab/engine_names.py): the one list
behind `--engine`'s choices, the names a choice is checked against, completion, and
auto-detection, which tries them in that order.

Each engine's module is imported only when that engine is looked for (the CLI imports
this module to add `--engine`, on every start), and supplies `find() -> Engine`: the
engine ready to use, or EngineError naming the fix.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from pyrlab.engine_names import ENGINES, engine_choices

if TYPE_CHECKING:
    from pyrlab.engines.base import Engine


def names() -> tuple[str, ...]:
    """The engines, in auto-detection order."""
    return tuple(ENGINES)


def choices() -> tuple[str, ...]:
    """What `--engine`, PYRLAB_ENGINE and the config's `engine` accept (the config's own
    check asks engine_names the same)."""
    return engine_choices()


def find(name: str) -> Engine:
    """The engine called `name`, ready to use; EngineError naming the fix when it is not.
    (The one place an engine is made from its name: the unit tests put theirs here.)"""
    engine: Engine = import_module(ENGINES[name]).find()
    return engine
