"""`pyrlab outdated [IMAGE…]`: what `pyrlab upgrade` would change, package by package.

Read-only: nothing is built or tagged. Each built image is asked, in a throwaway container
of itself, what its indexes offer now: uv (as builds resolve), apt and R's repository (see
contents/upgradable.py). Listed Python packages that the resolution holds back are named
with the requirement that holds them.

Per platform: the platforms a build is for (orchestration.target_platforms: --platform,
else [build] platforms, else those a version 2 pyrlab.lock records, else the engine's
own), each platform's own images (another one's is NAME/arm64:TAG, asked under emulation
with its own lists). The engine's own alone reads as before; with another platform, each
platform has a heading of its own, so that `upgrade --dry-run` shows what `upgrade` would
change on every platform it builds."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._args import add_platform, engine_from, project_from
from pyrlab.config.project import Project
from pyrlab.contents.images import image_inventory, image_spec, lock_file
from pyrlab.contents.lockfile import Lock, LockError, read_lock_all
from pyrlab.contents.model import Outdated
from pyrlab.contents.tables import outdated_table
from pyrlab.contents.upgradable import upgradable
from pyrlab.ecosystems.base import Note
from pyrlab.engines import emulation
from pyrlab.engines.base import Engine
from pyrlab.engines.select import add_engine_argument
from pyrlab.imagebuild.executor import network_mode
from pyrlab.imagebuild.orchestration import recorded_platforms, target_platforms
from pyrlab.imagebuild.planner import on_engine
from pyrlab.platforms import NATIVE, Platform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="images to check (default: every image of the project)")
    parser.add_argument("--network-host", action="store_true",
                        help="ask with host networking (automatic when a proxy in "
                        "pyrlab.toml is on 127.0.0.1)")
    add_platform(parser, many=True, help=(
        "check PLATFORM's images (linux/amd64, linux/arm64; `all`: every one of [build] "
        "platforms); repeatable; default: the platforms a build is for ([build] platforms, "
        "else those pyrlab.lock records, else the engine's own)"))
    add_engine_argument(parser)


@dataclass(frozen=True)
class OutdatedResult:
    """One platform's answer (NATIVE: the engine's own, as every check so far)."""

    rows: tuple[Outdated, ...]
    checked: tuple[str, ...]
    not_built: tuple[str, ...]
    held_back: tuple[tuple[str, Note], ...] = ()  # (image, finding)
    platform: Platform = NATIVE  # the images' platform where it is not the engine's own

    def to_data(self) -> Any:
        return {"checked": list(self.checked), "not_built": list(self.not_built),
                "outdated": [row.to_json() for row in self.rows],
                "held_back": [{"image": image, **h.to_json()} for image, h in self.held_back]}

    def to_text(self) -> str:
        lines = [outdated_table(self.rows, stream=sys.stdout).rstrip("\n")]
        lines += [f"{image}: {h.describe()}" for image, h in self.held_back]
        also = f" --platform {self.platform}" if self.platform else ""
        lines += [f"{name}: not built, not checked (`pyrlab build {name}{also}`)"
                  for name in self.not_built]
        return "\n".join(lines)


@dataclass(frozen=True)
class PlatformsOutdated:
    """Several platforms' answers (or another platform's alone), each under its heading
    (`platform`: concrete, the engine's own first)."""

    parts: tuple[tuple[Platform, OutdatedResult], ...]

    def to_data(self) -> Any:
        # The engine's own images as one platform's answer gives them; each platform's
        # checked and not built images under `platforms`; every row names its platform.
        own = next((part for _, part in self.parts if not part.platform), None)
        return {"checked": list(own.checked) if own else [],
                "not_built": list(own.not_built) if own else [],
                "outdated": [{**row, "platform": part.platform or None}
                             for _, part in self.parts for row in part.to_data()["outdated"]],
                "held_back": [{**row, "platform": part.platform or None}
                              for _, part in self.parts
                              for row in part.to_data()["held_back"]],
                "platforms": [{"platform": platform, "native": not part.platform,
                               "checked": list(part.checked),
                               "not_built": list(part.not_built)}
                              for platform, part in self.parts]}

    def to_text(self) -> str:
        return "\n\n".join(f"{platform}:\n{part.to_text()}" for platform, part in self.parts)


def chosen_platforms(project: Project, engine: Engine,
                     flag: list[Platform]) -> tuple[Platform, ...]:
    """The platforms to check, concrete, the engine's own first (see the module doc). A
    lock that cannot be read records none here: `outdated` does not need it."""
    config = project.config
    lock: Lock | None = None
    if not flag and not config.build.platforms:
        found = lock_file(config)
        try:
            lock = read_lock_all(found.path, shown=found.shown, host=engine.platform())
        except LockError:
            lock = None
    targets = target_platforms(config, flag, recorded=recorded_platforms(lock))
    if targets.platforms == (NATIVE,):
        return (NATIVE,)
    host = engine.platform()
    chosen = dict.fromkeys(host if p == NATIVE else p for p in targets.platforms)
    return tuple(sorted(chosen, key=lambda p: p != host))


def find_outdated(args: argparse.Namespace) -> OutdatedResult | PlatformsOutdated:
    project = project_from(args)
    engine = engine_from(args, project.config)
    network_host, _ = network_mode(project.config.proxy, args.network_host)
    platforms = chosen_platforms(project, engine, list(getattr(args, "platforms", [])))
    if platforms == (NATIVE,):
        return _one_platform(project, engine, args.images, NATIVE, NATIVE, network_host)
    host = engine.platform()
    parts = tuple((platform, _one_platform(project, engine, args.images,
                                           NATIVE if platform == host else platform, host,
                                           network_host))
                  for platform in platforms)
    if len(parts) == 1 and not parts[0][1].platform:
        return parts[0][1]  # the engine's own alone, named: as before
    return PlatformsOutdated(parts)


def _one_platform(project: Project, engine: Engine, images: list[str], platform: Platform,
                  host: Platform, network_host: bool) -> OutdatedResult:
    """The outdated packages of `platform`'s images (NATIVE: the engine's own; another is
    asked under emulation, with its lists as that platform sees them)."""
    config = project.config
    mine = on_engine(project, engine, platform)
    rows: list[Outdated] = []
    checked: list[str] = []
    not_built: list[str] = []
    held_back: list[tuple[str, Note]] = []
    for name in images or list(config.images):
        spec = image_spec(config, name, platform, host)
        info = engine.image(spec.ref)
        if info is None:
            not_built.append(name)
            continue
        if platform and not checked:  # its programs run here: emulation, or the fix
            emulation.check(engine, [platform], doing="checking images of")
        inventory = image_inventory(engine, spec)
        found, held = upgradable(mine, engine, name, spec.ref, inventory,
                                 network_host=network_host, platform=platform, host=host)
        rows += found
        held_back += [(name, h) for h in held]
        checked.append(name)
    return OutdatedResult(tuple(rows), tuple(checked), tuple(not_built), tuple(held_back),
                          platform)


def run(args: argparse.Namespace) -> OutdatedResult | PlatformsOutdated:
    return find_outdated(args)
