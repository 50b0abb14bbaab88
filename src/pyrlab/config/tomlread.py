"""Reading TOML: errors located by line, nesting too deep reported as TOML's own error;
keys and kinds of values as TOML writes them, for messages.

A module of its own so that the project file, the user's file and the lock share it (the
user's file is read before the readers that import it)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
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


_BARE_PART = r"[A-Za-z0-9_-]+"
_KEY_PART = rf"(?:{_BARE_PART}|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')"
_DOTTED = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"[ \t]*\[\[?[ \t]*({_DOTTED})[ \t]*\]\]?")
_KEYVAL_RE = re.compile(rf"[ \t]*({_DOTTED})[ \t]*=")
_PART_RE = re.compile(_KEY_PART)
_INDEX_RE = re.compile(r"(?:\[[0-9]+\])+$")


def key_parts(dotted: str) -> tuple[str, ...]:
    """`images."a.b".ports` → ("images", "a.b", "ports"): a dotted key as TOML reads it."""
    parts = []
    for match in _PART_RE.finditer(dotted):
        part = match.group()
        try:
            parts.append(tomllib.loads(f"k = {part}")["k"] if part[0] in "\"'" else part)
        except tomllib.TOMLDecodeError:  # a key as messages write it, not as TOML can
            return ()
    return tuple(parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line each key and table of TOML `text` is first written on.

    A key in an inline table or an array is not listed: it is on its parent's line, or
    within the lines of its parent's value. Only meant for text tomllib has read."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    depth = 0  # open [ and { of a value that goes on over lines
    quote = ""  # the open multi-line string's delimiter
    for number, line in enumerate(text.splitlines(), start=1):
        start = 0
        if not quote and depth == 0:
            header = _HEADER_RE.match(line)
            keyval = None if header else _KEYVAL_RE.match(line)
            if header:
                table = key_parts(header.group(1))
                _written(lines, table, number)
                continue
            if keyval:
                _written(lines, table + key_parts(keyval.group(1)), number)
                start = keyval.end()
        depth, quote = _scan_value(line, start, depth, quote)
    return lines


def _written(lines: dict[tuple[str, ...], int], key: tuple[str, ...], number: int) -> None:
    """`key`, and each table above it that no line wrote before, are on line `number`
    (`[images.pylab]` is where `images` first appears)."""
    for end in range(1, len(key) + 1):
        lines.setdefault(key[:end], number)


def _scan_value(line: str, i: int, depth: int, quote: str) -> tuple[int, str]:
    """Bracket depth and open multi-line string after the value text of `line` from `i`."""
    while i < len(line):
        if quote:
            end = line.find(quote, i)
            if quote == '"""':  # a backslash escapes the quote after it
                while end > 0 and _escaped(line, end):
                    end = line.find(quote, end + 1)
            if end < 0:
                return depth, quote
            i, quote = end + 3, ""
            continue
        char = line[i]
        if char == "#":
            break
        if line.startswith(('"""', "'''"), i):
            quote = line[i:i + 3]
            i += 3
            continue
        if char in "\"'":
            i += 1
            while i < len(line) and line[i] != char:
                i += 2 if char == '"' and line[i] == "\\" else 1
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        i += 1
    return depth, quote


def _escaped(line: str, at: int) -> bool:
    backslashes = len(line[:at]) - len(line[:at].rstrip("\\"))
    return backslashes % 2 == 1


def line_of(lines: Mapping[tuple[str, ...], int], key: str) -> int | None:
    """The line of dotted `key` (an element `base.debs[0]` is its array's), or of the
    nearest table or key above it that is written in the file; None when none is."""
    parts = key_parts(_INDEX_RE.sub("", key))
    while parts:
        if parts in lines:
            return lines[parts]
        parts = parts[:-1]
    return None


def toml_key(part: str) -> str:
    """One part of a dotted key as TOML writes it: bare, or quoted (`images."a.b"`)."""
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part, ensure_ascii=False)


def toml_kind(value: Any) -> str:
    """What a TOML value is, in TOML's words ("an integer", "a table"), for messages."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), "a date or time")
