"""The ecosystem interface: what one package ecosystem (Debian, Python, R, or the next one)
gives the rest of pyrlab.

An ecosystem is a value, not a class to extend: an `Ecosystem` made of parts, one per stage
of pyrlab's work, each a frozen dataclass of plain data and functions. Code above iterates
over `pyrlab.ecosystems.registered()` and asks each part; it never names an ecosystem to
decide what to do.

This module sits below `config` (the list grammar and the config keys are the ecosystems'),
so it imports nothing of config, contents, dockerfile or engines. What a part needs from
those layers it receives as arguments, typed here by small Protocols where needed. Work that
needs an engine (an `outdated` query, a self-test check) is returned as data (argv, mounts,
a parser) for the layer above to run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A target platform as the engines write it ("linux/amd64"). NATIVE is the engine's own: the
# only one today. Every fact that can differ by architecture (the inventory, the pins, the
# lock section, the `outdated` query) is asked for one platform, so that a second one adds
# arguments, not a rewrite.
Platform = str
NATIVE: Platform = ""


# -- grammar --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grammar:
    """The lines of this ecosystem's lists, and the config keys it owns."""


# -- build context ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """What this ecosystem adds to an image's build context and Dockerfile."""


# -- contents ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contents:
    """Its packages as an image holds them: inventory rows, lock section, versions, SBOM."""


# -- outdated -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Queries:
    """Its `outdated`/`upgrade` query, run by the layer above in a throwaway container."""


# -- pins -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pins:
    """Its pins for `build --locked` and the lock checks that come before them."""


# -- checks -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checks:
    """Its part of the self-test gate."""


# -- the whole --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ecosystem:
    name: str  # the name in code: "debian", "python", "r"
    title: str  # as tables and plans show it: "Debian packages"
    order: int  # install order between ecosystems: Debian first, then Python, then R
    step: str  # its build step: the folder in the context (pyrlab/<step>/), the delta part
    list_key: str  # an image's list in pyrlab.toml: images.NAME.<list_key>
    lock_key: str  # its section of an image in pyrlab.lock, diff and `inspect --json`
    manifest_key: str  # its rows in the collector's manifest (container/inventory.py)
    grammar: Grammar = field(default_factory=Grammar)
    context: Context = field(default_factory=Context)
    contents: Contents = field(default_factory=Contents)
    queries: Queries = field(default_factory=Queries)
    pins: Pins = field(default_factory=Pins)
    checks: Checks = field(default_factory=Checks)
