"""pyrlab.lock as input to a build: the versions each image's install steps get.

A plain build passes the lock's Python versions as preferences (an entry keeps its locked
version wherever its list line still allows it; new or changed entries resolve). `build
--locked` first checks every list entry against the lock (`check_locked`) and that the
sources still offer every locked version (an ecosystem's preflight, see offered.py: Debian
asks apt, before anything is built), then passes the image's whole section: Python
versions as constraints, Debian versions as apt's candidates, R versions as exact wants
(R's installer fetches an older one from the repository's Archive, and fails before
installing anything when the repository has it nowhere). Each ecosystem's Pins part says
what its step's pins folder holds. What a --locked build made is compared with the lock before
any tag moves (`lock_mismatch`): it installs exactly the lock or fails, never drifts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrlab import ecosystems
from pyrlab.config.project import Project
from pyrlab.contents.lockfile import Lock, section_name
from pyrlab.contents.model import Inventory
from pyrlab.dockerfile.render import PINS_FOLDER, BuildContext
from pyrlab.ecosystems.base import (
    NATIVE,
    REGULAR,
    Ecosystem,
    Locked,
    Package,
    PinMode,
    Platform,
    sort_key,
)
from pyrlab.errors import ConfigError, Problem


def held(inventory: Inventory, eco: Ecosystem) -> tuple[Package, ...]:
    """An image's (or lock section's) packages of one ecosystem."""
    return inventory.packages(eco.name)


def locked_of(section: Inventory) -> Locked:
    """A lock section as the ecosystems read it: packages by ecosystem name, meta facts."""
    return Locked({eco.name: held(section, eco) for eco in ecosystems.registered()},
                  {f.name: str(getattr(section.meta, f.name))
                   for f in dataclasses.fields(section.meta)})


@dataclass(frozen=True)
class ImagePins:
    """pyrlab.lock's versions for one image's install steps, in a mode: "prefer" (a plain
    build: the ecosystems that prefer, from the image's section and its ancestors'),
    "exact" (`build --locked`: the image's whole section) or "fresh" (`upgrade`: none).
    Each ecosystem's `Pins.files` says what that means for its step."""

    mode: PinMode
    locked: Locked = field(default_factory=Locked)
    # "fresh" only (`upgrade` of another platform than the engine's own): the versions the
    # engine's own platform's image just resolved, which the ecosystems that prefer
    # (Python) take as a plain build takes the lock's (see `preferring`); the others
    # resolve fresh.
    prefer: Locked = field(default_factory=Locked)

    def step_files(self, platform: Platform = NATIVE) -> dict[str, dict[str, bytes]]:
        """The files of each step's pins folder."""
        return {eco.step: dict(eco.pins.files("prefer", self.prefer, platform)
                               if self.mode == "fresh" and self.prefer.of(eco.name)
                               else eco.pins.files(self.mode, self.locked, platform))
                for eco in ecosystems.registered() if eco.pins.files is not None}


def preferring(pins: ImagePins, image: Inventory) -> ImagePins:
    """`upgrade` for several platforms: the pins of another platform's image ("fresh")
    with `image`'s versions preferred, `image` being the same image as the engine's own
    platform just resolved it (every version it holds). Where the lists allow those
    versions and the platform has them (wheels for it), the platforms agree; elsewhere its
    resolution differs, and its sections of pyrlab.lock record that. Other modes as
    they are."""
    if pins.mode != "fresh":
        return pins
    return dataclasses.replace(pins, prefer=Locked(
        {eco.name: held(image, eco) for eco in ecosystems.registered() if eco.pins.prefers}))


def with_pins(context: BuildContext, pins: ImagePins) -> BuildContext:
    """The context with `pins` in the pins folder of each install step it has: the same
    input hash, since the pins are outside it."""
    files = dict(context.files)
    dockerfile, mode = files["Dockerfile"]
    scripts = {eco.step: eco.pins.script for eco in ecosystems.registered()}
    for step, step_files in pins.step_files().items():
        folder = f"{PINS_FOLDER}/{step}/"
        if not any(path.startswith(folder) for path in files):
            continue  # the image has no such step
        for path in [p for p in files if p.startswith(folder)]:
            del files[path]
        digest = hashlib.sha256(f"{pins.mode}\0".encode())
        for fname, content in sorted(step_files.items()):
            files[folder + fname] = (content, REGULAR)
            digest.update(f"{fname}\0{len(content)}\0".encode() + content)
        line = f"/run/pyrlab/bin/{scripts[step]} # inputs ".encode()
        if line in dockerfile:
            # RenderOptions.run_input_keys (Podman): the step's key must see the pins too,
            # or a cached layer with other versions would be reused.
            dockerfile = dockerfile.replace(line, line + f"pins {digest.hexdigest()[:16]} ".encode())
    files["Dockerfile"] = (dockerfile, mode)
    return BuildContext(context.image, dict(sorted(files.items())), context.input_hash)


def pins_for(project: Project, name: str, lock: Mapping[str, Inventory],
             mode: PinMode) -> ImagePins:
    """The pins of one image. "exact": its own section, every ecosystem. "prefer": the
    ecosystems that prefer (Python), from its own section, then its ancestors' for what that
    lacks (a new image keeps what its parent holds), by name. "fresh": none."""
    if mode == "fresh":
        return ImagePins(mode)
    if mode == "exact":
        section = lock.get(name)
        return ImagePins(mode, locked_of(section) if section is not None else Locked())
    kept: dict[str, tuple[Any, ...]] = {}
    for eco in ecosystems.registered():
        if not eco.pins.prefers:
            continue
        chosen: dict[str, Package] = {}
        for ancestor in project.order([name])[::-1]:
            inventory = lock.get(ancestor)
            for package in held(inventory, eco) if inventory else ():
                chosen.setdefault(package.name, package)
        kept[eco.name] = tuple(package for _, package in sorted(chosen.items()))
    return ImagePins(mode, Locked(kept))


def check_locked(project: Project, names: Iterable[str], lock: Lock | Mapping[str, Inventory],
                 shown: str, platform: Platform = NATIVE) -> None:
    """ConfigError naming FILE:LINE and the package for every list entry (of every
    ecosystem) the lock cannot satisfy: not in the image's section, or locked at a version
    (or URL) the entry does not allow. A loosened entry the locked version satisfies is
    fine. `lock`: the whole lock, of which `platform`'s sections are checked (a lock
    without that platform is one error, naming it), or one platform's sections."""
    if isinstance(lock, Lock):
        if platform != NATIVE and lock.platforms and platform not in lock.platforms:
            raise ConfigError(Problem(shown, f"no section for {platform} (it holds "
                                      f"{lock.held()})"),
                              hint=f"`pyrlab build --platform {platform}` (without --locked) "
                              f"adds {platform}'s sections to {shown}")
        recorded = lock.recorded
        lock = lock.view(platform)
    else:
        recorded = False
    problems: list[Problem] = []
    for name in names:
        listed = [(eco, project.lists[name].of(eco.name)) for eco in ecosystems.registered()]
        if not any(found for _, found in listed):
            continue
        inventory = lock.get(name)
        if inventory is None:
            problems.append(Problem(shown, f"no section for the image '{name}'"
                                    + (f" on {platform}" if recorded else "")
                                    + ": build it without --locked first"))
            continue
        where = f"{shown} {section_name(name, platform if recorded else NATIVE)}"
        locked = locked_of(inventory)
        for eco, found in listed:
            if eco.pins.problems is not None:
                problems += eco.pins.problems(
                    found, locked, where, eco.contents.compare)
    if problems:
        raise ConfigError(problems, hint="`pyrlab build` (without --locked) resolves the lists "
                          f"again and updates {shown}")


def differs_from_lock(image: Inventory, section: Inventory | None) -> str | None:
    """What an image holds that its lock section does not say (every ecosystem, with both
    versions), or None when they agree or there is no section."""
    if section is None:
        return None
    parts: list[str] = []
    for eco in ecosystems.registered():
        have = {p.name: p for p in held(image, eco)}
        want = {p.name: p for p in held(section, eco)}
        names = sorted((n for n in set(have) | set(want)
                        if _same(eco, have.get(n)) != _same(eco, want.get(n))), key=sort_key)
        if not names:
            continue
        shown = [f"{n} {_described(eco, want.get(n))} in the lock, "
                 f"{_described(eco, have.get(n))} in the image" for n in names[:5]]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        parts.append(f"{eco.lock_key}: {'; '.join(shown)}{more}")
    return " | ".join(parts) or None


def _same(eco: Ecosystem, package: Package | None) -> object:
    """What must agree between an image and its lock (see Pins.agrees)."""
    return None if package is None else eco.pins.agrees(package)


def _described(eco: Ecosystem, package: Package | None) -> str:
    return "absent" if package is None else eco.pins.described(package)


def locked_base_ref(project: Project, lock: Mapping[str, Inventory]) -> str | None:
    """The registry base (REPOSITORY@sha256:…) pyrlab.lock's root images were built on, for
    `build --locked` to use; None for a bootstrapped base (its ID is the same everywhere)
    or when the lock names no digest. Root images on two digests: the first by name (a
    --locked build of both starts from one base)."""
    if project.config.base.bootstrap:
        return None
    found = sorted({lock[name].meta.base_id for name in project.config.images
                    if project.config.images[name].parent is None and name in lock
                    and "@sha256:" in lock[name].meta.base_id})
    return found[0] if found else None
