"""`pyrlab outdated [IMAGE…]`: what `pyrlab upgrade` would change, package by package.

Read-only: nothing is built or tagged. Each built image is asked, in a throwaway container
of itself, what its indexes offer now: uv (as builds resolve), apt and R's repository (see
contents/upgradable.py). Listed Python packages that the resolution holds back are named
with the requirement that holds them."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._args import engine_from, project_from
from pyrlab.contents.images import image_inventory, image_spec
from pyrlab.contents.model import Outdated
from pyrlab.contents.tables import outdated_table
from pyrlab.contents.upgradable import upgradable
from pyrlab.ecosystems.base import Note
from pyrlab.engines.select import add_engine_argument
from pyrlab.imagebuild.executor import network_mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="images to check (default: every image of the project)")
    parser.add_argument("--network-host", action="store_true",
                        help="ask with host networking (automatic when a proxy in "
                        "pyrlab.toml is on 127.0.0.1)")
    add_engine_argument(parser)


@dataclass(frozen=True)
class OutdatedResult:
    rows: tuple[Outdated, ...]
    checked: tuple[str, ...]
    not_built: tuple[str, ...]
    held_back: tuple[tuple[str, Note], ...] = ()  # (image, finding)

    def to_data(self) -> Any:
        return {"checked": list(self.checked), "not_built": list(self.not_built),
                "outdated": [row.to_json() for row in self.rows],
                "held_back": [{"image": image, **h.to_json()} for image, h in self.held_back]}

    def to_text(self) -> str:
        lines = [outdated_table(self.rows, stream=sys.stdout).rstrip("\n")]
        lines += [f"{image}: {h.describe()}" for image, h in self.held_back]
        lines += [f"{name}: not built, not checked (`pyrlab build {name}`)"
                  for name in self.not_built]
        return "\n".join(lines)


def find_outdated(args: argparse.Namespace) -> OutdatedResult:
    project = project_from(args)
    engine = engine_from(args, project.config)
    network_host, _ = network_mode(project.config.proxy, args.network_host)
    rows: list[Outdated] = []
    checked: list[str] = []
    not_built: list[str] = []
    held_back: list[tuple[str, Note]] = []
    for name in args.images or list(project.config.images):
        spec = image_spec(project.config, name)
        info = engine.image(spec.ref)
        if info is None:
            not_built.append(name)
            continue
        inventory = image_inventory(engine, spec)
        found, held = upgradable(project, engine, name, spec.ref, inventory,
                                 network_host=network_host)
        rows += found
        held_back += [(name, h) for h in held]
        checked.append(name)
    return OutdatedResult(tuple(rows), tuple(checked), tuple(not_built), tuple(held_back))


def run(args: argparse.Namespace) -> OutdatedResult:
    return find_outdated(args)
