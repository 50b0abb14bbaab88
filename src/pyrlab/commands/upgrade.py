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
from pyrlab.contents.images import lock_file
from pyrlab.contents.lockfile import read_lock
from pyrlab.contents.tables import diff_table
from pyrlab.engines.select import select_engine
from pyrlab.errors import BuildError
from pyrlab.gate import build_gate
from pyrlab.imagebuild.buildlock import build_lock
from pyrlab.imagebuild.executor import Built, build_plan, network_mode
from pyrlab.imagebuild.planner import make_plan
from pyrlab.imagebuild.progress import Progress


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


def run(args: argparse.Namespace) -> UpgradeResult | outdated.OutdatedResult:
    if args.dry_run:
        return outdated.find_outdated(args)
    project = project_from(args)
    config = project.config
    engine = select_engine(args.engine, config.engine,
                           config_source=config.source_of("engine")).engine
    lock = lock_file(config)
    before = read_lock(lock.path, shown=lock.shown)
    progress = Progress()
    try:
        network_host, why = network_mode(config.proxy, args.network_host)
        if network_host:
            progress.note(f"builds use host networking: {why}")
        fresh_base = not args.keep_base
        with build_lock(project.root, progress.note):  # one build of a project at a time
            plan = make_plan(project, engine, args.images or None, no_cache=True,
                             pull=fresh_base and not config.base.bootstrap,
                             rebootstrap=fresh_base)
            # No layer cache (the download caches are kept) and no pins: everything resolves.
            try:
                built = build_plan(project, engine, plan, progress, network_host=network_host,
                                   no_cache=True, jobs=args.jobs, pins="fresh",
                                   gate=build_gate(project, engine))
            except BuildError as exc:
                if plan.base.action != "pull" or plan.base.image is None or \
                        not exc.message.startswith(f"the base image {plan.base.ref} "):
                    raise
                # A base that is here but has no registry to come from (e.g. built elsewhere).
                raise BuildError(exc.message, hint="`pyrlab upgrade --keep-base` builds on it "
                                 f"as it is; {exc.hint}") from None
    finally:
        progress.close()
    after = read_lock(lock.path, shown=lock.shown)
    names = {o.name for o in built.outcomes}
    diffs = diff_locks({n: i for n, i in before.items() if n in names},
                       {n: i for n, i in after.items() if n in names})
    return UpgradeResult(built, diffs)
