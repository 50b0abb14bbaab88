"""pyrlab.lock: exactly what each image holds, for people to commit and read in diffs.

TOML, one table per image and ecosystem, one package per line, everything sorted, so that
`git diff pyrlab.lock` reads as "numpy 2.3.4 → 2.3.5 in pylab". It is read with tomllib and
written by the small deterministic writer below (the same inventories give the same
bytes). A lock file is input a person may edit or merge, so every problem in it is
reported as `pyrlab.lock:LINE: what is wrong`, all of them at once.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from pyrlab import ecosystems
from pyrlab.config.tomlread import toml_kind, toml_loads, toml_problem
from pyrlab.config.validators import IMAGE_NAME_RE
from pyrlab.contents.model import Inventory, Meta, duplicate_names
from pyrlab.ecosystems.base import NATIVE, Ecosystem, Package, Platform, sort_key
from pyrlab.errors import ConfigError, Problem
from pyrlab.safewrite import has_pyrlab_header, write_file

LOCK_NAME = "pyrlab.lock"
LOCK_VERSION = 1
HEADER = (
    f"# {LOCK_NAME} — exactly what each image holds; written by `pyrlab build` and"
    " `pyrlab lock`.\n# Commit it: its diff shows what changed in each image.\n"
)



def _meta_keys() -> tuple[tuple[str, str], ...]:
    """Image facts in the order they are written: (TOML key, Meta attribute); each
    ecosystem's (the OS, the interpreters) between pyrlab's own."""
    return (("input-hash", "input_hash"), ("base-id", "base_id"),
            *(pair for eco in ecosystems.registered() for pair in eco.contents.lock_meta),
            ("pyrlab", "pyrlab_version"))


def section_path(image: str, eco: Ecosystem, platform: Platform = NATIVE) -> tuple[str, ...]:
    """Where the packages of one image and ecosystem are in the lock (its TOML table)."""
    if platform != NATIVE:
        raise ValueError(f"no lock section for platform {platform!r}: one platform per image")
    return ("images", image, eco.lock_key)


_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


class LockError(ConfigError):
    """pyrlab.lock cannot be read, or says something pyrlab cannot use."""


# --- reading ----------------------------------------------------------------------------

def read_lock(path: Path, *, shown: str | None = None) -> dict[str, Inventory]:
    """Every image's inventory in the lock file at `path` ({} when there is none yet).
    `shown` is how messages name the file (default: `path` as given)."""
    shown = shown or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise LockError(Problem(shown, f"cannot read: {reason}")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LockError(Problem(f"{shown}:{line}", "not valid UTF-8")) from None
    return parse_lock(text, shown)


def parse_lock(text: str, shown: str = LOCK_NAME) -> dict[str, Inventory]:
    """The inventories in lock file text; `shown` names the file in messages."""
    try:
        data = toml_loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise LockError(toml_problem(exc, shown, text),
                        hint=f"fix the line, or delete {LOCK_NAME} and run `pyrlab lock`"
                        ) from None
    reader = _LockReader(shown, text)
    inventories = reader.lock(data)
    if reader.problems:
        raise LockError(reader.problems)
    return inventories


class _LockReader:
    def __init__(self, shown: str, text: str) -> None:
        self.shown = shown
        self.text = text
        self.problems: list[Problem] = []

    @functools.cached_property
    def lines(self) -> Mapping[tuple[str, ...], int]:
        """Where each key is defined: only a problem needs it (every build reads the lock)."""
        return key_lines(self.text)

    def problem(self, path: tuple[str, ...], message: str) -> None:
        """A problem at the line that defines `path`, or its nearest enclosing table."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                self.problems.append(Problem(f"{self.shown}:{line}", message))
                return
        self.problems.append(Problem(self.shown, message))

    def table(self, data: Mapping[str, object], path: tuple[str, ...]) -> dict[str, object]:
        value = data.get(path[-1], {})
        if isinstance(value, dict):
            return value
        self.problem(path, f"'{_dotted(path)}' must be a table, not {toml_kind(value)}")
        return {}

    def unknown_keys(self, data: Mapping[str, object], known: set[str],
                     path: tuple[str, ...]) -> None:
        for key in data:
            if key not in known:
                where = f"in [{_dotted(path)}]" if path else "at the top level"
                self.problem((*path, key), f"unknown key '{key}' {where}")

    def lock(self, data: dict[str, object]) -> dict[str, Inventory]:
        self.unknown_keys(data, {"version", "images"}, ())
        version = data.get("version")
        if version is None:
            self.problem((), f"missing 'version = {LOCK_VERSION}' at the top")
            return {}
        if type(version) is not int or version != LOCK_VERSION:
            self.problem(("version",), f"unknown lock file version {version!r} (this pyrlab "
                         f"reads version {LOCK_VERSION}; a newer pyrlab wrote it?)")
            return {}
        images = self.table(data, ("images",))
        inventories = {}
        for name, value in images.items():
            path = ("images", name)
            if not IMAGE_NAME_RE.match(name):
                self.problem(path, f"not a valid image name: '{name}'")
            elif not isinstance(value, dict):
                self.problem(path, f"'{_dotted(path)}' must be a table, not {toml_kind(value)}")
            else:
                inventories[name] = self.inventory(name, value, path)
        return inventories

    def inventory(self, name: str, data: dict[str, object], path: tuple[str, ...]) -> Inventory:
        meta_keys = _meta_keys()
        registered = ecosystems.registered()
        self.unknown_keys(data, {key for key, _ in meta_keys}
                          | {eco.lock_key for eco in registered}, path)
        facts = {}
        for key, attribute in meta_keys:
            value = data.get(key)
            if not isinstance(value, str):
                found = "missing" if value is None else f"{toml_kind(value)}, not a string"
                self.problem((*path, key), f"'{key}' of image '{name}': {found}")
                value = ""
            facts[attribute] = value
        meta = Meta(image=name, **facts)
        return Inventory(meta, {eco.name: self.packages(data, name, eco) for eco in registered})

    def packages(self, data: dict[str, object], image: str,
                 eco: Ecosystem) -> tuple[Package, ...]:
        path = section_path(image, eco)
        shape = eco.contents.value_shape
        packages: list[Package] = []
        for name, value in self.table(data, path).items():
            at = (*path, name)
            if not name or _has_space(name):
                self.problem(at, f"not a valid package name: {_toml_string(name)}")
                continue
            if not isinstance(value, str):
                self.problem(at, f"'{name}' must be a string {shape}, not {toml_kind(value)}")
                continue
            parsed = eco.contents.parse_lock_value(name, value)
            if parsed is None:
                self.problem(at, f"'{name}' = {_toml_string(value)}: expected {shape}")
            elif isinstance(parsed, str):
                self.problem(at, parsed)
            else:
                packages.append(parsed)
        for duplicate in duplicate_names(packages):
            self.problem(path, f"[{_dotted(path)}] lists '{duplicate}' twice")
        return tuple(packages)


def _has_space(text: str) -> bool:
    return any(char.isspace() for char in text)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(p if _BARE_KEY_RE.fullmatch(p) else _toml_string(p) for p in path)


# --- where keys are: TOML's parser does not say, so the text is scanned ----------------

def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (1-based) that first defines each table and key path in TOML `text`, and
    each table a dotted key opens implicitly. Values are not parsed: a line that does not
    start with a key (an array's continuation, a multi-line string's body) is skipped."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    closing: str | None = None  # the delimiter of the multi-line string we are inside
    for number, line in enumerate(text.splitlines(), start=1):
        if closing is not None:
            if closing in line:
                closing = None
            continue
        stripped = line.lstrip()
        if stripped.startswith("[["):
            continue  # arrays of tables: not in a lock file's shape
        if stripped.startswith("["):
            parsed = _parse_key(stripped, 1)
            if parsed is not None:
                table = tuple(parsed[0])
                _record(lines, table, number)
            continue
        parsed = _parse_key(stripped, 0)
        if parsed is None or not stripped[parsed[1]:].startswith("="):
            continue
        _record(lines, (*table, *parsed[0]), number)
        value = stripped[parsed[1] + 1:].lstrip()
        for delimiter in ('"""', "'''"):
            if value.startswith(delimiter) and delimiter not in value[3:]:
                closing = delimiter
    return lines


def _record(lines: dict[tuple[str, ...], int], path: tuple[str, ...], number: int) -> None:
    for end in range(1, len(path) + 1):
        lines.setdefault(path[:end], number)


def _parse_key(text: str, pos: int) -> tuple[list[str], int] | None:
    """A dotted key at `text[pos:]`: its parts and the position after it (and its spaces)."""
    parts: list[str] = []
    while True:
        pos = _skip_blanks(text, pos)
        if text.startswith('"', pos):
            end = _basic_string_end(text, pos)
            if end is None:
                return None
            try:
                part = tomllib.loads(f"k = {text[pos:end]}")["k"]
            except tomllib.TOMLDecodeError:
                return None
            parts.append(str(part))
            pos = end
        elif text.startswith("'", pos):
            end = text.find("'", pos + 1)
            if end < 0:
                return None
            parts.append(text[pos + 1:end])
            pos = end + 1
        else:
            bare = _BARE_KEY_RE.match(text, pos)
            if bare is None:
                return None
            parts.append(bare.group())
            pos = bare.end()
        pos = _skip_blanks(text, pos)
        if not text.startswith(".", pos):
            return parts, pos
        pos += 1


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _basic_string_end(text: str, start: int) -> int | None:
    """The position after the `"…"` string that starts at `start` (escapes skipped)."""
    pos = start + 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == '"':
            return pos + 1
        else:
            pos += 1
    return None


# --- writing ----------------------------------------------------------------------------

def render_lock(inventories: Mapping[str, Inventory]) -> str:
    """The lock file text for `inventories` ({image name: inventory}); same input, same text."""
    out = [HEADER, f"version = {LOCK_VERSION}\n"]
    for name in sorted(inventories):
        inventory = inventories[name]
        if inventory.meta.image != name:
            raise ValueError(f"inventory of {inventory.meta.image!r} filed under {name!r}")
        out.append(f"\n[images.{_key(name)}]\n")
        out.extend(f"{key} = {_toml_string(getattr(inventory.meta, attribute))}\n"
                   for key, attribute in _meta_keys())
        for eco in ecosystems.registered():
            # One platform per lock so far: its sections are those of today, whichever
            # platform the inventory is of (a lock per platform is issue 23, step 5).
            out.append(f"\n[{_dotted(section_path(name, eco))}]\n")
            out.extend(_package_lines(eco, inventory.packages(eco.name)))
    return "".join(out)


def _package_lines(eco: Ecosystem, packages: tuple[Package, ...]) -> Iterator[str]:
    for package in sorted(packages, key=lambda p: sort_key(p.name)):
        yield f"{_key(package.name)} = {_toml_string(eco.contents.lock_value(package))}\n"


def _key(key: str) -> str:
    return key if _BARE_KEY_RE.fullmatch(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def is_pyrlab_lock(content: bytes) -> bool:
    """Whether a file is a lock pyrlab wrote: its header says so, or it reads as one (a lock
    whose comment was edited away). A lock a merge broke keeps its header."""
    if has_pyrlab_header(content):
        return True
    try:
        parse_lock(content.decode("utf-8"))
    except (UnicodeDecodeError, LockError):
        return False
    return True


def write_lock(path: Path, inventories: Mapping[str, Inventory], *,
               shown: str | None = None, force: bool = False) -> None:
    """Write the lock file at `path` atomically: readers see the old file or the new one.
    A file that already says the same is left untouched; one that is no lock of pyrlab's
    is replaced only with `force` (see safewrite)."""
    shown = shown or str(path)
    data = render_lock(inventories).encode("utf-8")
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass  # missing or unreadable: write it
    try:
        # A new file is 0o666 less the umask, like any a person creates: it is committed.
        write_file(path, data, force=force, ours=is_pyrlab_lock, shown=shown,
                   hint="move it away, or replace it with `pyrlab lock --force`")
    except ConfigError as exc:
        raise LockError(exc.problems, hint=exc.hint) from None


def update_lock(path: Path, changed: Mapping[str, Inventory], *,
                shown: str | None = None) -> dict[str, Inventory]:
    """Replace the sections of the images in `changed`, keep the others; returns the whole
    lock as written."""
    inventories = read_lock(path, shown=shown)
    inventories.update(changed)
    write_lock(path, inventories, shown=shown)
    return inventories

