"""What an image holds: Debian packages, Python distributions and R packages, with the facts
about the image that explain them (base, OS, interpreters).

`from_manifest` reads what the container-side collector (src/pyrlab/container/inventory.py)
wrote. That JSON comes out of an image, so it is checked like user input: a broken
collector or a tampered image ends in one message naming the manifest, not a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from pyrlab.errors import BuildError

Ecosystem = Literal["debs", "python", "r"]
ECOSYSTEMS: tuple[Ecosystem, ...] = get_args(Ecosystem)

# Where an R package came from: Debian's r-cran-* packages (and R's recommended ones), a
# CRAN-like repository, or a version pinned with `==` (served from the repository's Archive
# when it is not the current one).
RSource = Literal["debian", "cran", "archive"]
R_SOURCES: tuple[RSource, ...] = get_args(RSource)

MANIFEST_FORMAT = 1
# Library folders of R as Debian packages it; everything else is what pyrlab installed.
DEBIAN_R_LIBRARIES = ("/usr/lib/R/site-library", "/usr/lib/R/library")

_PEP503_RE = re.compile(r"[-_.]+")


def normalize_python_name(name: str) -> str:
    """PEP 503: `Foo.Bar_baz` and `foo-bar-baz` are one project."""
    return _PEP503_RE.sub("-", name).lower()


def sort_key(name: str) -> tuple[str, str]:
    """Package order everywhere (lock file, tables, diffs): R's `Rcpp` sits among the r's."""
    return (name.casefold(), name)


@dataclass(frozen=True)
class Deb:
    name: str  # a package of another architecture than dpkg's own keeps its `:ARCH`
    version: str
    arch: str

    @property
    def origin(self) -> str:
        return self.arch


@dataclass(frozen=True)
class PyDist:
    name: str
    version: str
    url: str = ""  # the direct reference (PEP 610) it was installed from; "" from an index

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_python_name(self.name))

    @property
    def origin(self) -> str:
        return self.url


@dataclass(frozen=True)
class RPkg:
    name: str  # as R spells it: R package names are case-sensitive
    version: str
    source: RSource

    @property
    def origin(self) -> str:
        return self.source


Package = Deb | PyDist | RPkg
_P = TypeVar("_P", Deb, PyDist, RPkg)


@dataclass(frozen=True)
class Meta:
    image: str
    input_hash: str  # what pyrlab built the image from (the build's own input hash)
    pyrlab_version: str
    base_id: str  # the base image's ID (or digest) the build started from
    os: str  # PRETTY_NAME of /etc/os-release
    os_id: str  # ID of /etc/os-release: "debian"
    os_version: str  # VERSION_ID, or VERSION_CODENAME where there is none (testing, sid)
    python: str  # version of /opt/venv/bin/python
    r: str = ""  # R's version; "" when the image has no R


@dataclass(frozen=True)
class Inventory:
    meta: Meta
    debs: tuple[Deb, ...] = ()
    python: tuple[PyDist, ...] = ()
    r: tuple[RPkg, ...] = ()

    def __post_init__(self) -> None:
        # Sorted by name here, so that every consumer (lock file, diff, tables) agrees.
        for ecosystem in ECOSYSTEMS:
            packages: tuple[Package, ...] = getattr(self, ecosystem)
            object.__setattr__(
                self, ecosystem, tuple(sorted(packages, key=lambda p: sort_key(p.name))))

    def packages(self, ecosystem: Ecosystem) -> tuple[Package, ...]:
        packages: tuple[Package, ...] = getattr(self, ecosystem)
        return packages


@dataclass(frozen=True)
class Outdated:
    """A package with a newer version available (found by whoever asks the indexes)."""

    image: str
    ecosystem: Ecosystem
    name: str
    installed: str
    available: str


class ManifestError(BuildError):
    """The collector's output cannot be read: the image or its collector is broken."""


def duplicate_names(packages: Iterable[Package]) -> list[str]:
    seen: set[str] = set()
    duplicates: list[str] = []
    for package in packages:
        if package.name in seen and package.name not in duplicates:
            duplicates.append(package.name)
        seen.add(package.name)
    return duplicates


def from_manifest(data: object, source: str, *, pinned_r: Collection[str] = ()) -> Inventory:
    """The inventory in a collector's JSON `data` (already parsed); `source` names it in
    errors. `pinned_r`: R packages the host installed as `name==version` pins; those found
    in pyrlab's own library get the source "archive"."""
    reader = _ManifestReader()
    inventory = reader.inventory(data, frozenset(pinned_r))
    if reader.problems or inventory is None:
        shown = "; ".join(reader.problems)
        raise ManifestError(f"{source}: not a valid pyrlab inventory: {shown}")
    return inventory


class _ManifestReader:
    """Collects every problem with a manifest, each naming the JSON path it is at."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def mapping(self, value: object, where: str) -> Mapping[str, object] | None:
        if isinstance(value, dict):
            return value
        self.problem(where, f"expected an object, found {_json_type(value)}")
        return None

    def string(self, parent: Mapping[str, object], key: str, where: str, *,
               required: bool = True) -> str:
        value = parent.get(key, None if required else "")
        if isinstance(value, str):
            return value
        if value is None and required:
            self.problem(f"{where}.{key}".lstrip("."), "missing")
        else:
            self.problem(f"{where}.{key}".lstrip("."),
                         f"expected a string, found {_json_type(value)}")
        return ""

    def rows(self, value: object, where: str, fields: tuple[str, ...],
             words: int) -> list[list[str]]:
        """A list of rows of strings, one for each of `fields`, the first `words` of them
        single words (a name, a version, an architecture); bad rows are reported, left out."""
        if not isinstance(value, list):
            self.problem(where, f"expected a list, found {_json_type(value)}")
            return []
        rows: list[list[str]] = []
        for i, row in enumerate(value):
            at = f"{where}[{i}]"
            if (not isinstance(row, list) or len(row) != len(fields)
                    or not all(isinstance(cell, str) for cell in row)):
                self.problem(at, f"expected [{', '.join(fields)}] (strings)")
            elif not all(row[:words]) or any(c.isspace() for cell in row[:words] for c in cell):
                self.problem(at, f"{', '.join(fields[:words])} must be words without spaces, "
                             f"found {row[:words]}")
            else:
                rows.append(row)
        return rows

    def unique(self, packages: list[_P], where: str) -> tuple[_P, ...]:
        for name in duplicate_names(packages):
            self.problem(where, f"package '{name}' is listed twice")
        return tuple(packages)

    def inventory(self, data: object, pinned_r: frozenset[str]) -> Inventory | None:
        top = self.mapping(data, "")
        if top is None:
            return None
        if top.get("format") != MANIFEST_FORMAT or isinstance(top.get("format"), bool):
            self.problem("format", f"expected {MANIFEST_FORMAT}, found {top.get('format')!r} "
                         "(the collector and this pyrlab do not match)")
            return None
        meta = self.mapping(top.get("meta"), "meta") or {}
        os_release = self.mapping(top.get("os_release"), "os_release") or {}
        os_version = (self.string(os_release, "VERSION_ID", "os_release", required=False)
                      or self.string(os_release, "VERSION_CODENAME", "os_release",
                                     required=False))
        debs = self.rows(top.get("debs"), "debs", ("name", "version", "arch"), 3)
        dists = self.rows(top.get("python_dists"), "python_dists", ("name", "version", "url"), 2)
        r_version, r_packages = self.r(top.get("r"), pinned_r)
        return Inventory(
            meta=Meta(
                image=self.string(meta, "image", "meta"),
                input_hash=self.string(meta, "input_hash", "meta"),
                pyrlab_version=self.string(meta, "pyrlab_version", "meta"),
                base_id=self.string(meta, "base_id", "meta"),
                os=self.string(os_release, "PRETTY_NAME", "os_release", required=False),
                os_id=self.string(os_release, "ID", "os_release"),
                os_version=os_version,
                python=self.string(top, "python", ""),
                r=r_version,
            ),
            debs=self.unique([Deb(*row) for row in debs], "debs"),
            python=self.unique([PyDist(*row) for row in dists], "python_dists"),
            r=r_packages,
        )

    def r(self, value: object, pinned: frozenset[str]) -> tuple[str, tuple[RPkg, ...]]:
        if value is None:
            return "", ()
        r = self.mapping(value, "r")
        if r is None:
            return "", ()
        version = self.string(r, "version", "r")
        if not version:
            self.problem("r.version", "empty")
        packages = []
        fields = ("name", "version", "libpath", "repository")
        for name, pkg_version, lib_path, _repository in self.rows(
                r.get("packages"), "r.packages", fields, 2):
            source: RSource
            if lib_path.rstrip("/") in DEBIAN_R_LIBRARIES:
                source = "debian"
            else:
                source = "archive" if name in pinned else "cran"
            packages.append(RPkg(name, pkg_version, source))
        return version, self.unique(packages, "r.packages")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
