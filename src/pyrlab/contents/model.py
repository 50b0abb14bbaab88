"""What an image holds: Debian packages, Python distributions and R packages, with the facts
about the image that explain them (base, OS, interpreters).

`from_manifest` reads what the container-side collector (src/pyrlab/container/inventory.py)
wrote. That JSON comes out of an image, so it is checked like user input: a broken
collector or a tampered image ends in one message naming the manifest, not a traceback.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from pyrlab import ecosystems
from pyrlab.ecosystems.base import NATIVE, Ecosystem, Package, Platform, sort_key
from pyrlab.errors import BuildError

MANIFEST_FORMAT = 1

_P = TypeVar("_P")


@dataclass(frozen=True)
class Meta:
    """An image's facts: pyrlab's own, then those an ecosystem reads from the manifest
    (its `Found.facts`: the OS from Debian's part, `python` and `r` from theirs), which it
    writes to the lock and shows in diffs (its `lock_meta`, `diff_meta`)."""

    image: str
    input_hash: str  # what pyrlab built the image from (the build's own input hash)
    pyrlab_version: str
    base_id: str  # the base image's ID (or digest) the build started from
    os: str  # PRETTY_NAME of /etc/os-release
    os_id: str  # ID of /etc/os-release: "debian"
    os_version: str  # VERSION_ID, or VERSION_CODENAME where there is none (testing, sid)
    python: str  # version of /opt/venv/bin/python
    r: str = ""  # R's version; "" when the image has no R


def ecosystem(key: str) -> Ecosystem:
    """The registered ecosystem `key` names: its name in code ("debian") or its lock key
    ("debs", as pyrlab.lock, `inspect --json` and `diff --json` show it)."""
    for eco in ecosystems.registered():
        if key in (eco.name, eco.lock_key):
            return eco
    raise KeyError(f"no ecosystem {key!r} is registered")


@dataclass(frozen=True, init=False, repr=False)
class Inventory:
    """What one image holds: its facts and, per registered ecosystem (by name, in install
    order; one it does not hold has ()), its packages sorted by name, so that every
    consumer (lock file, diff, tables) agrees. `platform`: the platform the image is for
    (NATIVE: the engine's own, the only one today).

    Built as `Inventory(meta, {"debian": debs, "python": dists})` or with keywords,
    `Inventory(meta, debs=..., python=..., r=...)` (a keyword replaces the mapping's entry,
    so `dataclasses.replace(inventory, python=...)` works): a key is an ecosystem's name or
    its lock key (see `ecosystem`)."""

    meta: Meta
    by_ecosystem: Mapping[str, tuple[Package, ...]]
    platform: Platform

    def __init__(self, meta: Meta, by_ecosystem: Mapping[str, Iterable[Package]] | None = None,
                 *, platform: Platform = NATIVE, **packages: Iterable[Package]) -> None:
        given = {ecosystem(key).name: value for key, value in (by_ecosystem or {}).items()}
        named: set[str] = set()
        for key, value in packages.items():  # over the mapping (dataclasses.replace)
            name = ecosystem(key).name
            if name in named:
                raise ValueError(f"the packages of {name!r} are given twice")
            named.add(name)
            given[name] = value
        object.__setattr__(self, "meta", meta)
        object.__setattr__(self, "by_ecosystem",
                           {eco.name: tuple(sorted(given.get(eco.name, ()),
                                                   key=lambda p: sort_key(p.name)))
                            for eco in ecosystems.registered()})
        object.__setattr__(self, "platform", platform)

    def packages(self, name: str) -> tuple[Package, ...]:
        """The packages of the ecosystem `name` (or lock key, see `ecosystem`)."""
        return self.by_ecosystem.get(ecosystem(name).name, ())

    def __hash__(self) -> int:
        return hash((self.meta, tuple(self.by_ecosystem.items()), self.platform))

    def __repr__(self) -> str:
        # The SBOM's serial number is derived from this text: it stays what it was.
        keys = {eco.name: eco.lock_key for eco in ecosystems.registered()}
        held = ", ".join(f"{keys.get(name, name)}={packages!r}"
                         for name, packages in self.by_ecosystem.items())
        return f"Inventory(meta={self.meta!r}, {held})"


@dataclass(frozen=True)
class Outdated:
    """A package with a newer version available (found by whoever asks the indexes)."""

    image: str
    ecosystem: str  # the ecosystem's name: "debian", "python", "r"
    name: str
    installed: str
    available: str

    def to_json(self) -> dict[str, str]:
        """As `outdated --json` shows it: the ecosystem by its lock key ("debs")."""
        return {"image": self.image, "ecosystem": ecosystems.named(self.ecosystem).lock_key,
                "name": self.name, "installed": self.installed, "available": self.available}


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


def from_manifest(data: object, source: str, *, pinned: Mapping[str, Collection[str]] = {},
                  platform: Platform = NATIVE) -> Inventory:
    """The inventory in a collector's JSON `data` (already parsed); `source` names it in
    errors. `pinned`: per ecosystem name, the packages the host installed as exact pins
    (R: `name==version`; those found in pyrlab's own library get the source "archive")."""
    reader = _ManifestReader()
    inventory = reader.inventory(data, pinned, platform)
    if reader.problems or inventory is None:
        shown = "; ".join(reader.problems)
        raise ManifestError(f"{source}: not a valid pyrlab inventory: {shown}")
    return inventory


class _ManifestReader:
    """Collects every problem with a manifest, each naming the JSON path it is at
    (an ecosystems.base.ManifestReader: each ecosystem reads its own part with it)."""

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
        for name in duplicate_names(cast(list[Package], packages)):
            self.problem(where, f"package '{name}' is listed twice")
        return tuple(packages)

    def inventory(self, data: object, pinned: Mapping[str, Collection[str]],
                  platform: Platform) -> Inventory | None:
        top = self.mapping(data, "")
        if top is None:
            return None
        if top.get("format") != MANIFEST_FORMAT or isinstance(top.get("format"), bool):
            self.problem("format", f"expected {MANIFEST_FORMAT}, found {top.get('format')!r} "
                         "(the collector and this pyrlab do not match)")
            return None
        meta = self.mapping(top.get("meta"), "meta") or {}
        facts: dict[str, Any] = {}
        packages: dict[str, tuple[Package, ...]] = {}
        for eco in ecosystems.registered():
            found = eco.contents.read_manifest(top, self, frozenset(pinned.get(eco.name, ())),
                                               platform)
            facts.update(found.facts)
            packages[eco.name] = found.packages
        return Inventory(
            Meta(
                image=self.string(meta, "image", "meta"),
                input_hash=self.string(meta, "input_hash", "meta"),
                pyrlab_version=self.string(meta, "pyrlab_version", "meta"),
                base_id=self.string(meta, "base_id", "meta"),
                **facts,
            ),
            packages,
            platform=platform,
        )


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
