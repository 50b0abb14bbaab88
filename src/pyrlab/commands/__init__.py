"""One module per verb. Each has NAME, HELP, add_arguments(parser) and run(args) → Result."""

from __future__ import annotations

from types import ModuleType

from pyrlab.commands import (
    bootstrap,
    build,
    check,
    clean,
    down,
    init,
    logs,
    ps,
    render,
    restart,
    shell,
    up,
    url,
)

COMMANDS: list[ModuleType] = [
    init, check, render, bootstrap, build, clean, up, down, restart, ps, logs, shell, url,
]
