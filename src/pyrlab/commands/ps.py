"""`pyrlab ps`: this project's labs with their URLs (JupyterLab's and every other named
port's), published ports, uptime and health."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pyrlab.engines.select import add_engine_argument
from pyrlab.run.labs import Lab, find_labs, format_duration
from pyrlab.run.session import config_from, engine_from


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
                 "ports": list(lab.published),
                 "services": [{"name": "lab", "port": lab.port, "url": lab.url}]
                 + [{"name": s.name, "port": s.port, "url": s.url} for s in lab.services],
                 "health_note": lab.health_note or None} for lab in self.labs]

    def to_text(self) -> str:
        if not self.labs:
            return "no labs (start one with `pyrlab up pylab`)"
        header = ("IMAGE", "STATUS", "UPTIME", "URL", "PORTS")
        rows = [header]
        notes = []
        for lab in self.labs:
            own = [entry for entry in lab.published
                   if entry not in {s.published for s in lab.services}]
            rows.append((lab.image, lab.status, format_duration(lab.uptime(self.now)),
                         lab.url if lab.running else "-", ", ".join(own) or "-"))
            # One row per other named port, under its lab: where the host reaches it.
            rows += [(f"  {s.name}", "", "", s.url if lab.running else "-", s.published)
                     for s in lab.services]
            if lab.health_note:
                notes.append(f"note: {lab.name}: health unknown: {lab.health_note}")
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]])
                 for row in rows]
        return "\n".join(lines + notes)


def run(args: argparse.Namespace) -> PsResult:
    config = config_from(args)
    engine = engine_from(args, config)
    labs = find_labs(engine, config)
    # An engine that runs health checks only from systemd timers (Podman) has none run
    # without systemd: its record would say "starting" for ever, or "healthy" long after the
    # server died. Such an engine checks now; one whose daemon checks on its own does not.
    runs = {lab.name: engine.check_health(lab.name) for lab in labs
            if lab.running and lab.health is not None}
    if any(run.ran for run in runs.values()):
        labs = find_labs(engine, config)
    labs = [replace(lab, health_note=runs[lab.name].problem)
            if lab.name in runs and runs[lab.name].problem else lab for lab in labs]
    return PsResult(tuple(labs), datetime.now(UTC))
