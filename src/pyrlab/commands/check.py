"""`pyrlab check`: validate the configuration, every list and the image graph (no engine).

It names the engine a build would use, chosen as build chooses (--engine, PYRLAB_ENGINE,
the config's `engine`), without running it: "auto" is left to the build to detect."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab import ecosystems
from pyrlab.commands._common import project_from
from pyrlab.config.model import Config
from pyrlab.config.project import Project
from pyrlab.engines.select import add_engine_argument, named_engine
from pyrlab.errors import RunError
from pyrlab.launch.plan import plan_lab
from pyrlab.launch.safety import describe, refusals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_engine_argument(parser)


@dataclass(frozen=True)
class CheckResult:
    project: Project
    # What `up` would refuse without --allow-unsafe (launch/safety.py): valid, but worth knowing
    # before starting a project that came from someone else.
    unsafe: tuple[str, ...] = ()
    engine: tuple[str, str] = ("auto", "auto-detection")  # (name, where the choice came from)

    def to_data(self) -> Any:
        config = self.project.config
        return {
            "ok": True,
            "project": str(config.root),
            "name": config.name,  # "" with bare names
            "images": {
                name: {
                    "from": image.parent or config.base.image,
                    **{eco.list_key: len(self.project.lists[name].of(eco.name))
                       for eco in ecosystems.registered()},
                    "ports": dict(image.ports),
                }
                for name, image in config.images.items()
            },
            "order": self.project.order(),
            "overrides": dict(config.overrides),
            "needs_allow_unsafe": list(self.unsafe),
            "engine": {"name": self.engine[0], "source": self.engine[1]},
        }

    def to_text(self) -> str:
        config = self.project.config
        lines = [f"ok: {config.root}"]
        for name in self.project.order():
            image = config.images[name]
            lists = self.project.lists[name]
            parts = [f"{len(lists.of(eco.name))} {eco.grammar.count_label}"
                     for eco in ecosystems.registered()]
            lines.append(f"  {name:<16} from {image.parent or config.base.image}: "
                         + ", ".join(parts))
        name, source = self.engine
        lines.append("engine: auto-detected by each build (docker, else podman)"
                     if name == "auto" else f"engine: {name}, from {source}")
        lines += [f"needs `pyrlab up --allow-unsafe`: {line}" for line in self.unsafe]
        return "\n".join(lines)


def unsafe_settings(config: Config) -> tuple[str, ...]:
    """What starting each lab of the project would need --allow-unsafe for, once each."""
    found: list[str] = []
    for name, image in config.images.items():
        if image.lab_port is None:
            continue
        try:
            plan = plan_lab(config, name, token="" if config.run.allow_no_token else "-")
        except RunError:  # a mount path, a token-less lab on another address: `up` says
            continue
        for refusal in refusals(config, plan):
            line = describe(config, refusal)
            if line not in found:
                found.append(line)
    return tuple(found)


def run(args: argparse.Namespace) -> CheckResult:
    # Problems raise one ConfigError listing all of them; the CLI prints it and exits 3.
    project = project_from(args)
    config = project.config
    engine = named_engine(args.engine, config.engine, config_source=config.source_of("engine"))
    return CheckResult(project, unsafe_settings(config), engine)
