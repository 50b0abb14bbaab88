"""One module per verb. Each has NAME, HELP, add_arguments(parser) and run(args) → Result."""

from __future__ import annotations

from types import ModuleType

from pyrlab.commands import (
    bootstrap,
    build,
    check,
    clean,
    diff,
    down,
    export,
    init,
    inspect,
    lock,
    logs,
    outdated,
    ps,
    render,
    restart,
    rollback,
    sbom,
    shell,
    test,
    up,
    upgrade,
    url,
)

COMMANDS: list[ModuleType] = [
    init, check, render, bootstrap, build, test, clean, up, down, restart, ps, logs, shell, url,
    inspect, lock, diff, sbom, export, outdated, upgrade, rollback,
]
