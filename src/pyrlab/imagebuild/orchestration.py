"""One build, as `build`, `upgrade` and `up` run it: the order of its steps, written once.

1. host networking or not (network_mode), said when it is on;
2. the project's build lock (one build of a project at a time; a run that waited plans
   afresh and sees what the other one built; a dry run takes none);
3. pyrlab.lock, read once for the whole build, under the build lock: with `--locked`
   first (every list entry is checked against it, the base image it names is taken, and
   the planner is told which up-to-date image does not hold its section), else once the
   plan has something to build. The executor pins the install steps with it, compares
   each image it builds with its section (`--locked`), and writes it back with what the
   new images hold;
4. the plan (planner.make_plan), and with `dry_run` nothing more;
5. the build (executor.build_plan), each image through the self-test gate before its tags
   move.

Before all of it, the platforms the build is for (target_platforms). When neither
--platform nor [build] platforms says, pyrlab.lock does (a version 2 lock records its
platforms), so it is read first then. Each platform is a lane with its own plan (the
engine's own first), and steps 3 and 4 happen per lane with that platform's sections of
the lock (see lockfile.Lock): with --locked, its entries are checked against them, its
registry base is the digest they name (pulled for the platform), and Debian's preflight
asks apt in its base (under emulation for another platform). Several lanes are built by
groups.build_lanes; what the build writes replaces only its platforms' sections.

The commands only turn their options into `BuildOptions` and a `BuildRun` into output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from pyrlab.config.model import Config
from pyrlab.config.project import Project
from pyrlab.config.validators import cache_source_problem
from pyrlab.contents.images import ImageSpec, LockFile, image_inventory, lock_file
from pyrlab.contents.lockfile import Lock, LockError, read_lock_all
from pyrlab.contents.model import Inventory
from pyrlab.ecosystems.base import PinMode
from pyrlab.engines import emulation
from pyrlab.engines.base import Engine, ImageInfo, short_id
from pyrlab.errors import UsageError
from pyrlab.imagebuild.buildlock import build_lock
from pyrlab.imagebuild.executor import Built, Gate, build_plan, network_mode, use_locked_base
from pyrlab.imagebuild.groups import LaneSpec, build_lanes
from pyrlab.imagebuild.offered import preflight_check
from pyrlab.imagebuild.pins import check_locked, differs_from_lock, locked_base_ref
from pyrlab.imagebuild.planner import Plan, Target, make_plan, on_engine
from pyrlab.imagebuild.progress import Progress
from pyrlab.platforms import ALL, NATIVE, Platform

if TYPE_CHECKING:
    from pyrlab.gate import ImageTest


@dataclass(frozen=True)
class BuildOptions:
    names: Sequence[str] | None = None  # the images to build, with their ancestors (None: all)
    no_cache: bool = False  # without the engine's layer cache (download caches are kept)
    pull: bool = False  # pull a registry base again first
    rebootstrap: bool = False  # make a bootstrapped base again (`upgrade`)
    # How the install steps use pyrlab.lock (see pins.py): "exact" is `build --locked`.
    pins: PinMode = "prefer"
    test: bool = True  # each image built passes the self-test gate before its tags move
    jobs: int = 2
    network_host: bool = False  # --network-host
    cache_from: Sequence[str] = ()  # --cache-from
    dry_run: bool = False  # plan only: no build lock, no base pulled, nothing built
    # `up`: when everything is up to date nothing is said (not even host networking).
    quiet_when_current: bool = False
    announce: Sequence[str] = ()  # lines said first (which engine builds)
    # --platform (repeatable; `all`: every one of [build] platforms), as platforms.parse
    # writes them; () lets target_platforms decide, (NATIVE,) is the engine's own (`up`).
    platforms: Sequence[Platform] = ()


@dataclass(frozen=True)
class BuildRun:
    network_host: bool
    plan: Plan
    built: Built | None  # None: a dry run, or nothing to do (quiet_when_current)
    lock: dict[str, Inventory]  # pyrlab.lock as it was before the build
    # A plan per platform, the engine's own first (`plan` is the first); one for most builds.
    plans: tuple[Plan, ...] = ()

    @property
    def lock_after(self) -> dict[str, Inventory]:
        return self.built.lock.sections if self.built is not None else self.lock


def run_build(project: Project, engine: Engine, options: BuildOptions, *,
              rendered: list[Target] | None = None) -> BuildRun:
    """Plan and build as the module docstring says; BuildError (or ConfigError, for
    `--locked`'s check) on failure, when no tag moved and pyrlab.lock is as it was.
    `rendered`: the targets' contexts, when the caller rendered them already (see
    planner.make_plan), for a build of one platform."""
    config = project.config
    chosen = target_platforms(config, options.platforms)
    check_emulation(engine, chosen.platforms)
    locked = options.pins == "exact"
    progress = Progress()
    try:
        for text in options.announce:
            progress.note(text)
        network_host, why = network_mode(config.proxy, options.network_host)

        def say_networking() -> None:
            if network_host:
                progress.note(f"builds use host networking: {why}")

        if not options.quiet_when_current:
            say_networking()
        with nullcontext() if options.dry_run else build_lock(project.root, progress.note):
            lock = lock_file(config)
            # Read once, for the whole build: first thing with --locked (its check) or
            # when the lock is to say which platforms (a lock that cannot be read stops
            # the build only where its sections are needed), else once the plan says
            # there is something to build.
            whole: Lock | None = None
            unread: LockError | None = None
            if locked or chosen.source == "default":
                try:
                    whole = read_lock_all(lock.path, shown=lock.shown, host=engine.platform())
                except LockError as exc:
                    if locked:
                        raise
                    unread = exc
            platforms = build_platforms(config, engine, options.platforms, whole, lock.shown,
                                        progress.note, adds=not (locked or options.dry_run))
            for problem in filter(None, map(cache_source_problem, options.cache_from)):
                raise UsageError(f"--cache-from: {problem}")
            lanes = [_plan_lane(project, engine, options, platform, whole, lock, progress,
                                network_host,
                                rendered=rendered if len(platforms) == 1 else None)
                     for platform in platforms]
            plans = tuple(lane.plan for lane in lanes)
            first = lanes[0]
            if options.dry_run or (options.quiet_when_current
                                   and all(nothing_to_do(plan) for plan in plans)):
                return BuildRun(network_host, first.plan, None, first.lock or {}, plans)
            if options.quiet_when_current:
                say_networking()
            if unread is not None:  # a broken lock stops the build before it starts
                raise unread
            if whole is None:
                whole = read_lock_all(lock.path, shown=lock.shown, host=engine.platform())
            gates = [self_test_gate(lane.project, engine, lane.name, lane.host)
                     if options.test else None for lane in lanes]
            if len(lanes) == 1:
                built = build_plan(
                    first.project, engine, first.plan, progress,
                    lock=first.sections(whole), network_host=network_host,
                    no_cache=options.no_cache, jobs=options.jobs, gate=gates[0],
                    pins=options.pins, before_build=first.before_build,
                    cache_from=options.cache_from, whole_lock=whole, platform=first.platform)
            else:
                built = build_lanes(engine, [
                    LaneSpec(lane.platform, lane.project, lane.plan, lane.sections(whole), gate,
                             lane.before_build)
                    for lane, gate in zip(lanes, gates, strict=True)], progress,
                    whole=whole, network_host=network_host, no_cache=options.no_cache,
                    jobs=options.jobs, pins=options.pins, cache_from=options.cache_from)
    finally:
        progress.close()
    return BuildRun(network_host, first.plan, built, first.sections(whole), plans)


@dataclass(frozen=True)
class _Lane:
    """One platform's part of a build, planned."""

    platform: Platform  # concrete
    host: Platform  # the engine's own
    project: Project  # its lists (Project.for_platform)
    plan: Plan
    lock: dict[str, Inventory] | None  # its sections, where they were read (--locked)
    before_build: Callable[[str], None] | None

    @property
    def name(self) -> Platform:
        """What names its images: NATIVE for the engine's own platform."""
        return NATIVE if self.platform == self.host else self.platform

    def sections(self, whole: Lock | None) -> dict[str, Inventory]:
        if self.lock is not None:
            return self.lock
        return whole.view(self.platform) if whole is not None else {}


def _plan_lane(project: Project, engine: Engine, options: BuildOptions, platform: Platform,
               whole: Lock | None, lock: LockFile, progress: Progress, network_host: bool, *,
               rendered: list[Target] | None) -> _Lane:
    """One platform's plan (its lists, its names, its base), with --locked's checks."""
    host = engine.platform()
    name = NATIVE if platform == host else platform
    # Lines limited to other platforms (`foo [arm64]`) are not this build's: not rendered,
    # pinned, locked or self-tested.
    mine = on_engine(project, engine, name)
    sections: dict[str, Inventory] | None = None
    stale: Callable[[Target, ImageInfo], str | None] | None = None
    before_build: Callable[[str], None] | None = None
    if whole is not None and options.pins == "exact":
        sections = whole.view(platform)
        order = mine.order(options.names)
        check_locked(mine, order, whole, lock.shown, platform)
        stale = _differs_from_lock(engine, sections, lock)
        # Once the base image is there: the sources still offer every locked version (the
        # ecosystems' preflights: Debian's).
        before_build = preflight_check(mine, engine, order, sections, lock.shown,
                                       network_host=network_host, platform=name, host=host)
        if not options.dry_run:
            _use_locked_base(mine, engine, sections, lock, progress, name)
    plan = make_plan(mine, engine, options.names, no_cache=options.no_cache,
                     pull=options.pull, rebootstrap=options.rebootstrap, stale=stale,
                     rendered=rendered, platform=name, host=host if name else NATIVE)
    return _Lane(platform, host, mine, plan, sections, before_build)


class Targets(NamedTuple):
    """The platforms a build is for, and what chose them."""

    platforms: tuple[Platform, ...]  # concrete ones, or (NATIVE,): the engine's own
    source: str  # "--platform", "--platform all", "build.platforms", "pyrlab.lock", "default"


def target_platforms(config: Config, flag: Sequence[Platform] = (), *,
                     recorded: Sequence[Platform] = ()) -> Targets:
    """The one place that decides which platforms a build is for: --platform's (`all`:
    [build] platforms), else [build] platforms, else the platforms pyrlab.lock records,
    else the engine's own (NATIVE: the engine is asked for it only where a name needs it).

    `recorded`: the platforms of a lock of format version 2, which records them
    (lockfile.Lock.recorded). A version 1 lock records none, and its Debian versions'
    architecture must not decide: a lock written on a Mac would make amd64 CI build
    arm64."""
    wanted = list(flag)
    if ALL in wanted:
        wanted = [p for p in wanted if p != ALL] + list(config.build.platforms)
        if wanted:
            return Targets(tuple(dict.fromkeys(wanted)), f"--platform {ALL}")
    if wanted:
        return Targets(tuple(dict.fromkeys(wanted)), "--platform")
    if config.build.platforms:
        return Targets(config.build.platforms, "build.platforms")
    if recorded:
        return Targets(tuple(recorded), "pyrlab.lock")
    return Targets((NATIVE,), "default")


def recorded_platforms(lock: Lock | None) -> tuple[Platform, ...]:
    """The platforms a lock records (version 2), for target_platforms; () for version 1."""
    return lock.platforms if lock is not None and lock.recorded else ()


def build_platforms(config: Config, engine: Engine, flag: Sequence[Platform],
                    lock: Lock | None, shown: str, note: Callable[[str], None], *,
                    adds: bool = True) -> tuple[Platform, ...]:
    """The platforms a build is for, concrete, the engine's own first where it is one of
    them (target_platforms decides; NATIVE is the engine's own). Every other one must be
    one this machine can emulate (EngineError naming the fix). A version 1 lock that
    describes another platform is told: the build writes this one's sections beside it
    (the lock becomes version 2; said only when the build `adds` them: not for --locked or
    a dry run)."""
    host = engine.platform()
    targets = target_platforms(config, flag, recorded=recorded_platforms(lock))
    chosen = tuple(dict.fromkeys(host if p == NATIVE else p for p in targets.platforms))
    chosen = tuple(sorted(chosen, key=lambda p: p != host))
    check_emulation(engine, chosen)
    if (lock is not None and adds and not lock.recorded and lock.platforms
            and host in chosen and host not in lock.platforms):
        note(f"{shown} describes {lock.held()} (its Debian packages' architecture): this "
             f"build adds {host}'s sections beside it (lock format version 2)")
    return chosen


def check_emulation(engine: Engine, platforms: Sequence[Platform]) -> None:
    """EngineError (naming the fix) when this machine cannot run one of `platforms`'
    programs: natively or under emulation (engines/emulation.py)."""
    foreign = [p for p in platforms if p != NATIVE and p != engine.platform()]
    if foreign:
        emulation.check(engine, foreign)


def nothing_to_do(plan: Plan) -> bool:
    return plan.base.action == "use" and not any(p.decision.build for p in plan.images)


def self_test_gate(project: Project, engine: Engine, platform: Platform = NATIVE,
                   host: Platform = NATIVE) -> Gate:
    """selftest.build_gate for `platform`'s images, made (and its module imported: urllib,
    ssl…) when the first image built is tested: a no-op build tests nothing."""
    made: list[Gate] = []

    def gate(name: str, image_id: str, delta_on: str | None) -> ImageTest:
        if not made:
            from pyrlab.gate import build_gate

            made.append(build_gate(project, engine, platform, host))
        return made[0](name, image_id, delta_on)

    return gate


def _use_locked_base(project: Project, engine: Engine, sections: dict[str, Inventory],
                     lock: LockFile, progress: Progress, platform: Platform = NATIVE) -> None:
    """`build --locked` of a project whose base comes from a registry: start from the
    image pyrlab.lock names by digest (see use_locked_base), in `platform`'s sections
    (NATIVE: the engine's own), pulled for that platform (an index's digest names each
    platform's image)."""
    digest_ref = locked_base_ref(project, sections)
    if digest_ref is None:
        return
    image_id = use_locked_base(engine, project.config.base.image, digest_ref,
                               lambda line: None, platform=platform)
    shown = project.config.base.image + (f" ({platform})" if platform else "")
    progress.note(f"base: {shown} is {digest_ref} ({short_id(image_id)}), "
                  f"as {lock.shown} says")


def _differs_from_lock(engine: Engine, sections: dict[str, Inventory], lock: LockFile,
                       ) -> Callable[[Target, ImageInfo], str | None]:
    """What tells, for `build --locked`, an up-to-date image that does not hold its
    section of the lock (the planner asks once per image that is there)."""

    def stale(target: Target, current: ImageInfo) -> str | None:
        section = sections.get(target.name)
        if section is None:
            return None
        why = differs_from_lock(image_inventory(engine, ImageSpec(target.name, current.id)),
                                section)
        return f"differs from {lock.shown}: {why}" if why else None

    return stale
