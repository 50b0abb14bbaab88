"""`pyrlab url IMAGE`: the running lab's URL with its token, then those of its other named
ports (TensorBoard, D-Tale…)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._args import add_image, config_from, engine_from
from pyrlab.engines.select import add_engine_argument
from pyrlab.launch.plan import lab_url
from pyrlab.launch.state import read_token, token_path
from pyrlab.run.labs import Service, one_lab


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image(parser)
    add_engine_argument(parser)


@dataclass(frozen=True)
class UrlResult:
    image: str
    url: str  # JupyterLab's, with the token
    port: int
    services: tuple[Service, ...] = ()

    def to_data(self) -> Any:
        return {"image": self.image, "url": self.url,
                "services": [{"name": "lab", "port": self.port, "url": self.url}]
                + [{"name": s.name, "port": s.port, "url": s.url} for s in self.services]}

    def to_text(self) -> str:
        # JupyterLab's URL alone on the first line (`pyrlab url pylab | head -1`).
        return "\n".join([self.url, *(f"{s.name}: {s.url}" for s in self.services)])


def run(args: argparse.Namespace) -> UrlResult:
    config = config_from(args)
    engine = engine_from(args, config)
    lab = one_lab(engine, config, args.image, args.port)
    assert lab.port is not None
    # The token the lab runs with; the file is where it is kept between runs.
    token = lab.token or read_token(token_path(config, lab.name)) or ""
    return UrlResult(lab.image, lab_url(config.run.bind, lab.port, token), lab.port,
                     lab.services)
