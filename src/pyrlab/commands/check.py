"""`pyrlab check`: validate the configuration, every list and the image graph (no engine)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._common import project_from
from pyrlab.config.project import Project

NAME = "check"
HELP = "validate pyrlab.toml, the package lists and the image graph (no engine needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True)
class CheckResult:
    project: Project

    def to_data(self) -> Any:
        config = self.project.config
        return {
            "ok": True,
            "project": str(config.root),
            "images": {
                name: {
                    "from": image.parent or config.base.image,
                    "debs": len(self.project.lists[name].debs),
                    "requirements": len(self.project.lists[name].requirements),
                    "r_packages": len(self.project.lists[name].r_packages),
                    "ports": dict(image.ports),
                }
                for name, image in config.images.items()
            },
            "order": self.project.order(),
            "overrides": dict(config.overrides),
        }

    def to_text(self) -> str:
        config = self.project.config
        lines = [f"ok: {config.root}"]
        for name in self.project.order():
            image = config.images[name]
            lists = self.project.lists[name]
            parts = [f"{len(lists.debs)} debs", f"{len(lists.requirements)} python",
                     f"{len(lists.r_packages)} R"]
            lines.append(f"  {name:<16} from {image.parent or config.base.image}: "
                         + ", ".join(parts))
        return "\n".join(lines)


def run(args: argparse.Namespace) -> CheckResult:
    # Problems raise one ConfigError listing all of them; the CLI prints it and exits 3.
    return CheckResult(project_from(args))
