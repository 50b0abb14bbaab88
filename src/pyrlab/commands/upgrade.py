"""`pyrlab upgrade [IMAGE…]`: everything at its newest, in one command.

The base is made again (bootstrapped from the mirror, or pulled), every selected image and
its ancestors rebuild without the engine's layer cache (the download caches are kept) and
without pyrlab.lock's versions, the lock is updated, and what changed is shown.
`--dry-run` builds nothing: it is `pyrlab outdated`.

For several platforms (as `build` chooses them) the engine's own platform resolves first,
image by image, and the others prefer its new Python versions (groups.py): they agree
wherever the lists and the wheels allow it, and where one could not take a version, what
it took instead is recorded in its sections and shown apart."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyrlab import ecosystems
from pyrlab.commands import outdated
from pyrlab.commands._common import add_build_options, project_from
from pyrlab.contents.diff import InventoryDiff, diff, diff_locks
from pyrlab.contents.model import Inventory
from pyrlab.contents.tables import diff_table
from pyrlab.engines.select import select_engine
from pyrlab.errors import BuildError
from pyrlab.imagebuild.executor import Built
from pyrlab.imagebuild.orchestration import (
    BuildOptions,
    run_build,
)
from pyrlab.platforms import NATIVE, Platform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="images to upgrade, with their ancestors (default: all)")
    parser.add_argument("--dry-run", action="store_true",
                        help="build nothing: show what would change (as `pyrlab outdated`)")
    parser.add_argument("--keep-base", action="store_true",
                        help="build on the base image as it is instead of bootstrapping or "
                        "pulling it again (a base that has no registry to come from)")
    add_build_options(parser)


@dataclass(frozen=True)
class OtherPlatform:
    """An upgrade for several platforms: what changed on one of the others, and where its
    new versions are not the engine's own platform's (Python: no wheel for it, a marker)."""

    platform: Platform
    diffs: tuple[InventoryDiff, ...]
    apart: tuple[InventoryDiff, ...]  # from the engine's own platform's image to this one's
    host: Platform

    def to_data(self) -> Any:
        return {"platform": self.platform, "changes": [d.to_json() for d in self.diffs],
                "apart": [d.to_json() for d in self.apart]}

    def to_text(self) -> str:
        lines = ["", f"{self.platform}:", _changes(self.diffs)]
        if self.apart:
            lines.append(f"\n{self.platform}'s versions that are not {self.host}'s (old: "
                         f"{self.host}'s, new: {self.platform}'s):")
            lines.append(diff_table(self.apart, stream=sys.stdout).rstrip("\n"))
        return "\n".join(lines)


@dataclass(frozen=True)
class UpgradeResult:
    built: Built
    diffs: tuple[InventoryDiff, ...]
    # Several platforms: the first's name (it heads `diffs`), and the others' changes.
    platform: Platform = NATIVE
    others: tuple[OtherPlatform, ...] = ()

    def to_data(self) -> Any:
        data = {"base": {"ref": self.built.base.ref, "action": self.built.base.action,
                         "id": self.built.base.image_id},
                "images": [{"name": o.name, "ref": o.ref, "id": o.image_id,
                            "seconds": round(o.seconds, 1),
                            **({"platform": o.platform or None} if self.others else {})}
                           for o in self.built.outcomes],
                "lock": {"path": self.built.lock.shown, "changed": self.built.lock.changed},
                "changes": [d.to_json() for d in self.diffs]}
        if self.others:
            data["platforms"] = [other.to_data() for other in self.others]
        return data

    def to_text(self) -> str:
        lock = self.built.lock
        lines = [f"base: {self.built.base.action} {self.built.base.ref}",
                 *(f"base ({b.platform}): {b.action} {b.ref}" for b in self.built.other_bases),
                 "upgraded: " + ", ".join(f"{o.shown} ({o.seconds:.0f}s)"
                                          for o in self.built.outcomes)]
        if self.others:
            lines.append(f"{self.platform}:")
        lines.append(_changes(self.diffs))
        lines += [other.to_text() for other in self.others]
        lines.append(f"{lock.shown}: {'updated' if lock.changed else 'unchanged'}")
        return "\n".join(lines)


def _changes(diffs: tuple[InventoryDiff, ...]) -> str:
    if any(d.status != "unchanged" for d in diffs):
        return diff_table(diffs, stream=sys.stdout).rstrip("\n")
    return "No package changed."


def apart(host: Mapping[str, Inventory], other: Mapping[str, Inventory],
          names: Iterable[str]) -> tuple[InventoryDiff, ...]:
    """Per image of `names` in both, the versions of the ecosystems that prefer (Python)
    in which `other` (another platform's sections) differs from `host` (the engine's own
    platform's): what an upgrade could not make agree."""
    prefers = {eco.name for eco in ecosystems.registered() if eco.pins.prefers}
    found = []
    for name in sorted(names):
        if name not in host or name not in other:
            continue
        kept = {eco: changes for eco, changes in diff(host[name], other[name]).by_ecosystem.items()
                if eco in prefers and changes}
        if kept:
            found.append(InventoryDiff(name, "changed", (), kept))
    return tuple(found)


def run(args: argparse.Namespace,
        ) -> UpgradeResult | outdated.OutdatedResult | outdated.PlatformsOutdated:
    if args.dry_run:  # every platform the upgrade would build (its --platform too)
        return outdated.find_outdated(args)
    project = project_from(args)
    config = project.config
    engine = select_engine(args.engine, config.engine,
                           config_source=config.source_of("engine")).engine
    fresh_base = not args.keep_base
    # No layer cache (the download caches are kept) and no pins: everything resolves.
    options = BuildOptions(names=args.images or None, no_cache=True,
                           pull=fresh_base and not config.base.bootstrap,
                           rebootstrap=fresh_base, pins="fresh", jobs=args.jobs,
                           network_host=args.network_host, platforms=args.platforms)
    try:
        done = run_build(project, engine, options)
    except BuildError as exc:
        base = config.base.image
        if not fresh_base or config.base.bootstrap or engine.image(base) is None or \
                not exc.message.startswith(f"the base image {base} "):
            raise
        # A base that is here but has no registry to come from (e.g. built elsewhere).
        raise BuildError(exc.message, hint="`pyrlab upgrade --keep-base` builds on it "
                         f"as it is; {exc.hint}") from None
    assert done.built is not None
    built = done.built
    first = done.plans[0].platform if done.plans else NATIVE
    names = {o.name for o in built.outcomes if o.platform == first}
    diffs = diff_locks({n: i for n, i in done.lock.items() if n in names},
                       {n: i for n, i in done.lock_after.items() if n in names})
    if not built.lock.others:
        return UpgradeResult(built, diffs)
    # Several platforms: each one's changes, and where the others' new versions are not
    # the engine's own's (its image resolved first: the others preferred its versions).
    host = engine.platform()
    others = []
    for platform, before, after in built.lock.others:
        mine = {o.name for o in built.outcomes if o.platform == platform}
        others.append(OtherPlatform(
            platform or host,
            diff_locks({n: i for n, i in before.items() if n in mine},
                       {n: i for n, i in after.items() if n in mine}),
            apart(done.lock_after, after, mine) if not first else (), host))
    return UpgradeResult(built, diffs, first or host, tuple(others))
