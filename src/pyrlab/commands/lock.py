"""`pyrlab lock`: rewrite pyrlab.lock from what the project's images hold now.

`build` keeps the lock up to date by itself; this is for a lock that was deleted, broken
by a merge, or written before the images were rebuilt some other way."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._args import config_from, engine_from
from pyrlab.contents.diff import diff_locks
from pyrlab.contents.images import current_inventories, lock_file
from pyrlab.contents.lockfile import LockError, read_lock, write_lock
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import NotBuiltError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_engine_argument(parser)
    parser.add_argument("--force", action="store_true",
                        help="replace a pyrlab.lock that pyrlab did not write")


@dataclass(frozen=True)
class LockResult:
    shown: str
    images: tuple[str, ...]  # the images the lock now lists
    changed: tuple[str, ...]  # those whose section is new or says something else
    replaced_unreadable: bool  # the old file could not be read (it was replaced whole)

    def to_data(self) -> Any:
        return {"path": self.shown, "images": list(self.images), "changed": list(self.changed),
                "replaced_unreadable": self.replaced_unreadable}

    def to_text(self) -> str:
        if self.replaced_unreadable:
            what = "replaced the unreadable file"
        elif self.changed:
            what = f"changed: {', '.join(self.changed)}"
        else:
            what = "unchanged"
        return f"{self.shown}: {', '.join(self.images)} ({what})"


def run(args: argparse.Namespace) -> LockResult:
    config = config_from(args)
    engine = engine_from(args, config)
    lock = lock_file(config)
    inventories, missing = current_inventories(engine, config)
    if missing:
        raise NotBuiltError(f"not built: {', '.join(missing)}; the lock lists every image",
                            hint="build them with `pyrlab build` (which updates the lock too)")
    try:
        before = read_lock(lock.path, shown=lock.shown)
        unreadable = False
    except LockError:
        before, unreadable = {}, True  # rewriting it is the fix its error names
    write_lock(lock.path, inventories, shown=lock.shown, force=args.force)
    differ = {d.image for d in diff_locks(before, inventories) if d.status != "unchanged"}
    changed = tuple(name for name in inventories if name in differ)
    return LockResult(lock.shown, tuple(inventories), changed, unreadable)
