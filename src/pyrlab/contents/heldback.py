"""Held-back listed packages, as the container's heldback.py reports them.

heldback.py (run by uv-install after a fresh resolution, and by `pyrlab outdated`) prints
one `pyrlab-held-back: {json}` line per finding; the build finds them in the engine's
output, `outdated` in the throwaway container's. What "held back" means and how the holding
requirement is found: see src/pyrlab/container/heldback.py and docs/building.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pyrlab.ecosystems.python import HeldBack

__all__ = ["MARKER", "HeldBack", "from_output", "parse_line"]

MARKER = "pyrlab-held-back: "  # the container script's MARKER


def parse_line(line: str) -> HeldBack | None:
    """The finding a line of output carries (an engine may prefix it), or None."""
    at = line.find(MARKER)
    if at < 0:
        return None
    try:
        data = json.loads(line[at + len(MARKER):])
        return HeldBack(**{k: str(v) for k, v in data.items()
                           if k in HeldBack.__dataclass_fields__})
    except (ValueError, TypeError):
        return None


def from_output(lines: Iterable[str]) -> list[HeldBack]:
    found = []
    for line in lines:
        item = parse_line(line)
        if item is not None and item not in found:
            found.append(item)
    return found
