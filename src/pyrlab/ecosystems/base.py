"""The ecosystem interface: what one package ecosystem (Debian, Python, R, or the next one)
gives the rest of pyrlab.

An ecosystem is a value, not a class to extend: an `Ecosystem` made of parts, one per stage
of pyrlab's work, each an immutable record (a NamedTuple) of plain data and functions. Code
above iterates over `pyrlab.ecosystems.registered()` and asks each part; it never names an
ecosystem to decide what to do.

This module sits below `config` (the list grammar and the config keys are the ecosystems'),
so it imports nothing of config, contents, dockerfile or engines. What a part needs from
those layers it receives as arguments, typed here by small Protocols where needed. Work that
needs an engine (an `outdated` query, a self-test check) is returned as data (argv, mounts,
a parser) for the layer above to run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from pyrlab import platforms, proc
from pyrlab.errors import Problem

# A target platform as the engines write it ("linux/amd64"), from pyrlab/platforms.py; part
# of this interface. NATIVE is the engine's own: the only one today. Every fact that can
# differ by architecture (the inventory, the pins, the lock section, the `outdated` query)
# is asked for one platform, so that a second one adds arguments, not a rewrite.
Platform = platforms.Platform
NATIVE: Platform = platforms.NATIVE

# The parts and the small records below are NamedTuples, not dataclasses: as immutable,
# and cheaper to define (they are all made when the first ecosystem is loaded, on the way
# to every build). An empty mapping they may share as a default:
EMPTY: Mapping[str, Any] = MappingProxyType({})


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
    # The platforms it is for (`intel-mkl [amd64]` in a Debian or R list); None: every one.
    platforms: frozenset[Platform] | None = None

    def applies_to(self, platform: Platform) -> bool:
        """Whether an image for `platform` (a concrete one) installs it."""
        return self.platforms is None or platform in self.platforms


# A trailing architecture list, as Debian's control files limit a dependency: `[amd64]`,
# `[amd64 arm64]`, or all negated, `[!arm64]`.
_ARCH_LIST_RE = re.compile(r"^(?P<rest>.*?)[ \t]*\[(?P<arches>[^\[\]]*)\]$")


def limited_to_platforms(parse: Callable[[str, str], Entry | str],
                         ) -> Callable[[str, str], Entry | str]:
    """A Grammar.parse_line for an ecosystem whose lines have no brackets of their own:
    `parse` for the line without its trailing architecture list (split_platforms), the
    entry limited to the platforms the list leaves."""

    def parse_line(line: str, where: str) -> Entry | str:
        limited = split_platforms(line)
        if isinstance(limited, str):
            return limited
        rest, chosen = limited
        found = parse(rest, where)
        if isinstance(found, Entry) and chosen is not None:
            return replace(found, platforms=chosen)
        return found

    return parse_line


def split_platforms(line: str) -> tuple[str, frozenset[Platform] | None] | str:
    """A list line without its trailing `[ARCH ...]` or `[!ARCH ...]` (Debian's
    architectures) and the platforms that leaves; (line, None) when it has none; why it is
    refused otherwise. For the ecosystems whose lines have no brackets of their own."""
    found = _ARCH_LIST_RE.match(line)
    if found is None:
        return line, None
    words = found.group("arches").split()
    if not words:
        return "an empty architecture list '[]': name some, such as [amd64]"
    negated = {word.startswith("!") for word in words}
    if len(negated) > 1:
        return (f"'[{found.group('arches')}]' mixes architectures and negated ones: "
                "write either [amd64 arm64] or [!arm64]")
    by_arch = {platforms.debian_arch(p): p for p in platforms.SUPPORTED}
    named = [word.removeprefix("!") for word in words]
    unknown = [arch for arch in named if arch not in by_arch]
    if unknown:
        return (f"unknown architecture '{unknown[0]}' in '[{found.group('arches')}]': pyrlab "
                f"builds for {' and '.join(by_arch)} (Debian's names)")
    chosen = frozenset(by_arch[arch] for arch in named)
    if negated == {True}:
        chosen = frozenset(platforms.SUPPORTED) - chosen
        if not chosen:
            return f"'[{found.group('arches')}]' leaves no platform: remove the line"
    rest = found.group("rest")
    if not rest:
        return "missing package name before the architecture list"
    return rest, chosen


class Include(NamedTuple):
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


class Grammar(NamedTuple):
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
# What the renderer (dockerfile/render.py) hands a Context part. config.project.Project and
# its parts satisfy these Protocols as they are; nothing here imports them.
class ListsView(Protocol):
    """One image's own lists (config.project.ImageLists), by ecosystem name."""

    def of(self, eco: str) -> Sequence[Entry]: ...  # its entries, duplicates merged
    def lines_of(self, eco: str) -> Sequence[Entry]: ...  # its lines as the lists give them


class ContextImageView(ImageView, Protocol):
    @property
    def lab_port(self) -> int | None: ...


class BaseView(Protocol):
    @property
    def slim(self) -> bool: ...
    @property
    def jupyterhub(self) -> bool: ...
    @property
    def snapshot(self) -> str | None: ...


class ProxyView(Protocol):
    """[proxy], its URLs masked or real as the renderer chose (context or build secret)."""

    @property
    def apt(self) -> str | None: ...
    @property
    def apt_https(self) -> bool: ...
    @property
    def pip_index(self) -> str | None: ...
    @property
    def pip_extra_index(self) -> tuple[str, ...]: ...
    @property
    def cran(self) -> str | None: ...
    @property
    def timeout(self) -> int: ...
    @property
    def retries(self) -> int: ...


class ContextConfigView(ConfigView, Protocol):
    @property
    def images(self) -> Mapping[str, ContextImageView]: ...
    @property
    def base(self) -> BaseView: ...
    @property
    def proxy(self) -> ProxyView: ...


class ProjectView(Protocol):
    """A loaded project (config.project.Project)."""

    @property
    def config(self) -> ContextConfigView: ...
    @property
    def lists(self) -> Mapping[str, ListsView]: ...
    def order(self, names: Iterable[str] | None = None) -> list[str]: ...


class DeltaView(Protocol):
    """A delta build (dockerfile.render.Delta): the steps it runs again and, per step, the
    list lines added since the image's previous version."""

    @property
    def steps(self) -> tuple[str, ...]: ...
    @property
    def added(self) -> Mapping[str, tuple[str, ...]]: ...


class Cache(NamedTuple):
    """A cache mount of an install step: the engine's cache pyrlab-<id> (the engines and
    `pyrlab clean` know pyrlab's by that prefix) at `target` in the step."""

    id: str
    target: str
    locked: bool = False  # one step at a time (apt's own locks), where the engine can
    # One mount for every platform, where what it keeps is the same bytes on each (the
    # bytecode cache, test_platforms_lab.py shows it); else each platform gets its own.
    every_platform: bool = False


class Needs(NamedTuple):
    """What an ecosystem asks of the others for one image: Debian packages (installed in the
    Debian step, after pyrlab's own), apt sources for them (file name -> content, in that
    step's sources/) and build-only tools (installed in a stage of their own by the ecosystem
    whose Context has `tools_files`, bind-mounted into the asking step)."""

    debs: tuple[str, ...] = ()
    deb_sources: Mapping[str, bytes] = EMPTY
    build_tools: tuple[str, ...] = ()


class Part(NamedTuple):
    """One image's share of the build context: `files` under pyrlab/<step>/, `pins` under
    pyrlab/pins/<step>/ (placeholders `build --locked` fills; outside the input hash).
    `render`: whether the image runs the step at all."""

    render: bool
    files: Mapping[str, bytes] = EMPTY
    pins: Mapping[str, bytes] = EMPTY


class RuntimeFile(NamedTuple):
    """A file of the root image's runtime (pyrlab/runtime/<name> in the context), copied to
    `target` in the image, the Dockerfile's COPY line after `comment`."""

    name: str
    content: bytes
    target: str
    comment: str


EXECUTABLE = 0o755  # the modes of build context files
REGULAR = 0o644


def container_file(name: str) -> bytes:
    """A file of pyrlab.container (the scripts that run in the image), as the context has it."""
    from importlib import resources  # only when a context is rendered

    return resources.files("pyrlab.container").joinpath(name).read_bytes()


def lines(entries: Iterable[str]) -> bytes:
    """A list file of the build context: one entry a line."""
    return "".join(f"{e}\n" for e in entries).encode()


def _no_part(project: ProjectView, image: str, needs: Needs, delta: DeltaView | None) -> Part:
    return Part(render=False)


def _no_comment(root: bool) -> str:
    return ""


def _no_needs(project: ProjectView, image: str) -> Needs:
    return Needs()


def _no_net_files(project: ProjectView, proxy: ProxyView) -> Mapping[str, bytes]:
    return {}


def _no_secret_files(proxy: ProxyView) -> Mapping[str, bytes]:
    return {}


def _no_meta(project: ProjectView, image: str) -> Mapping[str, object]:
    return {}


def _no_lab_env(layer: str) -> tuple[str, ...]:
    return ()


def _no_scripts() -> Mapping[str, tuple[bytes, int]]:
    return {}


def _no_runtime_files(project: ProjectView) -> tuple[RuntimeFile, ...]:
    return ()


class Context(NamedTuple):
    """What this ecosystem adds to an image's build context and Dockerfile: its step runs
    pyrlab/bin/<script> with its folders bind-mounted (pyrlab/bin; pyrlab/net/<step> at
    /run/pyrlab/net; pyrlab/<step>; pyrlab/pins/<step> at /run/pyrlab/pins), its `caches`
    and its `secrets`. The steps run in the ecosystems' order; one whose part does not
    render adds nothing."""

    script: str = ""  # the installer its step runs
    # Its files for one image: (project, image, the others' Needs, the delta build or None).
    part: Callable[[ProjectView, str, Needs, DeltaView | None], Part] = _no_part
    comment: Callable[[bool], str] = _no_comment  # its step's comment (for a root image?)
    # Its files in pyrlab/bin/, its installer among them: name -> (content, mode), read
    # when a context is rendered.
    scripts: Callable[[], Mapping[str, tuple[bytes, int]]] = _no_scripts
    caches: tuple[Cache, ...] = ()
    # Build secrets its step reads (file names in the secret folder); proxy.env comes with all.
    secrets: tuple[str, ...] = ()
    # What it asks of the others for one image.
    needs: Callable[[ProjectView, str], Needs] = _no_needs
    # Its files in pyrlab/net/<step>/ (the renderer adds timeout and retries), from [proxy]
    # as given: masked for the context, real for the build secrets.
    net_files: Callable[[ProjectView, ProxyView], Mapping[str, bytes]] = _no_net_files
    # Build secrets it reads that are no net/ file: name -> real content, where there is one.
    secret_files: Callable[[ProxyView], Mapping[str, bytes]] = _no_secret_files
    # What the collector records beside what it finds (meta.json keys).
    meta: Callable[[ProjectView, str], Mapping[str, object]] = _no_meta
    # Its list files (in pyrlab/<step>/, one entry a line) that a delta build may find grown
    # (nothing else of its part changed): the step runs again and installs what is new.
    delta_lists: tuple[str, ...] = ()
    # The root image's environment it sets ("NAME=VALUE", after the earlier steps'); an
    # ecosystem that installs build tools sets it in their stage too.
    env: tuple[str, ...] = ()
    # The environment of every image with a lab, given the image's layer key (its place in
    # the lab's home, see Config.layer_key).
    lab_env: Callable[[str], tuple[str, ...]] = _no_lab_env
    # Its files of the root image's runtime (the lab's settings for it).
    runtime_files: Callable[[ProjectView], tuple[RuntimeFile, ...]] = _no_runtime_files
    # Only for the ecosystem that installs the others' build tools (Debian): its files (in
    # pyrlab/tools/, mounted as its step's folder) for a build-only stage of their own.
    tools_files: Callable[[tuple[str, ...]], Mapping[str, bytes]] | None = None


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


class Found(NamedTuple, Generic[P]):
    """One ecosystem's part of a manifest: its packages and the image facts it knows
    ({Meta attribute: value}, e.g. {"python": "3.13.5"})."""

    packages: tuple[P, ...]
    facts: Mapping[str, str] = EMPTY


class ImageFacts(Protocol):
    """The facts of an image an SBOM needs (contents.model.Meta satisfies it)."""

    @property
    def os_id(self) -> str: ...

    @property
    def os_version(self) -> str: ...


class Purl(NamedTuple):
    """A package URL as plain data; the SBOM writer turns it into its library's type."""

    type: str
    name: str
    version: str
    namespace: str | None = None
    qualifiers: Mapping[str, str] = EMPTY


def _no_purl(package: object, facts: ImageFacts) -> Purl | None:
    return None


class Contents(NamedTuple, Generic[P]):
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
    # Its own collector, for an ecosystem pyrlab's shared one (container/inventory.py) does
    # not know: an executable script (with its `#!` line), put in the build context as
    # pyrlab/inventory/<name> and run right after the shared collector with the manifest's
    # path; it adds the ecosystem's rows under its manifest_key. None: the shared one does.
    collector: Callable[[], bytes] | None = None


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


class Note(Protocol):
    """Something an answer says beside its versions (Python: a held-back package)."""

    def describe(self) -> str: ...

    def to_json(self) -> dict[str, str]: ...


class Answer(NamedTuple):
    available: Mapping[str, str]  # {package name: the version an upgrade would install}
    notes: tuple[Note, ...] = ()


class Query(NamedTuple):
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


class Queries(NamedTuple):
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
# How a build's install steps use pyrlab.lock: "prefer" (a plain build), "exact" (`build
# --locked`), "fresh" (`upgrade`). What each mode means for an ecosystem is its `Pins.files`.
PinMode = Literal["prefer", "exact", "fresh"]


class Locked(NamedTuple):
    """One image's packages as pyrlab.lock holds them (or what a pin mode keeps of them), as
    plain data: the packages by ecosystem name, in the lock's order, and the facts of its
    meta by field ("python": "3.13.5", "r": "4.5.0", "os_id": "debian", ...)."""

    packages: Mapping[str, Sequence[Any]] = EMPTY
    facts: Mapping[str, str] = EMPTY

    def of(self, ecosystem: str) -> Sequence[Any]:
        return self.packages.get(ecosystem, ())


class Preflight(NamedTuple):
    """A question a `build --locked` asks before building anything, in a throwaway container
    of the base image with the root image's build context mounted: can the sources still
    give every version the lock names?"""

    argv: tuple[str, ...]  # run in the container
    # (context folder relative to pyrlab/, name under /run/pyrlab) pairs: a tuple, so that
    # an Ecosystem stays hashable
    mounts: tuple[tuple[str, str], ...]
    question: str  # for an engine's error: what was asked ("{ref}": the base image)
    noun: str  # a package of it in the error: "Debian package"
    # The packages the question is about, of several images' sections together: those it
    # can pin, each once, in the order the pins file lists them.
    pinned: Callable[[Iterable[Any]], tuple[Any, ...]]
    # What cannot be had, one line each ("NAME VERSION: why"), from the container's answer.
    unavailable: Callable[[Sequence[Any], str], list[str]]
    hint: Callable[[str], str]  # what to do, given the lock file's name as shown


def _same(package: Any) -> object:
    return package


def _version(package: Any) -> str:
    return str(package.version)


class Pins(NamedTuple):
    """Its pins for `build --locked` and the lock checks that come before them."""

    # The installer of its step (pyrlab/bin/NAME): on Podman, the RUN line that carries the
    # pins' digest. "" for an ecosystem without a step of its own.
    script: str = ""
    # The files of its step's pins folder (pyrlab/pins/<step>/), for a mode, from what the
    # mode keeps of the image's lock section, for one platform. None: no pins folder.
    files: Callable[[PinMode, Locked, Platform], Mapping[str, bytes]] | None = None
    # A plain build ("prefer") keeps its versions: the image's section, then its ancestors'
    # for what that lacks. False: pinned for "exact" only.
    prefers: bool = False
    # Each list entry the lock cannot satisfy: (entries, the image's section, "LOCK
    # [images.NAME]" for messages, the ecosystem's version order (-1/0/1)).
    problems: Callable[[Sequence[Entry], Locked, str, Callable[[str, str], int]],
                       Iterable[Problem]] | None = None
    # What must agree between an image and its lock section, per package; and how one is
    # shown where they do not.
    agrees: Callable[[Any], object] = _same
    described: Callable[[Any], str] = _version
    preflight: Preflight | None = None  # Debian: are the locked versions still offered?


# -- checks -----------------------------------------------------------------------------------
# What a check's result means for the image:
# ok; failed, regression (block it); known (a failure pyrlab.toml accepts); warning (a
# failure that does not block: a top-level module other than the distribution's own);
# fixed (marked as known to fail, works now); skipped (its line's marker leaves it out).
Verdict = Literal["ok", "failed", "regression", "known", "warning", "fixed", "skipped"]


class Listed(NamedTuple):
    """A package the self-test checks, as its list names it."""

    where: str  # FILE:LINE
    marker: str = ""  # its environment marker, "" when none
    extras: frozenset[str] = frozenset()


class Finding(NamedTuple):
    """One check's result, judged by its ecosystem (the gate adds the ecosystem's name)."""

    name: str  # distribution, R package
    what: str  # the module imported, the code run; "" when there was nothing to do
    seconds: float
    error: str = ""  # the error's last line; "" when it worked
    where: str = ""  # FILE:LINE of the list entry
    verdict: Verdict | None = None  # None: "failed" with an error, else "ok"
    note: str = ""  # why the verdict, where it is not plain ok or failed


def mark_matches(expected: str, error: str, types: Sequence[str] = ()) -> bool:
    """A known-failure mark's expected error against an actual one: an exception type of
    it (ImportError matches a ModuleNotFoundError), or a text it contains."""
    return expected in types or expected in error


def json_rows(answer: proc.Completed) -> list[Any] | str:
    """The rows a container check prints as JSON on its last line, or why there are none."""
    lines = answer.stdout.strip().splitlines()
    try:
        rows = json.loads(lines[-1]) if lines else None
    except ValueError:
        rows = None
    if not isinstance(rows, list):
        detail = (answer.stderr or answer.stdout).strip().splitlines()
        return detail[-1] if detail else f"the check exited with code {answer.returncode}"
    return rows


# How a mark is named in a note: "pyrlab.toml: test.known_failures.python.NAME".
MarkKey = Callable[[str], str]
# Packages reachable from one (with these extras) in the image's dependency graph.
Reach = Callable[[str, frozenset[str]], frozenset[str]]


class Retest(NamedTuple):
    """After a delta build: which of its listed packages to check again, by the image's
    dependency graph, rather than only those that changed themselves."""

    # (listed packages, the packages new, changed or gone, the graph) -> those to check
    affected: Callable[[Mapping[str, Listed], frozenset[str], Reach], frozenset[str]]
    # The package a line of the image's lists label names (an added line naming one
    # already installed is checked too).
    listed_name: Callable[[str], str]


def _named(name: str, what: str) -> str:
    return name


def _no_mark(finding: Finding) -> tuple[str, str] | None:
    return None


class Checks(NamedTuple):
    """Its part of the self-test gate."""

    label: str = ""  # a check in reports: "import", "library"
    counted: str = ""  # its checks in a report's summary: "imports", "R packages"
    passed: str = ""  # the line of those that passed: "imported", "attached"
    # What to check: (the list entries of the image and its ancestors, root first; its
    # packages in the image, () when unknown) -> package -> its line.
    wanted: Callable[[Sequence[Entry], Sequence[Any]], dict[str, Listed]] | None = None
    # The command run in the image's quiet container (no network, not root): checks these
    # (package, what) pairs, what "" for all of a package.
    command: Callable[[Sequence[tuple[str, str]]], list[str]] | None = None
    # Its findings from the command's answer: (answer, wanted, marks, how marks are named).
    judge: Callable[[proc.Completed, Mapping[str, Listed], Mapping[str, str], MarkKey],
                    list[Finding]] | None = None
    target: Callable[[str, str], str] = _named  # (name, what) as a report names it
    brief: Callable[[str, str], str] = _named  # (name, what) in the line of those passed
    # The mark that would accept a finding's failure: (name in the table, expected error).
    accepts: Callable[[Finding], tuple[str, str] | None] = _no_mark
    # (package, kernel): the kernel to start after a delta that changed only this
    # ecosystem, where the image holds the package that provides it.
    kernel: tuple[str, str] | None = None
    retest: Retest | None = None  # Python: by the dependency graph


# -- the whole --------------------------------------------------------------------------------
class Ecosystem(NamedTuple):
    name: str  # the name in code: "debian", "python", "r"
    title: str  # as tables and plans show it: "Debian packages"
    order: int  # install order between ecosystems: Debian first, then Python, then R
    step: str  # its build step: the folder in the context (pyrlab/<step>/), the delta part
    list_key: str  # an image's list in pyrlab.toml: images.NAME.<list_key>
    lock_key: str  # its section of an image in pyrlab.lock, diff and `inspect --json`
    manifest_key: str  # its rows in the collector's manifest (container/inventory.py)
    grammar: Grammar = Grammar()
    context: Context = Context()
    contents: Contents[Any] = NO_CONTENTS
    queries: Queries = Queries()
    pins: Pins = Pins()
    checks: Checks = Checks()
