"""The inventories of built images, and where the project keeps its pyrlab.lock.

The last build step of every image records what it holds in MANIFEST_PATH (see
dockerfile/render.py); it is read here through the engine, without starting the image.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyrlab import ecosystems
from pyrlab.config.model import Config
from pyrlab.contents.lockfile import LOCK_NAME
from pyrlab.contents.model import Inventory, ManifestError, from_manifest
from pyrlab.dockerfile.render import MANIFEST_PATH
from pyrlab.engines.base import Engine, normalize_id
from pyrlab.errors import ConfigError, EngineError, NotBuiltError, Problem
from pyrlab.platforms import NATIVE, Platform

# The labels a build puts on each image it makes (imagebuild/), read back by the next
# build's planner and by the self-test gate.
LABEL_INPUT_HASH = "org.pyrlab.input-hash"
LABEL_INPUTS = "org.pyrlab.inputs"  # a short hash per part of the context, for the reason
LABEL_PARENT_ID = "org.pyrlab.parent-id"
LABEL_PROJECT = "org.pyrlab.project"
# What the installer steps were given (their list lines, a digest of their other files), so
# that the next build can tell an edit that only adds lines; and how many delta layers the
# image carries on its last full build.
LABEL_LISTS = "org.pyrlab.lists"
LABEL_DELTA_DEPTH = "org.pyrlab.delta-depth"


@dataclass(frozen=True)
class LockFile:
    path: Path
    shown: str  # how messages name it: relative to the current folder where it is under it


def lock_file(config: Config) -> LockFile:
    path = config.root / LOCK_NAME
    return LockFile(path, shown_path(path))


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class ImageSpec:
    """An image of the project's graph as the command line names it: NAME or NAME:TAG."""

    name: str
    ref: str


def image_spec(config: Config, text: str, platform: Platform = NATIVE,
               host: Platform = NATIVE) -> ImageSpec:
    """NAME or NAME:TAG as `platform`'s image (NATIVE, or `host`: the engine's own names;
    another's NAME/arm64:TAG, see Config.image_ref)."""
    name, colon, tag = text.partition(":")
    if name not in config.images:
        raise ConfigError(Problem("command line", f"unknown image '{name}' "
                                  f"(known: {', '.join(config.images)})"))
    return ImageSpec(name, config.image_ref(name, tag if colon and tag else "latest",
                                            platform, host))


def manifest_inventory(raw: bytes, source: str, platform: Platform = NATIVE) -> Inventory:
    """The inventory in a manifest's bytes, of an image for `platform` (what its engine
    says); ManifestError naming `source` when it is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{source}: not a valid pyrlab inventory: not JSON ({exc})") \
            from None
    meta = data.get("meta") if isinstance(data, dict) else None
    pinned: dict[str, list[str]] = {}
    for eco in ecosystems.registered():
        key = eco.contents.pinned_meta
        names = meta.get(key, []) if key and isinstance(meta, dict) else []
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ManifestError(f"{source}: not a valid pyrlab inventory: meta.{key}: "
                                "expected a list of strings")
        pinned[eco.name] = names
    return from_manifest(data, source, pinned=pinned, platform=platform)


# Manifests read in this process, by engine and image ID: an ID names content that never
# changes, so a build reads each new image's manifest once (its self-test, then the lock).
_FULL_ID = re.compile(r"(sha256:)?[0-9a-f]{64}")
_read: weakref.WeakKeyDictionary[Engine, dict[str, Inventory]] = weakref.WeakKeyDictionary()
_read_lock = threading.Lock()


def image_inventory(engine: Engine, image: ImageSpec) -> Inventory:
    """What the image holds, from its manifest; NotBuiltError naming the fix when missing."""
    if _FULL_ID.fullmatch(image.ref):
        with _read_lock:
            known = _read.get(engine, {}).get(normalize_id(image.ref))
        if known is not None and known.meta.image == image.name:
            return known
    info = engine.image(image.ref)
    if info is None:
        raise NotBuiltError(f"image {image.ref} is not built",
                            hint=f"build it with `pyrlab build {image.name}`")
    try:
        raw = engine.read_file(info.id, MANIFEST_PATH)
    except EngineError as exc:
        raise NotBuiltError(
            f"{image.ref} has no inventory: {exc.message}",
            hint=f"images built before pyrlab recorded inventories have none; rebuild it with "
                 f"`pyrlab build {image.name}`") from None
    inventory = manifest_inventory(raw, f"{MANIFEST_PATH} in {image.ref}", info.platform)
    if inventory.meta.image != image.name:
        raise ManifestError(f"{image.ref} holds the image '{inventory.meta.image}', "
                            f"not '{image.name}'",
                            hint=f"rebuild it with `pyrlab build {image.name}`")
    with _read_lock:
        _read.setdefault(engine, {})[normalize_id(info.id)] = inventory
    return inventory


def current_inventories(engine: Engine, config: Config, names: Iterable[str] | None = None,
                        platform: Platform = NATIVE, host: Platform = NATIVE,
                        ) -> tuple[dict[str, Inventory], list[str]]:
    """The inventories of `platform`'s images (default: every image of the graph; see
    image_spec) as they are now, and the names of those not built."""
    inventories: dict[str, Inventory] = {}
    missing: list[str] = []
    for name in config.images if names is None else names:
        spec = image_spec(config, name, platform, host)
        if engine.image(spec.ref) is None:
            missing.append(name)
        else:
            inventories[name] = image_inventory(engine, spec)
    return inventories, missing
