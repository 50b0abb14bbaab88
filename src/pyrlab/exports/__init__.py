"""What `pyrlab export KIND` writes: one module per kind, each turning the configuration into
the text of a file for another tool (a compose file, a CI workflow, a JupyterHub configuration, Helm values).

Every kind module has HELP, add_arguments(parser) and export(config, args) → Exported; the
text itself comes from pure functions of that module, so that tests can read it without an
engine. commands/export.py writes it to -o FILE or stdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Exported:
    text: str  # the file's content
    summary: str  # one line for the user: what the file holds ("compose file for pylab, rlab")
    notes: tuple[str, ...] = ()  # what the user should know (files pyrlab wrote beside it…)
    data: Mapping[str, Any] = field(default_factory=dict)  # for --json, besides path and kind
