"""`pyrlab inspect IMAGE`: what an image holds, from the manifest its build recorded; no lab
is started."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

from pyrlab.engines.select import add_engine_argument
from pyrlab.inventory.images import image_inventory, image_spec
from pyrlab.inventory.model import ECOSYSTEMS, Inventory
from pyrlab.inventory.tables import inspect_table
from pyrlab.run.session import config_from, engine_from

NAME = "inspect"
HELP = "show what an image holds (Debian, Python and R packages) without starting it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE",
                        help="an image of the project, e.g. pylab (pylab:previous: another tag)")
    add_engine_argument(parser)


def inventory_data(inventory: Inventory) -> dict[str, Any]:
    """An inventory as JSON: the image's facts, then each ecosystem's packages."""
    data: dict[str, Any] = {"meta": dataclasses.asdict(inventory.meta)}
    for ecosystem in ECOSYSTEMS:
        data[ecosystem] = [dataclasses.asdict(p) for p in inventory.packages(ecosystem)]
    return data


@dataclass(frozen=True)
class InspectResult:
    ref: str
    inventory: Inventory

    def to_data(self) -> Any:
        return {"ref": self.ref, **inventory_data(self.inventory)}

    def to_text(self) -> str:
        return inspect_table(self.inventory, stream=sys.stdout)


def run(args: argparse.Namespace) -> InspectResult:
    config = config_from(args)
    spec = image_spec(config, args.image)
    return InspectResult(spec.ref, image_inventory(engine_from(args, config), spec))
