"""`pyrlab clean [--cache] [--dry-run]`: remove this project's images (and pyrlab's build
cache); --dry-run says what would go and removes nothing.

Only images this project built are touched: the tags of its graph (latest, previous,
failed, rolled-back and the base tag) on every platform (NAME/arm64:TAG, see
Config.image_ref) when the image carries this project's label, then any untagged image
with that label. The base image is kept (it is shared, and may have
been pulled or bootstrapped at some cost); an image a container still uses is kept and
said so. Images under the bare names of before projects had names (pylab:latest) are left
alone and named, with how to remove them. The build cache is the engine's, shared by every
project: `--cache` says so.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._common import project_from
from pyrlab.contents.images import LABEL_PROJECT
from pyrlab.engines.base import short_id
from pyrlab.engines.select import Selection, add_engine_argument, select_engine
from pyrlab.imagebuild.planner import RESERVED_TAGS
from pyrlab.output import info
from pyrlab.platforms import NATIVE, SUPPORTED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", action="store_true",
                        help="also remove pyrlab's build cache (download caches and layers), "
                        "which every project on this engine shares")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="print what would be removed, and remove nothing")
    add_engine_argument(parser)


@dataclass(frozen=True)
class CleanResult:
    selection: Selection
    removed: tuple[str, ...]
    kept: tuple[tuple[str, str], ...]  # (image, why)
    base: str
    cache: tuple[str, ...] | None  # the cache records/folders removed; None without --cache
    # Images of this project's graph under bare names (PREFIXIMAGE:TAG, as built before
    # projects had names), left alone; and the engine's command name, for the hint.
    bare: tuple[str, ...] = ()
    engine_name: str = "docker"
    dry_run: bool = False  # `removed` and `cache` are what would be removed

    def to_data(self) -> Any:
        return {"engine": self.selection.engine.describe(), "removed": list(self.removed),
                "kept": [{"image": i, "reason": r} for i, r in self.kept],
                "base_kept": self.base, "cache_pruned": self.cache is not None,
                "cache_removed": list(self.cache or ()), "bare_names_kept": list(self.bare),
                "dry_run": self.dry_run}

    def to_text(self) -> str:
        removed = "would remove" if self.dry_run else "removed"
        lines = [f"{removed} {r}" for r in self.removed] or ["no images to remove"]
        lines += [f"kept {i}: {r}" for i, r in self.kept]
        lines.append(f"kept the base image {self.base} (remove it with your engine's rmi)")
        if self.bare:
            lines.append(f"left alone, under bare names from before projects had names: "
                         f"{', '.join(self.bare)}; remove them with `{self.engine_name} rmi "
                         f"{' '.join(self.bare)}` (or `pyrlab clean --set name=` for those "
                         f"this folder built)")
        if self.cache is not None:
            lines.append(f"build cache: {removed} {len(self.cache)} pyrlab cache entries "
                         f"(the engine's build cache is shared: this affects every project)")
        if self.dry_run:
            lines.append("dry run: nothing was removed")
        return "\n".join(lines)


def run(args: argparse.Namespace) -> CleanResult:
    project = project_from(args)
    config = project.config
    selection = select_engine(args.engine, config.engine,
                              config_source=config.source_of("engine"))
    engine = selection.engine
    info(selection.describe())
    key = config.project_id
    removed: list[str] = []
    kept: list[tuple[str, str]] = []
    kept_ids: set[str] = set()
    # Every platform's names (the engine's own as today, each other one's NAME/arm64:TAG),
    # children before their parents; one engine command says which exist.
    host = engine.platform()
    tags = (*RESERVED_TAGS, config.base.tag)
    refs = list(dict.fromkeys(config.image_ref(name, tag, platform, host)
                              for name in reversed(project.order())
                              for platform in (NATIVE, *SUPPORTED) for tag in tags))
    found = engine.images_by_ref(refs)
    for ref in refs:
        image = found[ref]
        if image is None:
            continue
        if image.labels.get(LABEL_PROJECT) != key:
            kept.append((ref, "not built by this project (another folder's lab?)"))
            continue
        if args.dry_run:  # whether the engine would refuse shows only when it is asked
            removed.append(ref)
            kept_ids.add(image.id)
            continue
        refused = engine.remove_image(ref)
        if refused:
            kept.append((ref, refused))
            kept_ids.add(image.id)
        else:
            removed.append(ref)
    # Untagged images this project left (replaced builds a container or child still used).
    leftovers = [i for i in engine.image_ids(f"{LABEL_PROJECT}={key}") if i not in kept_ids]
    if args.dry_run:
        removed += [short_id(image_id) for image_id in leftovers]
        leftovers = []
    for _ in range(len(leftovers)):  # a child must go before its parent: retry until stuck
        progress = False
        for image_id in list(leftovers):
            if engine.remove_image(image_id) is None:
                removed.append(short_id(image_id))
                leftovers.remove(image_id)
                progress = True
        if not progress:
            break
    for image_id in leftovers:
        if engine.image(image_id) is not None:
            kept.append((short_id(image_id), "still used (a container, or a kept image)"))
    bare: list[str] = []
    if config.name:
        refs = [f"{config.prefix}{name}:{tag}" for name in project.order()
                for tag in (*RESERVED_TAGS, config.base.tag)]
        found = engine.images_by_ref(list(dict.fromkeys(refs)))
        # Podman also finds a short name's image under a longer one (pylab → a/pylab):
        # only an image that carries the bare name itself is one.
        bare = [ref for ref, image in found.items() if image is not None
                and {ref, f"localhost/{ref}", f"docker.io/library/{ref}"} & set(image.tags)]
    cache = tuple(engine.prune_build_cache(dry_run=args.dry_run)) if args.cache else None
    return CleanResult(selection, tuple(removed), tuple(kept), config.base.image, cache,
                       tuple(bare), engine.name, args.dry_run)
