"""The registry of package ecosystems.

Adding an ecosystem is one module that defines `ECOSYSTEM` (see base.py), its container
script, and one line in `_BUILTIN`. The modules are imported on the first question, not at
pyrlab's start: `pyrlab --version` and the verbs that need no list never load them.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the interface itself loads with the first ecosystem
    from pyrlab.ecosystems.base import Ecosystem

# The registration lines, one per ecosystem.
_BUILTIN = (
    "pyrlab.ecosystems.debian",
    "pyrlab.ecosystems.python",
    "pyrlab.ecosystems.r",
)

_added: list[Ecosystem] = []


@functools.cache
def _builtin() -> tuple[Ecosystem, ...]:
    return tuple(importlib.import_module(module).ECOSYSTEM for module in _BUILTIN)


def registered() -> tuple[Ecosystem, ...]:
    """Every ecosystem, in install order."""
    return tuple(sorted((*_builtin(), *_added), key=lambda eco: eco.order))


def named(name: str) -> Ecosystem:
    for eco in registered():
        if eco.name == name:
            return eco
    raise KeyError(name)


def register(eco: Ecosystem) -> Callable[[], None]:
    """Add an ecosystem beside the built-in ones (a plug-in, a test's); returns its undo."""
    taken = {(attr, getattr(e, attr)) for e in registered()
             for attr in ("name", "step", "list_key", "lock_key", "manifest_key", "order")}
    clashes = [attr for attr in ("name", "step", "list_key", "lock_key", "manifest_key", "order")
               if (attr, getattr(eco, attr)) in taken]
    if clashes:
        raise ValueError(f"ecosystem {eco.name!r}: {', '.join(clashes)} already taken")
    _added.append(eco)
    return lambda: _added.remove(eco)
