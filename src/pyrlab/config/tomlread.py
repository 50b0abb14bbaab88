"""Reading TOML: errors located by line, nesting too deep reported as TOML's own error.

A module of its own so that the project file, the user's file and the lock share it (the
user's file is read before the schema that imports it)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from pyrlab.errors import Problem

_AT_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def toml_loads(text: str) -> dict[str, Any]:
    """tomllib.loads, where arrays or tables nested too deeply for tomllib's recursion
    (a few hundred levels) are a TOMLDecodeError too, not a RecursionError."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("arrays or tables nested too deeply") from None


def toml_problem(exc: tomllib.TOMLDecodeError, shown: str, text: str) -> Problem:
    """`exc` as `FILE:LINE: not valid TOML: reason (column N)`: tomllib writes the place
    at the end of its message; the end of the document is the file's last line."""
    message = str(exc)
    where = shown
    at = _AT_RE.search(message)
    if at:
        where = f"{shown}:{at.group(1)}"
        message = f"{message[: at.start()]} (column {at.group(2)})"
    elif message.endswith("(at end of document)"):
        where = f"{shown}:{len(text.splitlines()) or 1}"
        message = message.removesuffix(" (at end of document)") + " (at the end of the file)"
    return Problem(where, f"not valid TOML: {message[:1].lower()}{message[1:]}")
