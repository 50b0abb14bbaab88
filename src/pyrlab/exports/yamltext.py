"""A small YAML writer for the files pyrlab exports (compose files, workflows, Helm values).

Block style for mappings and lists, and every string double-quoted with escapes, so that
no value — a path, a label, a project's name — can turn into YAML syntax, a number or a
boolean, whatever it holds. Keys are written plain only when they cannot be read as
anything but a string (YAML 1.1 reads a plain `on` or `yes` as true). `Block` marks
pyrlab's own multi-line text (a workflow's script) to be written as a literal block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

Value = None | bool | int | float | str | Sequence["Value"] | Mapping[str, "Value"]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Words YAML 1.1 or 1.2 reads as booleans or null when plain.
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
INDENT = "  "


class Block(str):
    """pyrlab's own multi-line text, written as a literal block (`|`). Never user text."""


def _printable(char: str) -> bool:
    """Characters a double-quoted YAML scalar may hold as they are: the YAML printable set,
    less what YAML 1.1 readers take for line breaks (NEL, LS, PS) and the byte-order mark."""
    code = ord(char)
    if 0x20 <= code <= 0x7E:
        return True
    if code in (0x85, 0x2028, 0x2029, 0xFEFF):
        return False
    return 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def quote(text: str) -> str:
    """`text` as a double-quoted YAML scalar that reads back as exactly `text`."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _printable(char):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    if _PLAIN_KEY.match(key) and key.lower() not in _RESERVED:
        return key
    return quote(key)


def _scalar(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Mapping):
        assert not value
        return "{}"
    assert isinstance(value, Sequence) and not value
    return "[]"


def _nested(value: Value) -> bool:
    """Whether value is written on lines of its own (a non-empty mapping or list)."""
    return isinstance(value, Mapping | list | tuple) and bool(value)


def _block(text: Block, depth: int) -> list[str]:
    pad = INDENT * depth
    indicator = "|" if text.endswith("\n") else "|-"
    lines = text.removesuffix("\n").split("\n")
    assert lines[0][:1] not in (" ", "\t"), "a literal block must not start with a space"
    return [indicator] + [pad + line if line else "" for line in lines]


def _lines(value: Value, depth: int) -> list[str]:
    pad = INDENT * depth
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Block):
                first, *rest = _block(item, depth + 1)
                out += [f"{pad}{_key(key)}: {first}", *rest]
            elif _nested(item):
                out.append(f"{pad}{_key(key)}:")
                out += _lines(item, depth + 1)
            else:
                out.append(f"{pad}{_key(key)}: {_scalar(item)}")
        return out
    assert isinstance(value, list | tuple)
    for item in value:
        if _nested(item):
            # The item's first line goes after the dash; the rest keep its indentation.
            first, *rest = _lines(item, depth + 1)
            out += [f"{pad}- {first.lstrip()}", *rest]
        else:
            out.append(f"{pad}- {_scalar(item)}")
    return out


def dump(data: Mapping[str, Value], *, comment: str = "") -> str:
    """The YAML document for `data` (mappings keep their order), after `comment` lines."""
    head = [f"# {line}".rstrip() for line in comment.splitlines()]
    return "\n".join(head + _lines(data, 0)) + "\n"
