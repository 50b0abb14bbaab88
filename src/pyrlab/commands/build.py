"""`pyrlab build [IMAGE…]`: build the images and their ancestors whose inputs changed."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from typing import Any

from pyrlab.commands._common import add_build_options, project_from
from pyrlab.engines.base import short_id
from pyrlab.engines.select import Selection, select_engine
from pyrlab.imagebuild.executor import Built
from pyrlab.imagebuild.orchestration import BuildOptions, run_build
from pyrlab.imagebuild.planner import Plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="images to build, with their ancestors (default: all)")
    parser.add_argument("--no-cache", action="store_true",
                        help="rebuild every selected image and its ancestors without the "
                        "engine's layer cache (download caches are kept)")
    parser.add_argument("--pull", action="store_true",
                        help="pull the base image again first (registry bases only); "
                        "images rebuild when it changed")
    parser.add_argument("--no-test", action="store_true",
                        help="tag each image without its self-test (see `pyrlab test`); by "
                        "default an image whose listed modules or kernels fail is kept as "
                        "NAME:failed and `latest` stays on the last good one")
    parser.add_argument("--locked", action="store_true",
                        help="install exactly what pyrlab.lock names (Python, Debian and R "
                        "versions); a list entry the lock cannot satisfy, or a locked "
                        "version the sources no longer offer, is an error")
    parser.add_argument("--cache-from", action="append", default=[], metavar="REF",
                        help="reuse the layers of a registry image a teammate or CI pushed "
                        "(`pyrlab push`): REGISTRY/NAMESPACE/IMAGE:TAG, or a prefix ending "
                        "in '/' for every image of the graph; repeatable; adds to "
                        "[build] cache_from in pyrlab.toml")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be built and why, build nothing")
    add_build_options(parser)


@dataclass(frozen=True)
class BuildResult:
    selection: Selection
    network_host: bool
    plan: Plan
    built: Built | None  # None for a dry run
    # A plan per platform (the engine's own first), where the build is for several.
    plans: tuple[Plan, ...] = ()

    @property
    def all_plans(self) -> tuple[Plan, ...]:
        return self.plans or (self.plan,)

    def to_data(self) -> Any:
        data: dict[str, Any] = {
            "engine": self.selection.engine.describe(),
            "engine_source": self.selection.source,
            "network_host": self.network_host,
            "dry_run": self.built is None,
        }
        if self.built is None:
            base = self.plan.base
            data["base"] = {"ref": base.ref, "action": base.action, "reason": base.reason,
                            "id": base.image.id if base.image else None}
            data["images"] = [
                {"name": p.target.name, "ref": p.target.ref,
                 "action": "build" if p.decision.build else "skip",
                 "reason": p.decision.reason, "input_hash": p.target.context.input_hash,
                 "id": p.current.id if p.current else None,
                 "platform": plan.platform or None}
                for plan in self.all_plans for p in plan.images
            ]
            if len(self.all_plans) > 1:
                data["bases"] = [{"platform": plan.platform or None, "ref": plan.base.ref,
                                  "action": plan.base.action, "reason": plan.base.reason}
                                 for plan in self.all_plans]
        else:
            used, lock = self.built.base, self.built.lock
            data["base"] = {"ref": used.ref, "action": used.action, "id": used.image_id,
                            "log": str(used.log) if used.log else None}
            if self.built.other_bases:
                data["bases"] = [{"platform": b.platform or None, "ref": b.ref,
                                  "action": b.action, "id": b.image_id}
                                 for b in (used, *self.built.other_bases)]
            data["images"] = [
                {"name": o.name, "ref": o.ref, "action": o.action, "reason": o.reason,
                 "id": o.image_id or None, "tags": list(o.tags),
                 "seconds": round(o.seconds, 1), "log": str(o.log) if o.log else None,
                 "test": o.test.to_data() if o.test is not None else None,
                 "held_back": [asdict(h) for h in o.held_back],
                 "platform": o.platform or None}
                for o in self.built.outcomes
            ]
            data["seconds"] = {"build": round(self.build_seconds, 1),
                               "self_test": round(self.test_seconds, 1)}
            data["lock"] = {"path": lock.shown, "recorded": list(lock.recorded),
                            "changed": lock.changed}
        return data

    @property
    def build_seconds(self) -> float:
        """The images' build time, their self-tests included."""
        return sum(o.seconds for o in self.built.outcomes) if self.built else 0.0

    @property
    def test_seconds(self) -> float:
        """The self-test gate's share of build_seconds."""
        if self.built is None:
            return 0.0
        return sum(o.test.seconds for o in self.built.outcomes if o.test is not None)

    def to_text(self) -> str:
        def named(name: str, platform: str) -> str:
            return f"{name} ({platform})" if platform else name

        width = max([len(named(p.target.name, plan.platform))
                     for plan in self.all_plans for p in plan.images] + [4])
        if self.built is None:
            lines = []
            for plan in self.all_plans:
                base = plan.base
                lines.append(f"{'base':<{width}}  {base.action:<9} {base.ref}: {base.reason}")
                for p in plan.images:
                    action = "build" if p.decision.build else "skip"
                    lines.append(f"{named(p.target.name, plan.platform):<{width}}  "
                                 f"{action:<9} {p.decision.reason}")
            return "\n".join(lines)
        built = self.built
        lines = [(f"{'base':<{width}}  {base.action:<9} {base.ref} "
                  f"({short_id(base.image_id)})")
                 for base in (built.base, *built.other_bases)]
        for o in built.outcomes:
            detail = o.reason
            if o.action == "built":
                tested = (f" (self-test {o.test.seconds:.1f}s, {len(o.test.checks)} checks)"
                          if o.test is not None else " (not tested)")
                detail += f"; {o.seconds:.0f}s{tested} → {', '.join(o.tags)}"
            lines.append(f"{o.shown:<{width}}  {o.action:<9} {detail}")
            if o.action == "built" and o.test is not None:
                # What the gate let through but the user should know: known failures,
                # warnings, marks no longer needed.
                lines += [f"{'':<{width}}    {c.line()}" for c in o.test.checks
                          if c.verdict != "ok"]
            lines += [f"{'':<{width}}  {h.describe()}" for h in o.held_back]
        if any(o.action == "built" for o in built.outcomes):
            lines.append(f"build {self.build_seconds:.0f}s, of which self-tests "
                         f"{self.test_seconds:.1f}s")
        lock = built.lock
        lines.append(f"{lock.shown}: " + (f"updated ({', '.join(lock.recorded)} recorded)"
                                          if lock.changed else "unchanged"))
        return "\n".join(lines)


def run(args: argparse.Namespace) -> BuildResult:
    project = project_from(args)
    config = project.config
    selection = select_engine(args.engine, config.engine,
                              config_source=config.source_of("engine"))
    done = run_build(project, selection.engine, BuildOptions(
        names=args.images or None, no_cache=args.no_cache, pull=args.pull,
        pins="exact" if args.locked else "prefer", test=not args.no_test, jobs=args.jobs,
        network_host=args.network_host, cache_from=args.cache_from, dry_run=args.dry_run,
        announce=(selection.describe(),), platforms=args.platforms))
    return BuildResult(selection, done.network_host, done.plan, done.built,
                       done.plans if len(done.plans) > 1 else ())
