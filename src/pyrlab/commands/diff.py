"""`pyrlab diff [A [B]]`: what changed between pyrlab.lock and the images, two images, or
two lock files, per ecosystem: added, removed, upgraded, downgraded.

    pyrlab diff                         pyrlab.lock → the project's images now
    pyrlab diff pylab                   pylab's section of pyrlab.lock → the image now
    pyrlab diff old.lock                that lock file → the project's images now
    pyrlab diff pylab:previous pylab    one image → another
    pyrlab diff old.lock pyrlab.lock    one lock file → another

An argument that names an image of the project (NAME or NAME:TAG) is an image; anything
else is a lock file (write ./pylab for a file that is called like an image). The exit code
says what was found, as diff(1) and `git diff --exit-code` do: 0 nothing differs, 1 something
does (a package, an image's OS, Python, R or base), and an error's own code otherwise.

One platform is compared: --platform's, else the engine's own (this machine's for two lock
files). Its images are the engine's own names, or another platform's (NAME/arm64:TAG); a
lock of format version 2 holds several platforms, and that platform's sections are compared.
The heading names the platform where it is another one or the lock holds several; a version
1 lock of the engine's own platform reads as before.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pyrlab.commands._args import add_platform, config_from, engine_from
from pyrlab.config.model import Config
from pyrlab.contents.diff import InventoryDiff, diff, diff_locks
from pyrlab.contents.images import (
    current_inventories,
    image_inventory,
    image_spec,
    lock_file,
)
from pyrlab.contents.lockfile import LOCK_NAME, read_lock_all
from pyrlab.contents.model import Inventory
from pyrlab.contents.tables import diff_table
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import EXIT_DIFFERENT, EXIT_OK, ConfigError, Problem, UsageError
from pyrlab.platforms import NATIVE, Platform, host_platform, is_native


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sides", nargs="*", metavar="A [B]",
                        help="images (NAME or NAME:TAG) or lock files; none: pyrlab.lock → "
                        "the images now; one: it → the image now (or the images now)")
    add_platform(parser, many=False, help="the platform whose images and lock sections to "
                 "compare (linux/amd64, linux/arm64); default: the engine's own (another "
                 "platform's image is NAME/arm64:TAG)")
    add_engine_argument(parser)


@dataclass(frozen=True)
class DiffResult:
    old: str  # what the comparison is from, as the user named it
    new: str
    diffs: tuple[InventoryDiff, ...]
    not_built: tuple[str, ...] = ()  # images of the project left out: there is none to read
    # The platform compared (None: two lock files that record none); `named`: the heading
    # names it (another platform than the engine's, or a lock that records several; a
    # one-platform comparison of the engine's own keeps today's heading).
    platform: Platform | None = None
    named: bool = False

    @property
    def exit_code(self) -> int:
        """1 when anything differs (an image not built here is left out, not a difference)."""
        differs = any(d.status != "unchanged" for d in self.diffs)
        return EXIT_DIFFERENT if differs else EXIT_OK

    def to_data(self) -> Any:
        return {"old": self.old, "new": self.new, "platform": self.platform,
                "not_built": list(self.not_built), "images": [d.to_json() for d in self.diffs]}

    def to_text(self) -> str:
        lines = [f"{self.old} → {self.new}" + (f" ({self.platform})" if self.named else "")]
        if self.diffs:
            lines.append(diff_table(self.diffs, stream=sys.stdout).rstrip("\n"))
        lines += [f"{name}: not built, not compared (`pyrlab build {name}`)"
                  for name in self.not_built]
        return "\n".join(lines)


class _Side(NamedTuple):
    sections: dict[str, Inventory]
    platform: Platform  # "" for a one-platform lock read as it is


def _lock(path: Path, shown: str, asked: Platform, host: Platform) -> _Side:
    """One platform's sections of a lock file: `asked` (--platform), else, in a lock that
    records several, `host`'s; a one-platform lock as it is."""
    if not path.is_file():
        hint = ("`pyrlab lock` writes it from the images (every `pyrlab build` updates it)"
                if path.name == LOCK_NAME else None)
        raise ConfigError(Problem(shown, "no such lock file"), hint=hint)
    whole = read_lock_all(path, shown=shown, host=host)
    if not asked and not whole.recorded:
        return _Side(whole.view(NATIVE), "")
    platform = asked or host
    if whole.platforms and platform not in whole.platforms:
        raise ConfigError(Problem(shown, f"no section for {platform} (it holds "
                                  f"{whole.held()})"),
                          hint=None if asked else "choose one with --platform")
    return _Side(whole.view(platform), platform)


def _is_image(config: Config, text: str) -> bool:
    return text.partition(":")[0] in config.images


def run(args: argparse.Namespace) -> DiffResult:
    sides: list[str] = args.sides
    if len(sides) > 2:
        raise UsageError("diff compares two things: give at most two images or lock files")
    asked: Platform = args.platform or NATIVE
    if len(sides) == 2 and all(Path(side).is_file() for side in sides):
        # Two lock files: no project and no engine needed (`pyrlab diff a.lock b.lock`).
        return _two_locks(sides, asked, host_platform())
    config = config_from(args)
    project_lock = lock_file(config)
    kinds = [_is_image(config, side) for side in sides]
    if len(sides) == 2 and kinds[0] != kinds[1]:
        raise UsageError(f"cannot compare an image with a lock file ({sides[0]}, {sides[1]})",
                         hint="compare two images, two lock files, or one lock file with "
                         "the images now (`pyrlab diff FILE`)")
    engine = engine_from(args, config)
    host = engine.platform()
    at, foreign = asked or host, not is_native(asked, host)

    if len(sides) == 2 and kinds[0]:
        a = image_spec(config, sides[0], asked, host)
        b = image_spec(config, sides[1], asked, host)
        return DiffResult(a.ref, b.ref, (diff(image_inventory(engine, a),
                                              image_inventory(engine, b)),),
                          platform=at, named=foreign)
    if len(sides) == 2:
        return _two_locks(sides, asked, host)
    if len(sides) == 1 and kinds[0]:
        spec = image_spec(config, sides[0], asked, host)
        side = _lock(project_lock.path, project_lock.shown, asked, host)
        return DiffResult(f"{project_lock.shown} [{spec.name}]", spec.ref,
                          (diff(side.sections.get(spec.name), image_inventory(engine, spec)),),
                          platform=at, named=foreign or bool(side.platform))
    if sides:
        old_shown, side = sides[0], _lock(Path(sides[0]), sides[0], asked, host)
    else:
        old_shown = project_lock.shown
        side = _lock(project_lock.path, project_lock.shown, asked, host)
    now, not_built = current_inventories(engine, config, platform=asked, host=host)
    # An image that is not built here is not compared (it would read as "removed").
    old = {name: inventory for name, inventory in side.sections.items()
           if name not in not_built}
    return DiffResult(old_shown, "the images now", diff_locks(old, now), tuple(not_built),
                      platform=at, named=foreign or bool(side.platform))


def _two_locks(sides: list[str], asked: Platform, host: Platform) -> DiffResult:
    old = _lock(Path(sides[0]), sides[0], asked, host)
    new = _lock(Path(sides[1]), sides[1], asked, host)
    platform = old.platform or new.platform
    return DiffResult(sides[0], sides[1], diff_locks(old.sections, new.sections),
                      platform=platform or None, named=bool(platform))
