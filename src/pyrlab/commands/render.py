"""`pyrlab render [IMAGE…] [-o DIR]`: write each image's build context for inspection."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.commands._common import project_from
from pyrlab.dockerfile.context import write_context
from pyrlab.dockerfile.render import RenderOptions, render_context
from pyrlab.engines.podman import podman_render_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="images (default: all)")
    parser.add_argument("-o", "--output", metavar="DIR", default=None,
                        help="where to write (default: .pyrlab/contexts in the project)")
    parser.add_argument("--podman", action="store_true",
                        help="render for Podman (cache mounts without sharing=locked)")


@dataclass(frozen=True)
class RenderResult:
    written: tuple[tuple[str, Path, str], ...]  # image, folder, input hash

    def to_data(self) -> Any:
        return {"contexts": [{"image": i, "path": str(p), "input_hash": h}
                             for i, p, h in self.written]}

    def to_text(self) -> str:
        return "\n".join(f"{image:<16} {path}" for image, path, _ in self.written)


def run(args: argparse.Namespace) -> RenderResult:
    project = project_from(args)
    # Validates the names; render only those asked for, parents first.
    names = [n for n in project.order(args.images or None) if not args.images or n in args.images]
    out = Path(args.output) if args.output else project.root / ".pyrlab" / "contexts"
    # The same options the Podman engine builds with, so the files match what it builds.
    options = podman_render_options() if args.podman else RenderOptions()
    written = []
    for name in names:
        context = render_context(project, name, options)
        folder = write_context(context, out / name)
        written.append((name, folder, context.input_hash))
    return RenderResult(tuple(written))
