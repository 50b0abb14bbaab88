"""Rendering results: human text or JSON on stdout; messages and progress on stderr.

Commands return Result objects and never print; only this module (and the progress
display) writes to the terminal. With -q (`set_quiet`) only errors reach stderr: notes,
warnings and progress are dropped.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol, TextIO

_quiet = False


class Result(Protocol):
    def to_data(self) -> Any: ...

    def to_text(self) -> str: ...


def set_quiet(quiet: bool) -> None:
    """-q: from now on, stderr carries errors only."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    """Whether -q was given: the progress display and spinners stay silent."""
    return _quiet


def emit(result: Result, *, as_json: bool, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    if as_json:
        json.dump(result.to_data(), stream, indent=2, sort_keys=True)
        stream.write("\n")
    else:
        text = result.to_text()
        if text:
            stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def info(message: str) -> None:
    """A note for the user that is not data (which engine, what was skipped): stderr,
    unless -q."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def error(message: str, hint: str | None = None) -> None:
    lines = message.splitlines() or [""]
    if len(lines) == 1:
        print(f"pyrlab: error: {lines[0]}", file=sys.stderr)
    else:
        print(f"pyrlab: error: {len(lines)} problems:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
    if hint:
        print(f"pyrlab: hint: {hint}", file=sys.stderr)
    sys.stderr.flush()


def error_json(message: str, hint: str | None, exit_code: int,
               stream: TextIO | None = None) -> None:
    """With --json, an error is also an object on stdout, for the program reading it:
    {"ok": false, "message", "hint", "exit_code"} (message: one problem a line)."""
    stream = stream or sys.stdout
    json.dump({"ok": False, "message": message, "hint": hint, "exit_code": exit_code}, stream,
              indent=2, sort_keys=True)
    stream.write("\n")
    stream.flush()
