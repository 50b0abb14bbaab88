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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# A target platform as the engines write it ("linux/amd64"). NATIVE is the engine's own: the
# only one today. Every fact that can differ by architecture (the inventory, the pins, the
# lock section, the `outdated` query) is asked for one platform, so that a second one adds
# arguments, not a rewrite.
Platform = str
NATIVE: Platform = ""


# -- grammar --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One package a list asks for: the type every part shares."""

    ecosystem: str  # the name of the ecosystem whose list it is in (Ecosystem.name)
    # Canonical key: the Debian name; the PEP 503-normalised Python name (a bare URL line
    # without #egg= uses the URL itself); the R name as written (R names are case-sensitive).
    name: str
    text: str  # the normalised line written into the build context for the installer
    version: str | None  # the pinned (or, in R, minimum) version when given
    source: str | None  # R only: "apt" or "cran" when the entry asks for one
    where: str  # "FILE:LINE", FILE relative to the project root when under it


@dataclass(frozen=True)
class Include:
    """An option line that reads another list (pip's `-r FILE`): the file as written,
    relative to the including list. The list reader confines and reads it."""

    written: str


class ImageView(Protocol):
    """One image of the configuration, as an ecosystem may read it."""

    @property
    def parent(self) -> str | None: ...

    def value(self, key: str) -> object:
        """The value of images.NAME.<key> (a config key, as pyrlab.toml spells it)."""
        ...


class ConfigView(Protocol):
    """The configuration, as an ecosystem may read it (config.model.Config is one)."""

    @property
    def images(self) -> Mapping[str, ImageView]: ...


def _no_lines(line: str, where: str) -> Entry | str:
    return "this ecosystem takes no list"


def _same_only(first: Entry, other: Entry) -> Entry | str:
    return first if other.text == first.text else "two different entries"


def _no_marker(entry: Entry) -> str | None:
    return None


def _never(line: str) -> bool:
    return False


def _any_image(config: ConfigView, image: str) -> str | None:
    return None


@dataclass(frozen=True)
class Grammar:
    """The lines of this ecosystem's lists, and the config keys it owns.

    config/lists.py reads the files (includes, comments, continuations, confinement, the
    characters a shell would act on) and hands each line to `parse_line`; a later line for
    the same package is merged into the first by `merge`.
    """

    # (line, "FILE:LINE") → the entry it asks for, or why the line is refused. The line
    # has no comment, no surrounding blanks and no character a shell would act on.
    parse_line: Callable[[str, str], Entry | str] = _no_lines
    # (first, later) for one package → the entry both ask for (`first` itself for an exact
    # duplicate), or why they cannot both hold.
    merge: Callable[[Entry, Entry], Entry | str] = _same_only
    # The condition an entry holds under (a PEP 508 marker): lines for one package under
    # different markers are alternatives, not duplicates. None: always.
    marker: Callable[[Entry], str | None] = _no_marker
    # A line starting with "-" → the list it includes, or why the option is refused. None:
    # no options; such a line goes to `parse_line`, which refuses it.
    option: Callable[[str], Include | str] | None = None
    # pip's continuation: a line ending in `\` goes on with the next.
    continuation: bool = False
    # Whether `line` may hold one `;` (a PEP 508 marker separator), else a refused character.
    semicolon: Callable[[str], bool] = _never
    # (config, image) → why that image cannot take entries of this list (R's lists need
    # R), reported at the image's list key when its list is not empty; None: it can.
    image_problem: Callable[[ConfigView, str], str | None] = _any_image
    # Every config key it owns besides its lists, dotted, an image's written `images.*.KEY`
    # (did-you-mean and completion know them; pyrlab's readers read them).
    keys: tuple[str, ...] = ()
    # The files of base.<list_key> when pyrlab.toml does not set it: a list every root image
    # reads first, before its own (Debian's base_debs.txt). None: [base] has no such list.
    base_list: tuple[str, ...] | None = None
    # How `pyrlab check` counts an image's entries: "3 debs".
    count_label: str = ""


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
