"""`pyrlab down [IMAGE|--all]`: stop and remove labs; notebooks, home and token stay."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._args import add_image, config_from, engine_from
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import RunError, UsageError
from pyrlab.run.labs import find_labs
from pyrlab.run.start import stop_lab


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image(parser, optional=True)
    parser.add_argument("--all", action="store_true", help="every lab of this project")
    add_engine_argument(parser)


@dataclass(frozen=True)
class DownResult:
    removed: tuple[str, ...]
    image: str | None

    def to_data(self) -> Any:
        return {"removed": list(self.removed)}

    def to_text(self) -> str:
        if not self.removed:
            return f"no lab of {self.image} to stop" if self.image else "no lab to stop"
        return "\n".join(f"stopped and removed {name}" for name in self.removed)


def run(args: argparse.Namespace) -> DownResult:
    if bool(args.image) == bool(args.all):
        raise UsageError("name one image (pyrlab down pylab) or use --all")
    config = config_from(args)
    if args.image and args.image not in config.images:
        raise RunError(f"unknown image '{args.image}' (known: {', '.join(config.images)})")
    engine = engine_from(args, config)
    labs = [lab for lab in find_labs(engine, config, args.image)
            if args.port is None or lab.port == args.port]
    removed = []
    for lab in labs:
        stop_lab(engine, lab)
        removed.append(lab.name)
    return DownResult(tuple(removed), args.image)
