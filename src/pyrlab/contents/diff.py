"""What changed between two inventories of an image, or between two lock files.

Result objects only: commands render them (tables.py, or `to_json()` for --json).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pyrlab.contents.model import ECOSYSTEMS, Ecosystem, Inventory, Package, sort_key
from pyrlab.contents.versions import compare

ChangeKind = Literal["added", "removed", "upgraded", "downgraded", "changed"]
ImageStatus = Literal["added", "removed", "changed", "unchanged"]

# Image facts a diff reports when they change (the input hash changes with everything).
_META_FIELDS = (("os", "os"), ("python", "python"), ("r", "r"), ("base-id", "base_id"))


@dataclass(frozen=True)
class Change:
    """One package that differs. `origin` is what else identifies what was installed: the
    architecture (debs), the direct URL (python, "" from an index) or the source (r).
    "changed": a version equal in the ecosystem's order (usually the same one) from another
    origin, or spelt differently."""

    ecosystem: Ecosystem
    name: str
    kind: ChangeKind
    old_version: str | None = None  # None: it was not there
    new_version: str | None = None  # None: it is gone
    old_origin: str = ""
    new_origin: str = ""

    def to_json(self) -> dict[str, str | None]:
        return {
            "ecosystem": self.ecosystem, "name": self.name, "kind": self.kind,
            "old_version": self.old_version, "new_version": self.new_version,
            "old_origin": self.old_origin, "new_origin": self.new_origin,
        }


@dataclass(frozen=True)
class MetaChange:
    field: str  # "os", "python", "r" or "base-id"
    old: str
    new: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class InventoryDiff:
    image: str
    status: ImageStatus
    meta: tuple[MetaChange, ...] = ()
    debs: tuple[Change, ...] = ()
    python: tuple[Change, ...] = ()
    r: tuple[Change, ...] = ()

    def changes(self, ecosystem: Ecosystem) -> tuple[Change, ...]:
        changes: tuple[Change, ...] = getattr(self, ecosystem)
        return changes

    @property
    def all_changes(self) -> tuple[Change, ...]:
        return self.debs + self.python + self.r

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for change in self.all_changes if change.kind == kind)

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "status": self.status,
            "meta": [change.to_json() for change in self.meta],
            **{e: [change.to_json() for change in self.changes(e)] for e in ECOSYSTEMS},
        }


def diff(old: Inventory | None, new: Inventory | None) -> InventoryDiff:
    """Changes from `old` to `new` (None: the image is not there)."""
    either = new if new is not None else old
    if either is None:
        raise ValueError("diff needs at least one inventory")
    meta: tuple[MetaChange, ...] = ()
    if old is not None and new is not None:
        meta = tuple(
            MetaChange(field, getattr(old.meta, attribute), getattr(new.meta, attribute))
            for field, attribute in _META_FIELDS
            if getattr(old.meta, attribute) != getattr(new.meta, attribute)
        )
    per_ecosystem = {
        ecosystem: _diff_packages(
            ecosystem,
            old.packages(ecosystem) if old is not None else (),
            new.packages(ecosystem) if new is not None else (),
        )
        for ecosystem in ECOSYSTEMS
    }
    status: ImageStatus
    if old is None:
        status = "added"
    elif new is None:
        status = "removed"
    elif meta or any(per_ecosystem.values()):
        status = "changed"
    else:
        status = "unchanged"
    return InventoryDiff(either.meta.image, status, meta, **per_ecosystem)


def _diff_packages(ecosystem: Ecosystem, old: tuple[Package, ...],
                   new: tuple[Package, ...]) -> tuple[Change, ...]:
    before = {package.name: package for package in old}
    after = {package.name: package for package in new}
    changes = []
    for name in sorted(before.keys() | after.keys(), key=sort_key):
        was, now = before.get(name), after.get(name)
        if was is None and now is not None:
            changes.append(Change(ecosystem, name, "added", None, now.version, "", now.origin))
        elif now is None and was is not None:
            changes.append(Change(ecosystem, name, "removed", was.version, None, was.origin, ""))
        elif was is not None and now is not None and was != now:
            order = compare(ecosystem, was.version, now.version)
            kind: ChangeKind = "upgraded" if order < 0 else "downgraded" if order > 0 else "changed"
            changes.append(Change(ecosystem, name, kind, was.version, now.version,
                                  was.origin, now.origin))
    return tuple(changes)


def diff_locks(old: Mapping[str, Inventory],
               new: Mapping[str, Inventory]) -> tuple[InventoryDiff, ...]:
    """Every image in either lock, by name, unchanged ones included (status "unchanged")."""
    return tuple(diff(old.get(image), new.get(image))
                 for image in sorted(old.keys() | new.keys()))
