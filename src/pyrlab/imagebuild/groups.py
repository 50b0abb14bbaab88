"""One build for several platforms: each image for every platform, then all promoted or none.

A build for linux/amd64 and linux/arm64 has a plan per platform (planner.make_plan names
each plan's images for its platform) and an Executor per plan, whose settings leave an
image that passed untagged (Settings.defer_promotion). The images go in the plans' order,
one image at a time: its platforms build side by side (up to `jobs`), each checked by its
own self-test; once every one has passed (or was up to date) their tags move together, in
one uninterruptible block, and only then do the image's children start, FROM the new
images. If one platform's build or check fails, none is promoted: the others' new images
go (their layers stay in the engine's cache), each says why, and nothing after it builds.
So an image's tags on every platform always name images of one build.

`upgrade` (fresh pins) for the engine's own platform and others: each image is built on
the engine's own platform first, alone, and the other platforms' builds of it then prefer
the Python versions that image holds (pins.preferring), so that the platforms agree
wherever the lists and the wheels allow it; where its build fails, theirs do not start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pyrlab import proc
from pyrlab.config.project import Project
from pyrlab.contents.images import ImageSpec, image_inventory
from pyrlab.contents.lockfile import Lock
from pyrlab.contents.model import Inventory
from pyrlab.ecosystems.base import PinMode
from pyrlab.engines.base import Engine
from pyrlab.imagebuild.executor import (
    BaseOutcome,
    Built,
    Executor,
    Gate,
    LaneResult,
    Outcome,
    Settings,
    cache_sources,
    failure_error,
    record_lanes,
)
from pyrlab.imagebuild.planner import Plan, Planned
from pyrlab.imagebuild.progress import Progress
from pyrlab.platforms import Platform


@dataclass(frozen=True)
class Lane:
    """One platform's part of the build: its plan and the executor that carries it out."""

    platform: Platform  # concrete, for messages (the plan's is NATIVE for the engine's own)
    plan: Plan
    executor: Executor


def run_lanes(lanes: Sequence[Lane], jobs: int, *,
              lead: Callable[[str, Outcome], Inventory] | None = None,
              ) -> list[tuple[BaseOutcome, list[Outcome]]]:
    """Carry out every lane's plan as the module says: per lane, its base and its outcomes
    in plan order. `lead` (`upgrade`): the first lane's image is built first, alone, and
    the others prefer the versions of what it built (`lead(name, outcome)`: its inventory;
    see pins.preferring); where it failed, the others are not built."""
    bases = [lane.executor.start(lane.plan) for lane in lanes]
    done: list[dict[str, Outcome]] = [{} for _ in lanes]
    names = [item.target.name for item in lanes[0].plan.images]
    failed = ""  # the first image whose group failed
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pyrlab-build") as pool:
        for name in names:
            items = [_item(lane.plan, name) for lane in lanes]
            parents = [done[i].get(item.target.parent) if item.target.parent else None
                       for i, item in enumerate(items)]
            if failed or any(p is not None and not p.image_id for p in parents):
                why = (f"{failed} failed on a platform" if failed
                       else f"{items[0].target.parent} was not built")
                for i, (lane, item) in enumerate(zip(lanes, items, strict=True)):
                    done[i][name] = Outcome(name, item.target.ref, "not built", why,
                                            platform=lane.plan.platform)
                continue
            on = [parent.image_id if parent else bases[i].image_id
                  for i, parent in enumerate(parents)]
            if lead is None or len(lanes) == 1:
                results = _gather(lanes, items, [
                    pool.submit(lane.executor.one, item, on[i])
                    for i, (lane, item) in enumerate(zip(lanes, items, strict=True))])
            else:
                results = _led(lanes, items, on, pool, lead)
            if all(r.action in ("passed", "skipped") for r in results):
                with proc.uninterruptible():
                    results = [lane.executor.promote(item, r) if r.action == "passed" else r
                               for lane, item, r in zip(lanes, items, results, strict=True)]
            else:
                failed = name
                bad = " and ".join(lane.platform for lane, r in zip(lanes, results, strict=True)
                                   if r.action == "failed")
                why = f"{name} failed for {bad} (an image's platforms are promoted together)"
                results = [lane.executor.withhold(item, r, why) if r.action == "passed" else r
                           for lane, item, r in zip(lanes, items, results, strict=True)]
            for i, result in enumerate(results):
                done[i][name] = result
    return [(bases[i], [done[i][name] for name in names]) for i in range(len(lanes))]


def _led(lanes: Sequence[Lane], items: Sequence[Planned], on: Sequence[str],
         pool: ThreadPoolExecutor, lead: Callable[[str, Outcome], Inventory],
         ) -> list[Outcome]:
    """One image's outcomes, the first lane's built first and its versions preferred by
    the others (see run_lanes)."""
    [first] = _gather(lanes[:1], items[:1], [pool.submit(lanes[0].executor.one, items[0],
                                                         on[0])])
    if first.action not in ("passed", "skipped"):
        why = f"{items[0].target.name} failed for {lanes[0].platform}"
        return [first, *(Outcome(item.target.name, item.target.ref, "not built", why,
                                 platform=lane.plan.platform)
                         for lane, item in zip(lanes[1:], items[1:], strict=True))]
    try:
        prefer = lead(items[0].target.name, first) if first.action == "passed" else None
        rest = _gather(lanes[1:], items[1:], [
            pool.submit(lane.executor.one, item, on[i + 1], prefer)
            for i, (lane, item) in enumerate(zip(lanes[1:], items[1:], strict=True))])
    except BaseException:
        if first.action == "passed":
            lanes[0].executor.withhold(items[0], first, "the build stopped")
        raise
    return [first, *rest]


def _item(plan: Plan, name: str) -> Planned:
    return next(item for item in plan.images if item.target.name == name)


def _gather(lanes: Sequence[Lane], items: Sequence[Planned],
            futures: Sequence[Future[Outcome]]) -> list[Outcome]:
    """Every platform's outcome. When one raised (an interrupt, an engine that went away),
    the others are waited for and their untagged new images removed before it goes on."""
    results: list[Outcome | None] = []
    raised: BaseException | None = None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the cleanup
            results.append(None)
            raised = raised or exc
    if raised is None:
        return [r for r in results if r is not None]
    for lane, item, result in zip(lanes, items, results, strict=True):
        if result is not None and result.action == "passed":
            lane.executor.withhold(item, result, "the build stopped")
    raise raised


@dataclass(frozen=True)
class LaneSpec:
    """What one platform's part of a build needs besides its plan (see build_lanes)."""

    platform: Platform  # concrete
    project: Project  # as the platform sees it (Project.for_platform)
    plan: Plan
    lock: dict[str, Inventory]  # the platform's sections of pyrlab.lock
    gate: Gate | None
    before_build: Callable[[str], None] | None = None


def build_lanes(engine: Engine, specs: Sequence[LaneSpec], progress: Progress, *,
                whole: Lock, network_host: bool, no_cache: bool = False, jobs: int = 2,
                pins: PinMode | None = "prefer", cache_from: Sequence[str] = ()) -> Built:
    """executor.build_plan for several platforms: carry out every platform's plan as the
    module says and record what each built in its sections of pyrlab.lock (the lock's
    other platforms are kept); BuildError on failure, when the lock is left as it was."""
    project = specs[0].project
    sources = () if no_cache else cache_sources(project.config, cache_from)
    if sources:
        progress.note(f"layer cache also from: {', '.join(sources)}")
    lanes = [Lane(spec.platform, spec.plan, Executor(spec.project, engine, Settings(
        no_cache=no_cache, network_host=network_host, jobs=max(1, jobs), gate=spec.gate,
        pins=pins, lock=spec.lock, before_build=spec.before_build, cache_from=sources,
        defer_promotion=True), progress)) for spec in specs]
    # `upgrade` (fresh pins) with the engine's own platform among others: it resolves
    # first, and the other platforms prefer its new versions (see pins.preferring).
    led = pins == "fresh" and len(specs) > 1 and specs[0].platform == engine.platform()
    results = run_lanes(lanes, jobs, lead=(lambda name, outcome: image_inventory(
        engine, ImageSpec(name, outcome.image_id))) if led else None)
    outcomes = [o for _, lane_outcomes in results for o in lane_outcomes]
    error = failure_error(outcomes)
    if error is not None:
        raise error
    update = record_lanes(project, engine, [
        LaneResult(spec.platform, spec.plan, base, lane_outcomes, spec.lock)
        for spec, (base, lane_outcomes) in zip(specs, results, strict=True)], progress,
        whole=whole)
    return Built(results[0][0], tuple(outcomes), update,
                 other_bases=tuple(base for base, _ in results[1:]))
