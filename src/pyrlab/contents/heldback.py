"""Held-back listed packages, as the container's heldback.py reports them.

heldback.py (run by uv-install after a fresh resolution, and by `pyrlab outdated`) prints
one `pyrlab-held-back: {json}` line per finding; the build finds them in the engine's
output, `outdated` in the throwaway container's. What "held back" means and how the holding
requirement is found: see src/pyrlab/container/heldback.py and docs/building.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

MARKER = "pyrlab-held-back: "  # the container script's MARKER


@dataclass(frozen=True)
class HeldBack:
    kind: str  # "held": left behind; "raised": the resolution now takes it newer; "note"
    name: str = ""
    resolved: str = ""  # the version uv's first resolution picked
    newest: str = ""  # the newest release installable for the image's Python
    why: str = ""  # a major version ahead, or uploaded more than 12 months later
    holder: str = ""  # the requirement that holds it back (kind "held")
    to: str = ""  # the version installed instead (kind "raised")
    text: str = ""  # kind "note"

    def describe(self) -> str:
        if self.kind == "note":
            return f"held-back check: {self.text}"
        if self.kind == "raised":
            return (f"{self.name} {self.resolved} -> {self.to}: uv's first resolution held it "
                    f"back ({self.why}); one that keeps it newer exists and was taken")
        # A holder is a requirement uv named, or what the probe found instead (a newer one
        # lowers other listed packages, or there was no time or probe left for it).
        said = self.holder.startswith(("not ", "the resolution with it"))
        return (f"held back: {self.name} {self.resolved}, newest {self.newest} ({self.why}); "
                f"{self.holder if said else f'held by {self.holder}'}")


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
