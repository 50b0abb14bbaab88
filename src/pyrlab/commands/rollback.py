"""`pyrlab rollback IMAGE`: put back the image the last build replaced (NAME:previous)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab import proc
from pyrlab.commands._args import engine_from, project_from
from pyrlab.config.project import descendants
from pyrlab.contents.images import ImageSpec, image_inventory, image_spec, lock_file
from pyrlab.contents.lockfile import read_lock, update_lock
from pyrlab.engines.base import short_id
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import NotBuiltError
from pyrlab.imagebuild.buildlock import build_lock
from pyrlab.imagebuild.planner import RESERVED_TAGS, make_plan
from pyrlab.output import info

ROLLED_BACK = "rolled-back"  # the tag the replaced image keeps (one of RESERVED_TAGS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image to roll back, e.g. pylab")
    add_engine_argument(parser)


@dataclass(frozen=True)
class RollbackResult:
    image: str
    restored: str  # ID now under latest
    rolled_back: str  # ID of the image that was latest
    kept_as: str  # the tag the rolled-back image keeps
    tags: tuple[str, ...]  # the tags moved to the restored image
    lock: str  # the lock file, as shown
    rebuild: tuple[tuple[str, str], ...]  # (image, why) the next `pyrlab build` rebuilds

    def to_data(self) -> Any:
        return {"image": self.image, "restored": self.restored, "tags": list(self.tags),
                "rolled_back": self.rolled_back, "kept_as": self.kept_as, "lock": self.lock,
                "next_build": [{"image": n, "reason": r} for n, r in self.rebuild]}

    def to_text(self) -> str:
        lines = [(f"{self.image}: {', '.join(self.tags)} → {short_id(self.restored)} "
                 f"(was {short_id(self.rolled_back)}, now {self.kept_as})"),
                 f"{self.lock}: {self.image}'s section is what {short_id(self.restored)} holds"]
        for name, why in self.rebuild:
            lines.append(f"next `pyrlab build` rebuilds {name}: {why}")
        if not self.rebuild:
            lines.append("the next `pyrlab build` keeps it: nothing depends on the rolled-back "
                         "image")
        return "\n".join(lines)


def run(args: argparse.Namespace) -> RollbackResult:
    project = project_from(args)
    config = project.config
    engine = engine_from(args, config)
    name = image_spec(config, args.image).name
    latest_ref = config.image_ref(name)
    previous_ref = config.image_ref(name, "previous")
    kept_ref = config.image_ref(name, ROLLED_BACK)
    with build_lock(project.root, info):  # never while a build of the project runs
        previous = engine.image(previous_ref)
        if previous is None:
            raise NotBuiltError(f"{previous_ref} does not exist: there is nothing to roll back to",
                                hint="a build keeps the image it replaces as NAME:previous; "
                                "this image has not been rebuilt since, or was rolled back already")
        current = engine.image(latest_ref)
        # Read the restored image's inventory first: a broken one stops before any tag moves.
        inventory = image_inventory(engine, ImageSpec(name, previous.id))
        lock = lock_file(config)
        read_lock(lock.path, shown=lock.shown)  # a broken lock, too
        platform = engine.platform()  # the lock's sections it replaces (asked before any move)
        refs = [latest_ref]
        if config.base.tag not in RESERVED_TAGS:
            refs.append(config.image_ref(name, config.base.tag))
        proc.check_interrupted()
        with proc.uninterruptible():  # every tag and the lock move, or none (see tagging.py)
            if current is not None and current.id != previous.id:
                engine.tag(current.id, kept_ref)
            for ref in refs:
                engine.tag(previous.id, ref)
            # NAME:previous now names latest: untag it, so that a second rollback says so.
            engine.remove_image(previous_ref)
            # The engine's platform's section: a lock's other platforms keep theirs.
            update_lock(lock.path, {name: inventory}, platform=platform, shown=lock.shown)
    # What the next build does, as its planner sees it: children built on the rolled-back
    # image (their parent-id label) and, when the lists still ask for it, the image itself.
    plan = make_plan(project, engine, [name, *descendants(config, name)])
    affected = {name, *descendants(config, name)}
    rebuild = tuple((p.target.name, p.decision.reason) for p in plan.images
                    if p.decision.build and p.target.name in affected)
    return RollbackResult(name, previous.id, current.id if current else "", kept_ref, tuple(refs), lock.shown,
                          rebuild)
