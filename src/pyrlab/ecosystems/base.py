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

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

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
class Package(Protocol):
    """One installed package of any ecosystem (Debian's Deb, Python's PyDist, R's RPkg)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def origin(self) -> str: ...  # what else identifies it: an architecture, a URL, a source


P = TypeVar("P")


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...

    def __gt__(self, other: Any, /) -> bool: ...


_T = TypeVar("_T", bound=_Ordered)


def sign(a: _T, b: _T) -> int:
    """-1, 0 or 1 as `a` is below, equal to or above `b`: what every `compare` returns."""
    return int(a > b) - int(a < b)


def sort_key(name: str) -> tuple[str, str]:
    """Package order everywhere (lock file, tables, diffs): R's `Rcpp` sits among the r's."""
    return (name.casefold(), name)


class ManifestReader(Protocol):
    """What reads the collector's JSON (contents.model): every problem is collected, each
    naming the JSON path it is at; bad values are reported and left out."""

    def problem(self, where: str, message: str) -> None: ...

    def mapping(self, value: object, where: str) -> Mapping[str, object] | None: ...

    def string(self, parent: Mapping[str, object], key: str, where: str, *,
               required: bool = True) -> str: ...

    def rows(self, value: object, where: str, fields: tuple[str, ...],
             words: int) -> list[list[str]]: ...

    def unique(self, packages: list[P], where: str) -> tuple[P, ...]: ...


@dataclass(frozen=True)
class Found(Generic[P]):
    """One ecosystem's part of a manifest: its packages and the image facts it knows
    ({Meta attribute: value}, e.g. {"python": "3.13.5"})."""

    packages: tuple[P, ...]
    facts: Mapping[str, str] = field(default_factory=dict)


class ImageFacts(Protocol):
    """The facts of an image an SBOM needs (contents.model.Meta satisfies it)."""

    @property
    def os_id(self) -> str: ...

    @property
    def os_version(self) -> str: ...


@dataclass(frozen=True)
class Purl:
    """A package URL as plain data; the SBOM writer turns it into its library's type."""

    type: str
    name: str
    version: str
    namespace: str | None = None
    qualifiers: Mapping[str, str] = field(default_factory=dict)


def _no_purl(package: object, facts: ImageFacts) -> Purl | None:
    return None


@dataclass(frozen=True)
class Contents(Generic[P]):
    """Its packages as an image holds them: inventory rows, lock section, versions, SBOM.

    `read_manifest(top, reader, pinned, platform)`: its packages (and image facts) in the
    collector's JSON object `top`; `pinned` names the packages the host installed as exact
    pins (meta.json of the build context says which). `lock_meta`: the image facts it writes
    to the lock, (lock key, Meta attribute), in order. `lock_value`/`parse_lock_value`: one
    package line's value in pyrlab.lock and back (a str is the problem with the value).
    `diff_meta`: the image facts a diff reports, (field shown, Meta attribute).
    `shown(version, origin)`: a package as a diff shows it; `purl`: its package URL in an SBOM.
    """

    read_manifest: Callable[[Mapping[str, object], ManifestReader, frozenset[str], Platform],
                            Found[P]]
    lock_value: Callable[[P], str]
    # (name, value) -> the package, a problem, or None: the value is not of `value_shape`
    parse_lock_value: Callable[[str, str], P | str | None]
    value_shape: str  # what a lock value holds, for messages: '"VERSION ARCH"'
    compare: Callable[[str, str], int]  # version order, like C's strcmp
    origin_header: str  # the origin column's header in `inspect`: "arch", "from", "source"
    shown: Callable[[str, str], str]  # (version, origin) as a diff shows it: "1.2 @ URL"
    origin_in_diff: bool = True  # False: a diff shows the origin only where it changed
    purl: Callable[[P, ImageFacts], Purl | None] = _no_purl
    lock_meta: tuple[tuple[str, str], ...] = ()
    diff_meta: tuple[tuple[str, str], ...] = ()
    # The key of the build's meta.json (in the manifest's `meta`) that lists its packages
    # installed as exact pins: read_manifest's `pinned`.
    pinned_meta: str | None = None
    # A package name as this ecosystem compares names (Python: PEP 503); R's and Debian's
    # are compared as they are spelt.
    canonical_name: Callable[[str], str] = str


def _none_found(top: Mapping[str, object], reader: ManifestReader, pinned: frozenset[str],
                platform: Platform) -> Found[Any]:
    return Found(())


# An ecosystem that keeps no packages of its own (the default).
NO_CONTENTS: Contents[Any] = Contents(
    read_manifest=_none_found, lock_value=str,
    parse_lock_value=lambda name, value: f"'{name}': this ecosystem keeps no packages",
    value_shape='""', compare=sign, origin_header="origin",
    shown=lambda version, origin: f"{version} {origin}".strip(),
)


# -- outdated -----------------------------------------------------------------------------
# Where a question's context folders are mounted in the throwaway container
# (contents.upgradable.ask_image): a Query's mounts name folders under it.
ASK_ROOT = "/run/pyrlab"
NET_ENV = f"{ASK_ROOT}/bin/net-env"  # runs a command with the build's proxy variables


class Finding(Protocol):
    """Something an answer says beside its versions (Python: a held-back package)."""

    def describe(self) -> str: ...

    def to_json(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Answer:
    available: Mapping[str, str]  # {package name: the version an upgrade would install}
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Query:
    """A question to a built image: `argv` runs as root in a throwaway container of it, with
    the build context's folders `mounts` (folder under pyrlab/ -> folder under ASK_ROOT) and
    the build secrets; `parse` reads its output (raising BuildError when it cannot)."""

    argv: tuple[str, ...]
    mounts: Mapping[str, str]
    parse: Callable[[str], Answer]


def _no_query(files: Collection[str], packages: tuple[Any, ...], secret_dir: str,
              platform: Platform) -> Query | None:
    return None


def _not_newer(package: Any, available: Mapping[str, str]) -> str | None:
    return None


@dataclass(frozen=True)
class Queries:
    """Its `outdated`/`upgrade` query, run by the layer above in a throwaway container.

    `outdated(files, packages, secret_dir, platform)`: the query for an image whose build
    context holds `files` (paths) and that holds `packages` of this ecosystem, or None when
    there is nothing to ask; `secret_dir` is where the build secrets are mounted.
    `newer(package, available)`: the version the answer offers over `package`, None when
    it offers none newer (or the package is not the index's to upgrade).
    """

    outdated: Callable[[Collection[str], tuple[Any, ...], str, Platform], Query | None] = \
        _no_query
    newer: Callable[[Any, Mapping[str, str]], str | None] = _not_newer


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
    contents: Contents[Any] = field(default_factory=lambda: NO_CONTENTS)
    queries: Queries = field(default_factory=Queries)
    pins: Pins = field(default_factory=Pins)
    checks: Checks = field(default_factory=Checks)
