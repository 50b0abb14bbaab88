"""`pyrlab ps`: this project's labs with their ports, URL, uptime and health."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyrlab.engines.select import add_engine_argument
from pyrlab.run.labs import Lab, find_labs, format_duration
from pyrlab.run.session import config_from, engine_from

NAME = "ps"
HELP = "list this project's labs: image, ports, URL, uptime, health"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_engine_argument(parser)


@dataclass(frozen=True)
class PsResult:
    labs: tuple[Lab, ...]
    now: datetime

    def to_data(self) -> Any:
        return [{"image": lab.image, "container": lab.name, "port": lab.port, "url": lab.url,
                 "state": lab.state, "health": lab.health, "status": lab.status,
                 "uptime_seconds": None if lab.uptime(self.now) is None
                 else round(lab.uptime(self.now) or 0.0),
                 "started": lab.started.isoformat() if lab.started else None,
                 "ports": list(lab.published)} for lab in self.labs]

    def to_text(self) -> str:
        if not self.labs:
            return "no labs (start one with `pyrlab up pylab`)"
        header = ("IMAGE", "STATUS", "UPTIME", "URL", "PORTS")
        rows = [header] + [(lab.image, lab.status, format_duration(lab.uptime(self.now)),
                            lab.url if lab.running else "-", ", ".join(lab.published) or "-")
                           for lab in self.labs]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]])
                         for row in rows)


def run(args: argparse.Namespace) -> PsResult:
    config = config_from(args)
    engine = engine_from(args, config)
    labs = find_labs(engine, config)
    # "starting" may only mean that no health check has run yet (Podman without systemd).
    checked = [engine.check_health(lab.name) for lab in labs
               if lab.running and lab.health == "starting"]
    if any(checked):
        labs = find_labs(engine, config)
    return PsResult(tuple(labs), datetime.now(UTC))
