"""Version order by ecosystem: each ecosystem's `contents.compare` (see pyrlab.ecosystems).

`compare` is kept for imagebuild/pins.py until it asks the ecosystem part itself.
"""

from __future__ import annotations

from pyrlab.contents.model import ecosystem


def compare(key: str, a: str, b: str) -> int:
    """Negative, zero or positive as version `a` is below, equal to or above `b` in the
    order of the ecosystem `key` (its name, or its lock key)."""
    return ecosystem(key).contents.compare(a, b)
