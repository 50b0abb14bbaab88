"""`pyrlab upgrade [IMAGE…]`: everything at its newest, in one command.

The base is made again (bootstrapped from the mirror, or pulled), every selected image and
its ancestors rebuild without the engine's layer cache (the download caches are kept) and
without pyrlab.lock's versions, the lock is updated, and what changed is shown.
`--dry-run` builds nothing: it is `pyrlab outdated`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from pyrlab.commands import outdated
from pyrlab.commands._common import add_build_options, project_from
from pyrlab.contents.diff import InventoryDiff, diff_locks
from pyrlab.contents.tables import diff_table
from pyrlab.engines.select import select_engine
from pyrlab.errors import BuildError
from pyrlab.imagebuild.executor import Built
from pyrlab.imagebuild.orchestration import (
    BuildOptions,
    run_build,
)


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
class UpgradeResult:
    built: Built
    diffs: tuple[InventoryDiff, ...]

    def to_data(self) -> Any:
        return {"base": {"ref": self.built.base.ref, "action": self.built.base.action,
                         "id": self.built.base.image_id},
                "images": [{"name": o.name, "ref": o.ref, "id": o.image_id,
                            "seconds": round(o.seconds, 1)} for o in self.built.outcomes],
                "lock": {"path": self.built.lock.shown, "changed": self.built.lock.changed},
                "changes": [d.to_json() for d in self.diffs]}

    def to_text(self) -> str:
        lock = self.built.lock
        lines = [f"base: {self.built.base.action} {self.built.base.ref}",
                 "upgraded: " + ", ".join(f"{o.name} ({o.seconds:.0f}s)"
                                          for o in self.built.outcomes)]
        if any(d.status != "unchanged" for d in self.diffs):
            lines.append(diff_table(self.diffs, stream=sys.stdout).rstrip("\n"))
        else:
            lines.append("No package changed.")
        lines.append(f"{lock.shown}: {'updated' if lock.changed else 'unchanged'}")
        return "\n".join(lines)


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
    names = {o.name for o in done.built.outcomes}
    diffs = diff_locks({n: i for n, i in done.lock.items() if n in names},
                       {n: i for n, i in done.lock_after.items() if n in names})
    return UpgradeResult(done.built, diffs)
