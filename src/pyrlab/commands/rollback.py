"""`pyrlab rollback IMAGE`: put back the image the last build replaced (NAME:previous).

For a project built for several platforms, every platform that has a `previous` moves back
together (one uninterruptible step, one write of pyrlab.lock); `--platform P` moves P's
only. Builds promote an image's platforms together, so their `previous` images come from
one build, unless a build for some platforms only (`build --platform P`) came between:
that is warned of (see `different_builds`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab import proc
from pyrlab.commands._args import add_platform, engine_from, project_from
from pyrlab.config.project import Project, descendants
from pyrlab.contents.images import LABEL_INPUTS, ImageSpec, image_inventory, image_spec, lock_file
from pyrlab.contents.lockfile import read_lock_all, write_lock
from pyrlab.dockerfile.render import RenderOptions
from pyrlab.engines.base import Engine, ImageInfo, short_id
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import NotBuiltError
from pyrlab.imagebuild.buildlock import build_lock
from pyrlab.imagebuild.orchestration import recorded_platforms, target_platforms
from pyrlab.imagebuild.planner import (
    RESERVED_TAGS,
    Target,
    decode_parts,
    make_plan,
    on_engine,
    part_names,
    targets,
)
from pyrlab.output import info
from pyrlab.platforms import NATIVE, Platform

ROLLED_BACK = "rolled-back"  # the tag the replaced image keeps (one of RESERVED_TAGS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image to roll back, e.g. pylab")
    add_platform(parser, many=False,
                 help="roll back only PLATFORM's image (linux/amd64, linux/arm64); default: "
                 "every platform the project builds for that has NAME:previous, together")
    add_engine_argument(parser)


@dataclass(frozen=True)
class Moved:
    """One platform's image moved back."""

    platform: Platform  # concrete
    restored: str  # ID now under latest
    rolled_back: str  # ID of the image that was latest ("" when there was none)
    kept_as: str  # the tag the rolled-back image keeps
    tags: tuple[str, ...]  # the tags moved to the restored image

    def to_data(self) -> dict[str, Any]:
        return {"platform": self.platform, "restored": self.restored,
                "rolled_back": self.rolled_back, "kept_as": self.kept_as,
                "tags": list(self.tags)}


@dataclass(frozen=True)
class RollbackResult:
    image: str
    moved: tuple[Moved, ...]  # the engine's own platform first
    lock: str  # the lock file, as shown
    # (image, platform, why) the next `pyrlab build` rebuilds; platform "" for the only one
    rebuild: tuple[tuple[str, Platform, str], ...]
    warnings: tuple[str, ...] = ()
    named: bool = False  # the text names each platform (another than the engine's moved)

    def to_data(self) -> Any:
        first = self.moved[0]
        return {"image": self.image, "restored": first.restored, "tags": list(first.tags),
                "rolled_back": first.rolled_back, "kept_as": first.kept_as,
                "platforms": [m.to_data() for m in self.moved], "lock": self.lock,
                "next_build": [{"image": n, "platform": p or None, "reason": r}
                               for n, p, r in self.rebuild],
                "warnings": list(self.warnings)}

    def to_text(self) -> str:
        lines = []
        for m in self.moved:
            where = f" ({m.platform})" if self.named else ""
            lines.append(f"{self.image}{where}: {', '.join(m.tags)} → {short_id(m.restored)} "
                         f"(was {short_id(m.rolled_back)}, now {m.kept_as})")
        if self.named:
            held = " and ".join(m.platform for m in self.moved)
            lines.append(f"{self.lock}: {self.image}'s sections for {held} are what the "
                         "restored images hold")
        else:
            lines.append(f"{self.lock}: {self.image}'s section is what "
                         f"{short_id(self.moved[0].restored)} holds")
        for name, platform, why in self.rebuild:
            where = f" ({platform})" if self.named else ""
            lines.append(f"next `pyrlab build` rebuilds {name}{where}: {why}")
        if not self.rebuild:
            lines.append("the next `pyrlab build` keeps it: nothing depends on the rolled-back "
                         "image")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Platform:
    """One platform's names and images, read before anything moves."""

    platform: Platform  # concrete
    naming: Platform  # NATIVE for the engine's own: its names are today's
    previous_ref: str
    latest_ref: str
    kept_ref: str
    refs: tuple[str, ...]  # what moves to `previous`: latest, the base tag
    previous: ImageInfo | None
    current: ImageInfo | None
    rendered: list[Target]  # the image and its descendants (ancestors first), as now


def run(args: argparse.Namespace) -> RollbackResult:
    project = project_from(args)
    config = project.config
    engine = engine_from(args, config)
    name = image_spec(config, args.image).name
    affected = [name, *descendants(config, name)]
    host = engine.platform()
    with build_lock(project.root, info):  # never while a build of the project runs
        lock = lock_file(config)
        whole = read_lock_all(lock.path, shown=lock.shown, host=host)  # a broken lock stops
        if args.platform:
            chosen: tuple[Platform, ...] = (args.platform,)
        else:  # the platforms a build is for, as build and push see them
            chosen = tuple(dict.fromkeys(
                host if p == NATIVE else p for p in target_platforms(
                    config, recorded=recorded_platforms(whole)).platforms))
        chosen = tuple(sorted(chosen, key=lambda p: p != host))
        sides = _read_platforms(project, engine, name, affected, chosen, host)
        moving = [s for s in sides if s.previous is not None]
        if not moving:
            refs = " and ".join(s.previous_ref for s in sides)
            verb = "does" if len(sides) == 1 else "do"
            raise NotBuiltError(f"{refs} {verb} not exist: there is nothing to roll back to",
                                hint="a build keeps the image it replaces as NAME:previous; "
                                "this image has not been rebuilt since, or was rolled back "
                                "already")
        warnings = different_builds(name, moving, sides)
        # Read the restored images' inventories first: a broken one stops before any move.
        restored = {s.platform: image_inventory(engine, ImageSpec(name, s.previous.id))
                    for s in moving if s.previous is not None}
        after = whole
        for s in moving:  # every platform's section, written once
            after = after.with_platform(
                s.platform, {**after.view(s.platform), name: restored[s.platform]})
        moved = []
        proc.check_interrupted()
        with proc.uninterruptible():  # every tag and the lock move, or none (see tagging.py)
            for s in moving:
                assert s.previous is not None
                if s.current is not None and s.current.id != s.previous.id:
                    engine.tag(s.current.id, s.kept_ref)
                for ref in s.refs:
                    engine.tag(s.previous.id, ref)
                # NAME:previous now names latest: untag it, so that a second rollback says so.
                engine.remove_image(s.previous_ref)
                moved.append(Moved(s.platform, s.previous.id,
                                   s.current.id if s.current else "", s.kept_ref, s.refs))
            # Only the moved platforms' sections: the lock's others keep theirs.
            write_lock(lock.path, after, shown=lock.shown)
    # What the next build does, as its planner sees it, per platform moved: children built
    # on the rolled-back image (their parent-id label) and, when the lists still ask for
    # it, the image itself.
    rebuild = []
    for s in moving:
        plan = make_plan(project, engine, affected, rendered=s.rendered, platform=s.naming,
                         host=host if s.naming else NATIVE)
        rebuild += [(p.target.name, s.platform, p.decision.reason) for p in plan.images
                    if p.decision.build and p.target.name in affected]
    named = len(moved) > 1 or any(s.naming for s in moving)
    return RollbackResult(name, tuple(moved), lock.shown, tuple(rebuild), tuple(warnings),
                          named)


def _read_platforms(project: Project, engine: Engine, name: str, affected: list[str],
                    chosen: tuple[Platform, ...], host: Platform) -> list[_Platform]:
    config = project.config
    sides = []
    for platform in chosen:
        naming = NATIVE if platform == host else platform
        refs = [config.image_ref(name, "latest", naming, host)]
        if config.base.tag not in RESERVED_TAGS:
            refs.append(config.image_ref(name, config.base.tag, naming, host))
        previous_ref = config.image_ref(name, "previous", naming, host)
        known = engine.images_by_ref([previous_ref, refs[0]])
        rendered = targets(on_engine(project, engine, naming), affected,
                           RenderOptions.for_builder(engine), platform=naming,
                           host=host if naming else NATIVE)
        sides.append(_Platform(platform, naming, previous_ref, refs[0],
                               config.image_ref(name, ROLLED_BACK, naming, host), tuple(refs),
                               known[previous_ref], known[refs[0]], rendered))
    return sides


def different_builds(name: str, moving: list[_Platform], sides: list[_Platform]) -> list[str]:
    """Why the platforms' images after the rollback may not come from one build: a platform
    with a `latest` but no `previous` (it stays), or `previous` images whose inputs differ.

    Images carry no mark of the build that made them (a label would change the images of
    the engine's own platform), so the inputs are compared: each image's input digest per
    part (its org.pyrlab.inputs label), leaving out the parts that differ between the
    platforms in today's rendering (the Dockerfile, which names each platform's parent and
    caches, and lists with lines limited to some platforms). So two builds whose inputs
    differed only there, or not at all (a `--no-cache` or `--pull` rebuild), are not told
    apart; `previous` images of builds with equal inputs hold the same lists anyway."""
    warnings = []
    stays = [s for s in sides if s.previous is None and s.current is not None]
    if stays and moving:
        held = " and ".join(s.platform for s in stays)
        warnings.append(
            f"{held} has no {name}:previous, so its {name}:latest stays: {name}'s platforms "
            f"now hold images of different builds (rebuild them together with `pyrlab build "
            f"{name}`)")
    if len(moving) < 2:
        return warnings
    own = {s.platform: next(t for t in s.rendered if t.name == name).parts for s in moving}
    first = own[moving[0].platform]
    per_platform = {key for parts in own.values() for key in set(parts) | set(first)
                    if parts.get(key) != first.get(key)}
    inputs = {s.platform: decode_parts(s.previous.labels.get(LABEL_INPUTS, ""))
              for s in moving if s.previous is not None}
    if not all(inputs.values()):
        return warnings  # built before pyrlab recorded its inputs: nothing to compare
    base = inputs[moving[0].platform]
    differ = sorted({key for parts in inputs.values() for key in set(parts) | set(base)
                     if key not in per_platform and parts.get(key) != base.get(key)})
    if differ:
        names = part_names()
        held = " and ".join(s.platform for s in moving)
        warnings.append(
            f"{name}:previous of {held} do not come from one build (their "
            f"{', '.join(names.get(k, k) for k in differ)} differ; a build for some "
            f"platforms only came between): the restored images were built from different "
            f"inputs; roll back one platform with --platform, or rebuild them together "
            f"with `pyrlab build {name}`")
    return warnings
