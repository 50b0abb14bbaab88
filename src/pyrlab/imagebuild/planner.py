"""What needs building, and why.

An image is up to date when its `latest` tag carries the input hash of its freshly
rendered context and the ID of the image it was built on (its parent's `latest`, or the
base image). Both are labels set at build time, so deciding costs one `image inspect` per
image and no build. The input hash covers every file of the context (package lists,
installer scripts, Dockerfile) and the parent's input hash; the parent ID covers what the
hash cannot: a rebuilt parent, or a base image pulled or bootstrapped again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pyrlab import ecosystems
from pyrlab.config.project import Project
from pyrlab.contents.images import (
    LABEL_DELTA_DEPTH,
    LABEL_INPUT_HASH,
    LABEL_INPUTS,
    LABEL_LISTS,
    LABEL_PARENT_ID,
)
from pyrlab.dockerfile.render import (
    HASH_PLACEHOLDER,
    HASHED_FILES,
    BuildContext,
    RenderOptions,
    is_pins_file,
    render_context,
)
from pyrlab.engines.base import Engine, ImageInfo, short_id
from pyrlab.platforms import NATIVE, Platform, is_native, platform_ref

# Delta layers before a build starts from the parent again (and so compacts them).
MAX_DELTA_DEPTH = 5

# Tags pyrlab gives meanings of its own; a base image's tag is not repeated as one of them.
RESERVED_TAGS = ("latest", "previous", "failed", "rolled-back")

# pyrlab's own parts of a context (its folders under pyrlab/, and the Dockerfile) as users
# know them; each ecosystem's step folder is named by its title (see `part_names`).
CORE_PART_NAMES = {
    "net": "proxy settings",
    "ca": "CA certificates",
    "bin": "pyrlab's installer scripts",
    "runtime": "pyrlab's start scripts",
    "inventory": "pyrlab's inventory step",
    "Dockerfile": "the Dockerfile",
}


def part_names() -> dict[str, str]:
    """Every part of a context a plan may name, with the name users know it by."""
    return {**{eco.step: eco.title for eco in ecosystems.registered()}, **CORE_PART_NAMES}


def delta_lists() -> dict[str, tuple[str, ...]]:
    """The installer steps a delta can run again, and their list files (one entry a line)
    in the context; every other file of the step's part must be unchanged for a delta."""
    return {eco.step: tuple(f"pyrlab/{eco.step}/{name}" for name in eco.context.delta_lists)
            for eco in ecosystems.registered() if eco.context.delta_lists}



def input_parts(context: BuildContext) -> dict[str, str]:
    """A short hash per part of the context (files that name the hash, without it)."""
    digests: dict[str, hashlib._Hash] = {}
    for path, (content, mode) in context.files.items():
        if is_pins_file(path):
            continue  # outside the input hash (see PINS_FOLDER)
        if path in HASHED_FILES:
            content = content.replace(context.input_hash.encode(), HASH_PLACEHOLDER.encode())
        part = path.split("/")[1] if path.count("/") >= 2 else path
        digest = digests.setdefault(part, hashlib.sha256())
        digest.update(f"{path}\0{mode:o}\0{len(content)}\0".encode())
        digest.update(content)
    return {part: digest.hexdigest()[:12] for part, digest in sorted(digests.items())}


def encode_parts(parts: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(parts.items()))


def decode_parts(text: str) -> dict[str, str]:
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


@dataclass(frozen=True)
class Target:
    """One image of the graph for one platform, rendered, with the names it gets (another
    platform's than the engine's own are NAME/arm64:TAG, see Config.image_ref)."""

    name: str
    parent: str | None  # the graph image it is built on; None: the base image
    from_ref: str  # what its Dockerfile starts FROM
    ref: str  # NAME:latest
    refs: tuple[str, ...]  # every tag the new image gets: NAME:latest, NAME:<base tag>
    previous_ref: str  # NAME:previous, where the replaced image stays reachable
    context: BuildContext
    failed_ref: str = ""  # NAME:failed, where an image that failed its self-test is kept
    platform: Platform = NATIVE  # as asked: NATIVE (the engine's own) or a concrete one

    @property
    def parts(self) -> dict[str, str]:
        return input_parts(self.context)


def on_engine(project: Project, engine: Engine, platform: Platform = NATIVE) -> Project:
    """The project as a build by `engine` for `platform` (NATIVE: the engine's own) sees it
    (see Project.for_platform); the engine is asked its platform only where a list is
    limited."""
    if not project.limited:
        return project
    return project.for_platform(platform or engine.platform())


def targets(project: Project, names: Iterable[str] | None, options: RenderOptions, *,
            platform: Platform = NATIVE, host: Platform = NATIVE) -> list[Target]:
    """The selected images and their ancestors, rendered, parents first, named for
    `platform` (NATIVE, or `host`, the engine's own: the names of today) and rendered for
    it (`options` get its platform: FROM its parent's and base's names, its cache mounts)."""
    config = project.config
    if platform and not is_native(platform, host):
        options = replace(options, platform=platform, host=host)

    def ref(name: str, tag: str = "latest") -> str:
        return config.image_ref(name, tag, platform, host)

    out = []
    for name in project.order(names):
        image = config.images[name]
        refs = [ref(name)]
        if config.base.tag not in RESERVED_TAGS:
            refs.append(ref(name, config.base.tag))
        out.append(Target(
            name=name,
            parent=image.parent,
            from_ref=(ref(image.parent) if image.parent
                      else platform_ref(config.base.image, platform, host)),
            ref=refs[0],
            refs=tuple(refs),
            previous_ref=ref(name, "previous"),
            context=render_context(project, name, options),
            failed_ref=ref(name, "failed"),
            platform=platform,
        ))
    return out


def list_state(context: BuildContext) -> dict[str, dict[str, Any]]:
    """Per installer step that has a list: its lines, and a digest of the rest of its part
    (other files, e.g. apt sources or repos.txt), for LABEL_LISTS."""
    state: dict[str, dict[str, Any]] = {}
    for step, list_files in delta_lists().items():
        prefix = f"pyrlab/{step}/"
        paths = [p for p in context.files if p.startswith(prefix)]
        if not paths:
            continue
        lines: list[str] = []
        rest = hashlib.sha256()
        for path in sorted(paths):
            content, mode = context.files[path]
            if path in list_files:
                lines += [f"{path.rsplit('/', 1)[1]}:{line}"
                          for line in content.decode().splitlines() if line]
            else:
                rest.update(f"{path}\0{mode:o}\0{len(content)}\0".encode())
                rest.update(content)
        state[step] = {"lines": sorted(lines), "rest": rest.hexdigest()[:16]}
    return state


def encode_lists(context: BuildContext) -> str:
    return json.dumps(list_state(context), sort_keys=True, separators=(",", ":"))


def delta_steps(target: Target, current: ImageInfo,
                ) -> tuple[tuple[str, ...], str, dict[str, tuple[str, ...]]]:
    """The installer steps to run again on top of `current` when the only change is lines
    added to lists (nothing removed, nothing else changed), the added count, and per step
    the added lines (as in the lists: no file name); ((), why not, {}) otherwise. The caller
    has checked that `current` was built on today's parent."""
    changed = changed_parts(target, current)
    if not changed or not changed <= set(delta_lists()):
        return (), "not only package lists changed", {}
    if LABEL_LISTS not in current.labels:
        return (), "", {}  # built before pyrlab recorded its lists
    try:
        before = json.loads(current.labels[LABEL_LISTS])
        depth = int(current.labels.get(LABEL_DELTA_DEPTH, "0"))
    except ValueError:
        return (), "unreadable labels", {}
    if depth >= MAX_DELTA_DEPTH:
        return (), f"{depth} delta layers: compacted by a full build", {}
    now = list_state(target.context)
    count = 0
    added: dict[str, tuple[str, ...]] = {}
    for step in sorted(changed):
        old, new = before.get(step), now.get(step)
        if not isinstance(old, dict) or new is None or old.get("rest") != new["rest"]:
            return (), "not only package lists changed", {}
        old_lines = set(old.get("lines") or ())
        new_lines = set(new["lines"])
        if not old_lines <= new_lines:
            return (), "entries were removed or changed", {}
        count += len(new_lines - old_lines)
        added[step] = tuple(line.split(":", 1)[1] for line in new["lines"]
                            if line not in old_lines)
    return tuple(sorted(changed)), f"{count} added", added


@dataclass(frozen=True)
class Decision:
    build: bool
    reason: str
    # Installer steps to run again on the current image (a delta build); () = a full build.
    delta: tuple[str, ...] = ()
    # A delta's added list lines, per step (see delta_steps).
    added: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def decide(target: Target, current: ImageInfo | None, parent_id: str | None, *,
           no_cache: bool = False, pending: str = "built",
           stale: str | None = None) -> Decision:
    """Build `target` or keep `current`? `parent_id` None: what it is built on is first
    `pending` ("built", or for the base "pulled"/"bootstrapped"). An edit that only adds list
    lines builds a layer on `current` instead of starting again. `stale`:
    why `current` is not what it should be although its inputs are the same (`--locked`:
    it differs from pyrlab.lock)."""
    on = target.parent or target.from_ref
    if no_cache:
        return Decision(True, "--no-cache")
    if stale and current is not None:
        return Decision(True, stale)
    if current is None:
        return Decision(True, "not built yet")
    if parent_id is None:
        return Decision(True, f"{on} is {pending} first")
    same_parent = current.labels.get(LABEL_PARENT_ID) == parent_id
    if current.labels.get(LABEL_INPUT_HASH) != target.context.input_hash:
        reason = changed_inputs(target, current)
        if not same_parent:
            return Decision(True, reason)
        steps, why, added = delta_steps(target, current)
        if steps:
            return Decision(True, f"{reason} ({why}: a layer on {short_id(current.id)})", steps,
                            added)
        return Decision(True, f"{reason} ({why})" if why else reason)
    if not same_parent:
        return Decision(True, f"{on} changed (now {short_id(parent_id)})")
    return Decision(False, f"up to date ({short_id(current.id)})")


def changed_parts(target: Target, current: ImageInfo) -> set[str]:
    """The parts of the context (see part_names) whose hash differs from `current`'s."""
    before = decode_parts(current.labels.get(LABEL_INPUTS, ""))
    now = target.parts
    return {part for part in set(before) | set(now) if before.get(part) != now.get(part)}


def changed_inputs(target: Target, current: ImageInfo) -> str:
    if not current.labels.get(LABEL_INPUTS):
        return "inputs changed"
    names = part_names()
    changed = [names.get(part, part) for part in sorted(changed_parts(target, current))]
    if not changed:  # its own files are the same: what changed is an ancestor's
        return f"{target.parent or 'the base'}'s inputs changed"
    return "changed: " + ", ".join(changed)


# --------------------------------------------------------------------------- the plan


BaseAction = Literal["use", "bootstrap", "pull"]


@dataclass(frozen=True)
class BaseStatus:
    ref: str
    image: ImageInfo | None
    action: BaseAction
    reason: str


def base_status(project: Project, info: ImageInfo | None, *, pull: bool,
                rebootstrap: bool = False, ref: str = "") -> BaseStatus:
    """What to do about the base image, given what the engine has under its name: `ref`,
    the platform's (platforms.platform_ref), else the configured one."""
    base = project.config.base
    ref = ref or base.image
    if base.bootstrap:
        if rebootstrap:
            return BaseStatus(ref, info, "bootstrap", f"made again from Debian {base.bootstrap}")
        if info is None:
            return BaseStatus(ref, None, "bootstrap",
                              f"missing: bootstrapped from Debian {base.bootstrap}")
        return BaseStatus(ref, info, "use",
                          "present (bootstrapped; --pull does not apply)" if pull else "present")
    if pull:
        return BaseStatus(ref, info, "pull", "--pull")
    if info is None:
        return BaseStatus(ref, None, "pull", "missing")
    return BaseStatus(ref, info, "use", "present")


@dataclass(frozen=True)
class Planned:
    target: Target
    current: ImageInfo | None
    decision: Decision
    stale: str | None = None  # see `decide`


@dataclass(frozen=True)
class Plan:
    base: BaseStatus
    images: tuple[Planned, ...]
    platform: Platform = NATIVE  # its images' platform: NATIVE (the engine's own) or another


def make_plan(project: Project, engine: Engine, names: Iterable[str] | None, *,
              no_cache: bool = False, pull: bool = False, rebootstrap: bool = False,
              stale: Callable[[Target, ImageInfo], str | None] | None = None,
              rendered: list[Target] | None = None, platform: Platform = NATIVE,
              host: Platform = NATIVE) -> Plan:
    """What `build` would do now, assuming every build changes the image it makes.
    `rebootstrap`: a bootstrapped base is made again (`upgrade`); `stale(target, current)`:
    a reason to rebuild an image whose inputs did not change (see `decide`). `rendered`:
    what `targets(project, names, engine.render_options)` returned, when the caller
    rendered it already (it depends on the project only, not on the engine's images).
    `platform`, `host`: the images' names (see `targets`) and the base's."""
    if rendered is None:
        rendered = targets(on_engine(project, engine, platform), names,
                           RenderOptions.for_builder(engine), platform=platform, host=host)
    base_ref = platform_ref(project.config.base.image, platform, host)
    # One engine command for the base and every image of the graph.
    known = engine.images_by_ref([base_ref, *(t.ref for t in rendered)])
    base = base_status(project, known[base_ref], pull=pull, rebootstrap=rebootstrap,
                       ref=base_ref)
    built_on: dict[str | None, str | None] = {
        None: base.image.id if base.image is not None and base.action == "use" else None,
    }
    planned = []
    base_pending = {"pull": "pulled", "bootstrap": "bootstrapped"}.get(base.action, "built")
    for target in rendered:
        current = known[target.ref]
        why = stale(target, current) if stale is not None and current is not None else None
        decision = decide(target, current, built_on[target.parent], no_cache=no_cache,
                          pending=base_pending if target.parent is None else "built", stale=why)
        built_on[target.name] = None if decision.build or current is None else current.id
        planned.append(Planned(target, current, decision, why))
    return Plan(base, tuple(planned), platform if not is_native(platform, host) else NATIVE)
