"""`pyrlab render [IMAGE…] [-o DIR]`: write each image's build context for inspection.

The contexts are rendered for the engine a build would use (--engine, PYRLAB_ENGINE, the
config's `engine`, else the one auto-detection finds), so they hold what that build gets.
DIR is written only when it is new, empty, or one pyrlab made (pyrlab.safewrite)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.commands._common import project_from
from pyrlab.config.paths import work_dir
from pyrlab.dockerfile.context import write_context
from pyrlab.dockerfile.render import RenderOptions, render_context
from pyrlab.engines.podman import Podman
from pyrlab.engines.select import EngineChoice, add_engine_argument, engine_choice
from pyrlab.output import info
from pyrlab.safewrite import claim_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="images (default: all)")
    parser.add_argument("-o", "--output", metavar="DIR", default=None,
                        help="where to write: a new or empty folder, or one pyrlab made "
                        "(default: .pyrlab/contexts in the project)")
    add_engine_argument(parser)
    # Before --engine existed here: kept so scripts that say it go on working.
    parser.add_argument("--podman", action="store_const", const="podman", dest="engine",
                        help=argparse.SUPPRESS)


@dataclass(frozen=True)
class RenderResult:
    written: tuple[tuple[str, Path, str], ...]  # image, folder, input hash
    engine: EngineChoice  # the engine rendered for

    def to_data(self) -> Any:
        return {"contexts": [{"image": i, "path": str(p), "input_hash": h}
                             for i, p, h in self.written],
                "engine": {"name": self.engine.name, "source": self.engine.source}}

    def to_text(self) -> str:
        return "\n".join(f"{image:<16} {path}" for image, path, _ in self.written)


def run(args: argparse.Namespace) -> RenderResult:
    project = project_from(args)
    # Validates the names; render only those asked for, parents first.
    names = [n for n in project.order(args.images or None) if not args.images or n in args.images]
    config = project.config
    choice = engine_choice(args.engine, config.engine, config_source=config.source_of("engine"))
    # The same options that engine builds with, so the files match what it builds.
    options = RenderOptions.for_builder(Podman) if choice.name == "podman" else RenderOptions()
    if args.output:
        out = Path(args.output)
        claim_folder(out, by="pyrlab render -o", writes=names)
    else:  # pyrlab's own folder in the project
        out = work_dir(project.root) / "contexts"
        claim_folder(out, by="pyrlab render", owned=True)
    info(f"rendering for {choice.name}, from {choice.source}")
    written = []
    for name in names:
        context = render_context(project, name, options)
        folder = write_context(context, out / name)
        written.append((name, folder, context.input_hash))
    return RenderResult(tuple(written), choice)
