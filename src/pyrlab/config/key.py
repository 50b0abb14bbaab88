"""The id of a lab project folder, on every image it builds and every lab it starts.

A module of its own, so that the commands that only find labs by it (`down`, `ps`) do not
import the package lists' parsing with it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def project_key(root: Path) -> str:
    """A short stable id for a lab project folder, put on every image it builds."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
