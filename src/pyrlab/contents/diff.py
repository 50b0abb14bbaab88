"""What changed between two inventories of an image, or between two lock files.

Result objects only: commands render them (tables.py, or `to_json()` for --json).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pyrlab import ecosystems
from pyrlab.contents.model import Inventory
from pyrlab.ecosystems.base import Ecosystem, Package, sort_key

ChangeKind = Literal["added", "removed", "upgraded", "downgraded", "changed"]
ImageStatus = Literal["added", "removed", "changed", "unchanged"]


def _meta_fields() -> tuple[tuple[str, str], ...]:
    """Image facts a diff reports when they change, (field, Meta attribute): each
    ecosystem's (the OS, the interpreters), then the base (the input hash changes with
    everything)."""
    return (*(pair for eco in ecosystems.registered() for pair in eco.contents.diff_meta),
            ("base-id", "base_id"))


@dataclass(frozen=True)
class Change:
    """One package that differs, of the ecosystem named `ecosystem`. `origin` is what else
    identifies what was installed: the architecture (debian), the direct URL (python, ""
    from an index) or the source (r).
    "changed": a version equal in the ecosystem's order (usually the same one) from another
    origin, or spelt differently."""

    ecosystem: str
    name: str
    kind: ChangeKind
    old_version: str | None = None  # None: it was not there
    new_version: str | None = None  # None: it is gone
    old_origin: str = ""
    new_origin: str = ""

    def to_json(self) -> dict[str, str | None]:
        return {
            "ecosystem": ecosystems.named(self.ecosystem).lock_key, "name": self.name,
            "kind": self.kind,
            "old_version": self.old_version, "new_version": self.new_version,
            "old_origin": self.old_origin, "new_origin": self.new_origin,
        }


@dataclass(frozen=True)
class MetaChange:
    field: str  # "os", "python", "r" (an ecosystem's diff_meta) or "base-id"
    old: str
    new: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class InventoryDiff:
    image: str
    status: ImageStatus
    meta: tuple[MetaChange, ...] = ()
    by_ecosystem: Mapping[str, tuple[Change, ...]] = dataclasses.field(
        default_factory=dict)  # by ecosystem name

    def changes(self, name: str) -> tuple[Change, ...]:
        return self.by_ecosystem.get(name, ())

    @property
    def all_changes(self) -> tuple[Change, ...]:
        return tuple(change for changes in self.by_ecosystem.values() for change in changes)

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for change in self.all_changes if change.kind == kind)

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "status": self.status,
            "meta": [change.to_json() for change in self.meta],
            **{eco.lock_key: [change.to_json() for change in self.changes(eco.name)]
               for eco in ecosystems.registered()},
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
            for field, attribute in _meta_fields()
            if getattr(old.meta, attribute) != getattr(new.meta, attribute)
        )
    per_ecosystem = {
        eco.name: _diff_packages(
            eco,
            old.packages(eco.name) if old is not None else (),
            new.packages(eco.name) if new is not None else (),
        )
        for eco in ecosystems.registered()
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
    return InventoryDiff(either.meta.image, status, meta, per_ecosystem)


def _diff_packages(eco: Ecosystem, old: tuple[Package, ...],
                   new: tuple[Package, ...]) -> tuple[Change, ...]:
    before = {package.name: package for package in old}
    after = {package.name: package for package in new}
    changes = []
    for name in sorted(before.keys() | after.keys(), key=sort_key):
        was, now = before.get(name), after.get(name)
        if was is None and now is not None:
            changes.append(Change(eco.name, name, "added", None, now.version, "", now.origin))
        elif now is None and was is not None:
            changes.append(Change(eco.name, name, "removed", was.version, None, was.origin, ""))
        elif was is not None and now is not None and was != now:
            order = eco.contents.compare(was.version, now.version)
            kind: ChangeKind = "upgraded" if order < 0 else "downgraded" if order > 0 else "changed"
            changes.append(Change(eco.name, name, kind, was.version, now.version,
                                  was.origin, now.origin))
    return tuple(changes)


def diff_locks(old: Mapping[str, Inventory],
               new: Mapping[str, Inventory]) -> tuple[InventoryDiff, ...]:
    """Every image in either lock, by name, unchanged ones included (status "unchanged")."""
    return tuple(diff(old.get(image), new.get(image))
                 for image in sorted(old.keys() | new.keys()))
