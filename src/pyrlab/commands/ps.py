"""`pyrlab ps [--all-projects]`: this project's labs (or every project's, each with its
folder) with their URLs (JupyterLab's and every other named port's), published ports,
uptime and health. A PLATFORM column appears when a lab of another platform than the
engine's own is listed (`up --platform linux/arm64`); JSON always names each lab's."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pyrlab.commands._args import config_from, engine_from
from pyrlab.engines.select import add_engine_argument
from pyrlab.run.labs import Lab, find_labs, format_duration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all-projects", action="store_true",
                        help="the running labs of every project on this engine, each with "
                        "its project folder")
    add_engine_argument(parser)


@dataclass(frozen=True)
class PsResult:
    labs: tuple[Lab, ...]
    now: datetime
    all_projects: bool = False
    host: str = ""  # the engine's own platform: that of every lab without one of its own

    def platform(self, lab: Lab) -> str:
        return lab.platform or self.host

    def to_data(self) -> Any:
        return [{"image": lab.image, "container": lab.name, "project_dir": lab.project_dir,
                 "platform": self.platform(lab) or None, "port": lab.port, "url": lab.url,
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
            if self.all_projects:
                return "no lab of any project is running"
            return "no labs (start one with `pyrlab up pylab`)"
        # Only where another platform's lab is listed: one platform's table stays as it was.
        platforms = any(lab.platform for lab in self.labs)
        header: tuple[str, ...] = ("IMAGE", *(("PLATFORM",) if platforms else ()), "STATUS",
                                   "UPTIME", "URL", "PORTS")
        first: tuple[str, ...] = ("PROJECT",) if self.all_projects else ()
        rows = [first + header]
        notes = []
        for lab in self.labs:
            own = [entry for entry in lab.published
                   if entry not in {s.published for s in lab.services}]
            where = (lab.project_dir or "-",) if self.all_projects else ()
            platform = (self.platform(lab) or "-",) if platforms else ()
            rows.append((*where, lab.image, *platform, lab.status,
                         format_duration(lab.uptime(self.now)),
                         lab.url if lab.running else "-", ", ".join(own) or "-"))
            # One row per other named port, under its lab: where the host reaches it.
            rows += [(*("",) * len(where), f"  {s.name}", *("",) * len(platform), "", "",
                      s.url if lab.running else "-", s.published) for s in lab.services]
            if lab.health_note:
                notes.append(f"note: {lab.name}: health unknown: {lab.health_note}")
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]])
                 for row in rows]
        return "\n".join(lines + notes)


def run(args: argparse.Namespace) -> PsResult:
    config = config_from(args)
    engine = engine_from(args, config)
    every = bool(getattr(args, "all_projects", False))
    scope = None if every else config

    def find() -> list[Lab]:
        found = find_labs(engine, scope)
        return [lab for lab in found if lab.running] if every else found

    labs = find()
    # An engine that runs health checks only from systemd timers (Podman) has none run
    # without systemd: its record would say "starting" for ever, or "healthy" long after the
    # server died. Such an engine checks now; one whose daemon checks on its own does not.
    runs = {lab.name: engine.check_health(lab.name) for lab in labs
            if lab.running and lab.health is not None}
    if any(run.ran for run in runs.values()):
        labs = find()
    labs = [replace(lab, health_note=runs[lab.name].problem)
            if lab.name in runs and runs[lab.name].problem else lab for lab in labs]
    # The engine's own platform is asked only when there is a lab to name it for.
    host = engine.platform() if labs else ""
    return PsResult(tuple(labs), datetime.now(UTC), every, host)
