"""`pyrlab lock`: rewrite pyrlab.lock from what the project's images hold now.

`build` keeps the lock up to date by itself; this is for a lock that was deleted, broken
by a merge, or written before the images were rebuilt some other way. It rewrites the
sections of the engine's platform and keeps the other platforms' (a lock of format version
2). `pyrlab lock --drop-platform P` is the one way to take a platform's sections out: it
needs no engine, and a lock left with one platform is written as version 1 again."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._args import config_from, engine_from, platform_argument
from pyrlab.contents.diff import diff_locks
from pyrlab.contents.images import LockFile, current_inventories, lock_file
from pyrlab.contents.lockfile import Lock, LockError, read_lock_all, write_lock
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import ConfigError, NotBuiltError, Problem
from pyrlab.platforms import Platform, host_platform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_engine_argument(parser)
    parser.add_argument("--force", action="store_true",
                        help="replace a pyrlab.lock that pyrlab did not write")
    parser.add_argument("--drop-platform", metavar="PLATFORM", type=platform_argument,
                        default=None, help="take PLATFORM's sections out of pyrlab.lock "
                        "(nothing else changes; no engine is asked)")


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


@dataclass(frozen=True)
class DropResult:
    shown: str
    dropped: Platform
    images: tuple[str, ...]  # the images whose section of it went
    left: tuple[Platform, ...]  # the platforms the lock still holds

    def to_data(self) -> Any:
        return {"path": self.shown, "dropped": self.dropped, "images": list(self.images),
                "platforms": list(self.left)}

    def to_text(self) -> str:
        return (f"{self.shown}: dropped {self.dropped} ({', '.join(self.images)}); it holds "
                f"{' and '.join(self.left)}")


def run(args: argparse.Namespace) -> LockResult | DropResult:
    config = config_from(args)
    lock = lock_file(config)
    if args.drop_platform is not None:
        return drop_platform(lock, args.drop_platform)
    engine = engine_from(args, config)
    platform = engine.platform()
    inventories, missing = current_inventories(engine, config)
    if missing:
        raise NotBuiltError(f"not built: {', '.join(missing)}; the lock lists every image",
                            hint="build them with `pyrlab build` (which updates the lock too)")
    try:
        whole = read_lock_all(lock.path, shown=lock.shown, host=platform)
        unreadable = False
    except LockError:
        whole, unreadable = Lock(), True  # rewriting it is the fix its error names
    before = whole.view(platform)
    write_lock(lock.path, whole.with_platform(platform, inventories), shown=lock.shown,
               force=args.force)
    differ = {d.image for d in diff_locks(before, inventories) if d.status != "unchanged"}
    changed = tuple(name for name in inventories if name in differ)
    return LockResult(lock.shown, tuple(inventories), changed, unreadable)


def drop_platform(lock: LockFile, platform: Platform) -> DropResult:
    """Take `platform`'s sections out of the lock; the others stay as they are."""
    whole = read_lock_all(lock.path, shown=lock.shown, host=host_platform())
    if platform not in whole.platforms:
        raise ConfigError(Problem(lock.shown, f"no section for {platform} "
                                  f"(it holds {whole.held()})"))
    left = whole.without(platform)
    if not left.platforms:
        raise ConfigError(Problem(lock.shown, f"{platform} is the only platform {lock.shown} "
                                  "holds: dropping it would leave no lock"),
                          hint=f"delete {lock.shown} instead; `pyrlab build` writes it again")
    write_lock(lock.path, left, shown=lock.shown)
    return DropResult(lock.shown, platform, tuple(sorted(whole.by_platform[platform])),
                      left.platforms)
