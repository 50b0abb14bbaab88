"""Package lists → validated entries, every problem located by file and line.

A list is one entry per line (in a Python list, a line ending in `\\` goes on with the
next, as in pip); `#` starts a comment (at the start of a line or after whitespace) and
blank lines are ignored. Each ecosystem has a strict grammar (its `Grammar`, in
pyrlab.ecosystems), and characters a shell would act on are refused outright: nothing from a list is pasted into a command (the
normalised `Entry.text` of every line is written into the build context, in the list's
order, and read by the installer), so this is a second wall, and it makes mistakes and injection attempts visible
at `pyrlab check` instead of halfway through a build.

Python lists may include others with `-r FILE` (relative to the including file; the
grammar's `option` says which lines include what); no other pip option is accepted, since
indexes and proxies belong in pyrlab.toml. Every file read,
includes too, must lie inside the project folder after symlinks are resolved; that is
checked before a file is opened (a project may come from someone else).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyrlab.config.confine import outside, regular_file
from pyrlab.ecosystems.base import Ecosystem, Entry, Include
from pyrlab.errors import Problem
from pyrlab.platforms import SUPPORTED


@dataclass(frozen=True)
class ParsedList:
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]
    files: tuple[Path, ...]  # every file read, includes too, in read order
    warnings: tuple[Problem, ...] = ()  # harmless: an exact duplicate, a merged entry
    # Every valid line as written, in order, includes in place, each normalised on its own
    # but none merged or dropped: what the installer reads (a resolver's result may depend
    # on the order and shape of its input: uv's does), while `entries` serve everything
    # that asks what a package is (the gate, the lock, --locked's checks).
    lines: tuple[Entry, ...] = ()


# Characters (and pairs) a shell would act on; `;` is also PEP 508's marker separator.
_SHELL_CHARS = frozenset("`$|&\\;")
_SHELL_PAIRS = ("<(", ">(")
_COMMENT_RE = re.compile(r"(?:^|[ \t])#.*$")
_COMMENT_LINE_RE = re.compile(r"^\s*#")  # pip: such a line never continues
# Far beyond any real entry, and far below what one command-line argument may hold (the
# lists also travel in an image label, an argument of the engine's build command).
MAX_LINE = 4096
# Far beyond any real list tree, and far below Python's recursion limit.
MAX_INCLUDE_DEPTH = 50


def parse_lists(paths: Sequence[Path], eco: Ecosystem, *, root: Path) -> ParsedList:
    """Read `paths` in order as lists of `eco`; every problem is returned, none raised."""
    parser = _Parser(eco, root)
    for path in paths:
        parser.read_top(path)
    return ParsedList(
        entries=tuple(parser.entries),
        problems=tuple(parser.problems),
        files=tuple(parser.files),
        warnings=tuple(parser.warnings),
        lines=tuple(parser.lines),
    )


def _shown(path: Path, root: Path) -> str:
    """`path` as messages show it: relative to `root` when it lies under it."""
    lexical_path = Path(os.path.normpath(path.absolute()))
    lexical_root = Path(os.path.normpath(root.absolute()))
    if lexical_path.is_relative_to(lexical_root):
        return str(lexical_path.relative_to(lexical_root))
    resolved_path, resolved_root = path.resolve(), root.resolve()
    if resolved_path.is_relative_to(resolved_root):
        return str(resolved_path.relative_to(resolved_root))
    return str(path)


class _NotRegularFile(OSError):
    """A FIFO, a device or a socket: reading it could block or never end."""


def _read_file(path: Path) -> bytes:
    """The bytes of `path` (already resolved and confined), a regular file only."""
    why = regular_file(path)
    if why == "is a directory":
        raise IsADirectoryError(why)
    if why is not None:
        raise _NotRegularFile(why)
    return path.read_bytes()


def _read_error(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, _NotRegularFile):
        return "not a regular file"
    return (exc.strerror or str(exc)).lower()


@dataclass
class _Parser:
    eco: Ecosystem
    root: Path
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    lines: list[Entry] = field(default_factory=list)
    _done: set[Path] = field(default_factory=set)  # resolved paths already read
    _stack: list[Path] = field(default_factory=list)  # resolved paths being read
    # name → (marker, index in entries) of its lines so far
    _first: dict[str, list[tuple[str | None, int]]] = field(default_factory=dict)

    def read_top(self, path: Path) -> None:
        where = _shown(path, self.root)
        why = outside(path, self.root)
        if why is not None:  # checked before anything is opened
            self.problems.append(Problem(where, f"cannot read: it {why}"))
            return
        key = path.resolve()
        if key in self._done:
            return
        try:
            data = _read_file(key)
        except OSError as exc:
            self.problems.append(Problem(where, f"cannot read: {_read_error(exc)}"))
            return
        self._read(path, data)

    def _include(self, path: Path, written: str, where: str) -> None:
        if len(self._stack) >= MAX_INCLUDE_DEPTH:
            self.problems.append(Problem(where, f"includes nested more than "
                                         f"{MAX_INCLUDE_DEPTH} deep at '{written}'"))
            return
        why = outside(path, self.root)
        if why is not None:  # checked before anything is opened
            self.problems.append(Problem(where, f"cannot include '{written}': it {why}; "
                                         "included files must be inside the project folder"))
            return
        key = path.resolve()
        if key in self._stack:
            chain = [*self._stack[self._stack.index(key):], key]
            shown = " -> ".join(_shown(p, self.root) for p in chain)
            self.problems.append(Problem(where, f"include cycle: {shown}"))
            return
        if key in self._done:  # included twice (not a cycle): its entries count once
            return
        try:
            data = _read_file(key)
        except FileNotFoundError:
            self.problems.append(Problem(where, f"included file '{written}' not found"))
            return
        except OSError as exc:
            reason = _read_error(exc)
            self.problems.append(Problem(where, f"cannot read included file '{written}': {reason}"))
            return
        self._read(path, data)

    def _read(self, path: Path, data: bytes) -> None:
        key = path.resolve()
        self._done.add(key)
        self._stack.append(key)
        self.files.append(path)
        shown = _shown(path, self.root)
        bad_encoding = False
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # else a problem on every line
            self.problems.append(Problem(f"{shown}:1", "UTF-16 text: save the file as UTF-8"))
            self._stack.pop()
            return
        # pip's line continuation (Python lists only): a line ending in `\\` goes on with
        # the next, joined as pip joins them (the `\\` dropped, nothing added); the joined
        # line is located at its first physical line, as pip reports it, and the lines after
        # it keep their own numbers.
        pending: list[str] = []
        pending_where = ""
        for number, raw in enumerate(data.split(b"\n"), start=1):
            where = f"{shown}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                if not bad_encoding:  # once per file; the other lines are still checked
                    self.problems.append(Problem(where, "not valid UTF-8"))
                bad_encoding = True
                continue
            if self.eco.grammar.continuation:
                bare = line.removesuffix("\r")
                if bare.endswith("\\") and not _COMMENT_LINE_RE.match(bare):
                    if not pending:
                        pending_where = where
                    pending.append(bare[:-1])
                    continue
                if pending:
                    # A comment line ends the joined line (pip keeps it a comment).
                    tail = " " + line if _COMMENT_LINE_RE.match(line) else line
                    line, where = "".join(pending) + tail, pending_where
                    pending = []
            self._line(path, line, where)
        if pending:  # a `\\` on the last line: pip reads what it joined so far
            self._line(path, "".join(pending), pending_where)
        self._stack.pop()

    def _line(self, path: Path, line: str, where: str) -> None:
        line = _COMMENT_RE.sub("", line).strip(" \t\r")
        if not line:
            return
        if len(line) > MAX_LINE:
            self.problems.append(Problem(where, f"line too long ({len(line)} characters, "
                                         f"at most {MAX_LINE})"))
            return
        grammar = self.eco.grammar
        result: Entry | Include | str | None = _forbidden(line,
                                                         semicolon_ok=grammar.semicolon(line))
        if result is not None and grammar.continuation and line.endswith("\\"):
            # spaces after it: not pip's continuation either
            result = "a '\\' continues a line only as its last character (remove what follows it)"
        if result is None:
            if grammar.option is not None and line.startswith("-"):
                result = grammar.option(line)
            else:
                result = grammar.parse_line(line, where)
        if isinstance(result, Include):
            self._include(path.parent / result.written, result.written, where)
            return
        if isinstance(result, str):
            self.problems.append(Problem(where, result))
        elif isinstance(result, Entry):
            self.lines.append(result)
            self._add(result)

    def _add(self, entry: Entry) -> None:
        """Keep `entry`, or merge it with an earlier line for the same package, as pip and
        uv read a list: other extras or another compatible constraint merge, an exact
        duplicate is a warning, contradictory versions are an error naming both lines."""
        marker = self.eco.grammar.marker(entry)
        earlier = self._first.setdefault(entry.name, [])
        if any(self.entries[index].platforms != entry.platforms for _, index in earlier):
            self._add_limited(entry, [self.entries[index] for _, index in earlier])
            return
        for other_marker, index in earlier:
            # Lines for one package under different markers are alternatives, not duplicates.
            if marker is None or other_marker is None or marker == other_marker:
                first = self.entries[index]
                merged = self.eco.grammar.merge(first, entry)
                if isinstance(merged, str):
                    self.problems.append(Problem(entry.where, f"'{entry.text}' contradicts "
                                                 f"'{first.text}' at {first.where}: {merged}"))
                elif merged == first:
                    self.warnings.append(Problem(entry.where, f"duplicate entry '{entry.name}' "
                                                 f"(also at {first.where}); it asks for nothing more"))
                else:
                    self.entries[index] = merged
                return
        earlier.append((marker, len(self.entries)))
        self.entries.append(entry)


    def _add_limited(self, entry: Entry, earlier: list[Entry]) -> None:
        """A package's lines limited to platforms (`foo [amd64]`) are alternatives when
        their platforms do not meet; each platform takes at most one of them."""
        for first in earlier:
            both = (frozenset(SUPPORTED) if first.platforms is None else first.platforms) & (
                frozenset(SUPPORTED) if entry.platforms is None else entry.platforms)
            if both:
                self.problems.append(Problem(
                    entry.where, f"'{entry.name}' is listed for {', '.join(sorted(both))} at "
                    f"{first.where} too: limit the lines to platforms that do not meet, "
                    "or list it once"))
                return
        self._first[entry.name].append((self.eco.grammar.marker(entry), len(self.entries)))
        self.entries.append(entry)


def _forbidden(line: str, *, semicolon_ok: bool) -> str | None:
    """Why `line` holds something a shell would act on, or None."""
    for i, char in enumerate(line):
        category = unicodedata.category(char)
        if category == "Cc" and char != "\t":
            return f"control character U+{ord(char):04X} is not allowed"
        if category == "Cf":
            return f"invisible character U+{ord(char):04X} is not allowed"
        if category in ("Zl", "Zp"):  # a line break to pip (str.splitlines) and others
            return f"line break U+{ord(char):04X} is not allowed"
        if char in _SHELL_CHARS and not (char == ";" and semicolon_ok):
            return f"character '{char}' is not allowed"
        if line.startswith(_SHELL_PAIRS, i):
            return f"'{line[i:i + 2]}' is not allowed"
    return None
