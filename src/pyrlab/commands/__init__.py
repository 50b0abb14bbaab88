"""One module per verb. Each has NAME, HELP, add_arguments(parser) and run(args) → Result."""

from __future__ import annotations

from types import ModuleType

from pyrlab.commands import check, init, render

COMMANDS: list[ModuleType] = [init, check, render]
