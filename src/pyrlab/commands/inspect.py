"""`pyrlab inspect IMAGE`: what an image holds, from the manifest its build recorded; no lab
is started. `pyrlab inspect --home IMAGE`: what the lab's user installed on top of it, read
from the mounted home folder on the host."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pyrlab import ecosystems
from pyrlab.commands._args import add_platform, config_from, engine_from
from pyrlab.config.model import Config
from pyrlab.contents.home import UserPackage, layer_root, user_packages
from pyrlab.contents.images import image_inventory, image_spec
from pyrlab.contents.model import Inventory
from pyrlab.contents.tables import inspect_table
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import ConfigError, Problem
from pyrlab.platforms import NATIVE, Platform, is_native

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE",
                        help="an image of the project, e.g. pylab (pylab:previous: another tag)")
    parser.add_argument("--home", action="store_true",
                        help="list what the lab's user installed at run time (pip, "
                             "install.packages) in the mounted home, apart from the image")
    add_platform(parser, many=False)
    add_engine_argument(parser)


def inventory_data(inventory: Inventory) -> dict[str, Any]:
    """An inventory as JSON: the image's facts, then each ecosystem's packages."""
    data: dict[str, Any] = {"meta": dataclasses.asdict(inventory.meta)}
    for eco in ecosystems.registered():
        # Every ecosystem's package type is a dataclass: its fields are its JSON.
        data[eco.lock_key] = [dataclasses.asdict(cast("DataclassInstance", p))
                              for p in inventory.packages(eco.name)]
    return data


@dataclass(frozen=True)
class InspectResult:
    ref: str
    inventory: Inventory  # its platform: what the engine says the image is for
    foreign: bool = False  # not the engine's own platform: the text names it too

    def to_data(self) -> Any:
        return {"ref": self.ref, "platform": self.inventory.platform or None,
                **inventory_data(self.inventory)}

    def to_text(self) -> str:
        return inspect_table(self.inventory, stream=sys.stdout,
                             platform=self.inventory.platform if self.foreign else "")


@dataclass(frozen=True)
class HomeResult:
    image: str
    folder: str  # where the image's run-time installs live on the host
    packages: tuple[UserPackage, ...]

    def to_data(self) -> Any:
        return {"image": self.image, "folder": self.folder,
                "python": [dataclasses.asdict(p) for p in self.packages
                           if p.ecosystem == "python"],
                "r": [dataclasses.asdict(p) for p in self.packages if p.ecosystem == "r"]}

    def to_text(self) -> str:
        lines = [f"{self.image}: installed by the lab's user in {self.folder}"]
        for ecosystem, title in (("python", "Python"), ("r", "R")):
            rows = [p for p in self.packages if p.ecosystem == ecosystem]
            if not rows:
                lines.append(f"{title}: none")
                continue
            width = max(len(p.name) for p in rows)
            lines.append(f"{title} ({len(rows)})")
            lines += [f"  {p.name:<{width}}  {p.version}  ({title} {p.runtime})" for p in rows]
        return "\n".join(lines) + "\n"


def home_result(config: Config, image: str, platform: Platform = NATIVE,
                host: Platform = NATIVE) -> HomeResult:
    name = image_spec(config, image).name
    if not config.run.home.strip():
        raise ConfigError(Problem(
            "pyrlab.toml: run.home", "empty: labs mount no home folder, so nothing a user "
            "installs at run time is kept"))
    home = config.path(config.run.home)
    key = config.layer_key(name, platform, host)
    return HomeResult(name, str(layer_root(home, key)), user_packages(home, key))


def run(args: argparse.Namespace) -> InspectResult | HomeResult:
    config = config_from(args)
    platform = args.platform or NATIVE
    if args.home:  # the engine is asked only to tell another platform's layer from its own
        host = NATIVE if platform == NATIVE else engine_from(args, config).platform()
        return home_result(config, args.image, platform, host)
    engine = engine_from(args, config)
    # Its own platform is asked only when one is named (--platform linux/amd64 is it).
    host = NATIVE if platform == NATIVE else engine.platform()
    spec = image_spec(config, args.image, platform, host)
    return InspectResult(spec.ref, image_inventory(engine, spec),
                         foreign=not is_native(platform, host))
