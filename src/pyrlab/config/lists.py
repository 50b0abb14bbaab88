"""Package lists → validated entries, every problem located by file and line.

A list is one entry per line (in a Python list, a line ending in `\\` goes on with the
next, as in pip); `#` starts a comment (at the start of a line or after whitespace) and
blank lines are ignored. Each kind has a strict grammar, and characters a
shell would act on are refused outright: nothing from a list is pasted into a command (the
normalised `Entry.text` of every line is written into the build context, in the list's
order, and read by the installer), so this is a second wall, and it makes mistakes and injection attempts visible
at `pyrlab check` instead of halfway through a build.

Python lists may include others with `-r FILE` (relative to the including file); no other
pip option is accepted, since indexes and proxies belong in pyrlab.toml. Every file read,
includes too, must lie inside the project folder after symlinks are resolved; that is
checked before a file is opened (a project may come from someone else).
"""

from __future__ import annotations

import enum
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pyrlab.config.confine import outside, regular_file
from pyrlab.errors import Problem


class ListKind(enum.Enum):
    DEB = "debian"  # Debian packages
    PYTHON = "python"  # Python requirements
    R = "r"  # R packages


@dataclass(frozen=True)
class Entry:
    kind: ListKind
    # Canonical key: the Debian name; the PEP 503-normalised Python name (a bare URL line
    # without #egg= uses the URL itself); the R name as written (R names are case-sensitive).
    name: str
    text: str  # the normalised line written into the build context for the installer
    version: str | None  # the pinned (or, in R, minimum) version when given
    source: str | None  # R only: "apt" or "cran" when the entry asks for one
    where: str  # "FILE:LINE", FILE relative to the project root when under it


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


DEB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
DEB_VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
DEB_RELEASE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
R_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$")
R_VERSION_RE = re.compile(r"^[0-9]+([.-][0-9]+)+$")
R_SOURCES = ("apt", "cran")
URL_SCHEMES = ("https", "http", "git+https", "git+ssh", "git+http")
EGG_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")

# Characters (and pairs) a shell would act on; `;` is also PEP 508's marker separator.
_SHELL_CHARS = frozenset("`$|&\\;")
_SHELL_PAIRS = ("<(", ">(")
_COMMENT_RE = re.compile(r"(?:^|[ \t])#.*$")
_COMMENT_LINE_RE = re.compile(r"^\s*#")  # pip: such a line never continues
_URL_START_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_OPTION_RE = re.compile(r"^(--[^=\s]+|-[^=\s])(.*)$")
_INLINE_OPTION_RE = re.compile(r"[ \t](--[A-Za-z][A-Za-z0-9-]*)")
_INCLUDE_OPTIONS = ("-r", "--requirement")
_INDEX_OPTIONS = frozenset(
    {"-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links",
     "--trusted-host"}
)
_DEB_SEPARATOR_RE = re.compile(r"[=/]")
# A version relation as Debian's control files and other tools write it (`curl>=8`,
# `curl (>= 8)`, `curl==8`): apt-get takes none of them.
_DEB_RELATION_RE = re.compile(r"^([a-z0-9][a-z0-9+.:-]*)[ \t]*\(?[ \t]*(>=|<=|>>|<<|==|!=|~=|>|<)")
_DEB_ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[^=/]*)")
# Why `--hash` is refused: the lists are normalised entries, and a hash-checking install
# needs a hash for every package, dependencies too, which pyrlab's lock does instead.
_HASH_REFUSAL = ("option '--hash' is not supported: a hash-checking install needs a hash "
                 "for every dependency too; pin versions here and let pyrlab.lock record "
                 "exactly what was installed")
_R_OPERATOR_RE = re.compile(r"^(==|>=|<=|!=|~=|=|<|>)\s*(.*)$")
_R_NAME_END_RE = re.compile(r"[=<>!~ \t]")
# Far beyond any real entry, and far below what one command-line argument may hold (the
# lists also travel in an image label, an argument of the engine's build command).
MAX_LINE = 4096
# Far beyond any real list tree, and far below Python's recursion limit.
MAX_INCLUDE_DEPTH = 50


def parse_lists(paths: Sequence[Path], kind: ListKind, *, root: Path) -> ParsedList:
    """Read `paths` in order as lists of `kind`; every problem is returned, none raised."""
    parser = _Parser(kind, root)
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
    kind: ListKind
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
            if self.kind is ListKind.PYTHON:
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
        result: Entry | str | None
        if self.kind is ListKind.DEB:
            result = _forbidden(line, semicolon_ok=False) or _parse_deb(line, where)
        elif self.kind is ListKind.R:
            result = _forbidden(line, semicolon_ok=False) or _parse_r(line, where)
        else:
            # One `;` may separate a requirement from its marker (never in a URL or option).
            semicolon_ok = (
                line.count(";") == 1 and not line.startswith((";", "-"))
                and not _URL_START_RE.match(line)
            )
            result = _forbidden(line, semicolon_ok=semicolon_ok)
            if result is not None and line.endswith("\\"):  # spaces after it: not pip's either
                result = "a '\\' continues a line only as its last character (remove what follows it)"
            if result is None:
                if line.startswith("-"):
                    result = self._python_option(path, line, where)
                else:
                    result = _parse_python(line, where)
        if isinstance(result, str):
            self.problems.append(Problem(where, result))
        elif isinstance(result, Entry):
            self.lines.append(result)
            self._add(result)

    def _python_option(self, path: Path, line: str, where: str) -> str | None:
        match = _OPTION_RE.match(line)
        if match is None:
            return f"option '{line.split()[0]}' is not allowed in a list"
        option, rest = match.group(1), match.group(2)
        if option in _INCLUDE_OPTIONS:
            target = rest.strip().removeprefix("=").strip()
            if not target:
                return f"option '{option}' needs a file name"
            self._include(path.parent / target, target, where)
            return None
        if option == "--hash":
            return _HASH_REFUSAL
        if option in ("-e", "--editable"):
            hint = " (editable installs are not supported)"
        elif option in _INDEX_OPTIONS:
            hint = " (set indexes in pyrlab.toml [proxy])"
        elif option in ("-c", "--constraint"):
            hint = " (constraint files are not supported)"
        else:
            hint = ""
        return f"option '{option}' is not allowed in a list{hint}"

    def _add(self, entry: Entry) -> None:
        """Keep `entry`, or merge it with an earlier line for the same package, as pip and
        uv read a list: other extras or another compatible constraint merge, an exact
        duplicate is a warning, contradictory versions are an error naming both lines."""
        marker = None
        if entry.kind is ListKind.PYTHON and ";" in entry.text:
            marker = entry.text.split(";", 1)[1].strip()
        earlier = self._first.setdefault(entry.name, [])
        for other_marker, index in earlier:
            # Lines for one package under different markers are alternatives, not duplicates.
            if marker is None or other_marker is None or marker == other_marker:
                first = self.entries[index]
                merged = _merge(first, entry)
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


def _merge(first: Entry, other: Entry) -> Entry | str:
    """The entry both lines ask for (`first` itself for an exact duplicate), or why they
    cannot both hold."""
    if first.kind is ListKind.R and first.source != other.source:
        if first.source and other.source:
            return f"one package from two sources ({first.source}: and {other.source}:)"
        return _merge_r(first, other)
    if other.text == first.text:
        return first
    if first.kind is ListKind.PYTHON:
        return _merge_python(first, other)
    if first.kind is ListKind.DEB:
        plain = [e for e in (first, other) if e.text == e.name]
        if not plain:
            return "two different versions or releases"
        kept = other if plain[0] is first else first
        return replace(kept, where=first.where)
    return _merge_r(first, other)


def _merge_python(first: Entry, other: Entry) -> Entry | str:
    try:
        a, b = Requirement(first.text), Requirement(other.text)
    except InvalidRequirement:  # a bare URL line (#egg=): only an exact duplicate merges
        return "two different direct references"
    if a.url != b.url:
        return "two different direct references"
    specifier = a.specifier & b.specifier
    pins = {s.version for s in specifier
            if s.operator in ("==", "===") and not s.version.endswith(".*")}
    if len(pins) > 1:
        return "two different pinned versions"
    if pins and not specifier.contains(next(iter(pins)), prereleases=True):
        return f"{next(iter(pins))} does not satisfy '{specifier}'"
    a.extras |= b.extras
    a.specifier = specifier
    return replace(first, text=str(a), version=next(iter(pins), None))


def _r_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[.-]", text))


def _merge_r(first: Entry, other: Entry) -> Entry | str:
    source = first.source or other.source
    exact = [e for e in (first, other) if e.version and "==" in e.text]
    if len({e.version for e in exact}) > 1:
        return "two different pinned versions"
    minimums = [e for e in (first, other) if e.version and ">=" in e.text]
    if exact:
        kept = exact[0]
        assert kept.version is not None
        if any(_r_version(kept.version) < _r_version(m.version or "0") for m in minimums):
            return f"{kept.version} is older than the minimum asked for"
    elif minimums:
        kept = max(minimums, key=lambda e: _r_version(e.version or "0"))
    else:
        kept = first
    return replace(kept, source=source, where=first.where)


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


def _parse_deb(line: str, where: str) -> Entry | str:
    if line.startswith("-"):
        return "options are not allowed in a Debian list"
    relation = _DEB_RELATION_RE.match(line)
    if relation:
        name = relation.group(1).split(":", 1)[0]
        return (f"version operator '{relation.group(2)}' is not supported in a Debian list: "
                f"write '{name}' for the current version or '{name}=VERSION' for an exact one")
    arch = _DEB_ARCH_RE.match(line)
    if arch:
        return (f"architecture qualifiers (`{arch.group(1)}`) are not supported: "
                "list the package without one, for the image's own architecture")
    if any(c in line for c in " \t"):
        return "one package per line, without spaces"
    split = _DEB_SEPARATOR_RE.search(line)
    name, separator, suffix = line, "", ""
    if split:
        name, separator, suffix = line[: split.start()], split.group(), line[split.end():]
    if not DEB_NAME_RE.match(name):
        return f"not a valid Debian package name: '{name}'"
    if name.endswith("-"):  # apt-get reads `foo-` as "remove foo"
        return f"not a valid Debian package name: '{name}' (apt reads a trailing '-' as remove)"
    if separator == "=":
        if not suffix:
            return "missing version after '='"
        if not DEB_VERSION_RE.match(suffix):
            return f"not a valid Debian version: '{suffix}'"
        return Entry(ListKind.DEB, name, f"{name}={suffix}", suffix, None, where)
    if separator == "/":
        if not suffix:
            return "missing release after '/'"
        if not DEB_RELEASE_RE.match(suffix):
            return f"not a valid Debian release: '{suffix}'"
        return Entry(ListKind.DEB, name, f"{name}/{suffix}", None, None, where)
    return Entry(ListKind.DEB, name, name, None, None, where)


def _parse_r(line: str, where: str) -> Entry | str:
    if line.startswith("-"):
        return "options are not allowed in an R list"
    source = None
    if ":" in line:
        prefix, line = line.split(":", 1)
        if prefix not in R_SOURCES:
            return f"unknown source '{prefix}:' (use apt: or cran:)"
        source = prefix
        line = line.strip(" \t")
    name = _R_NAME_END_RE.split(line, maxsplit=1)[0]
    rest = line[len(name):].strip(" \t")
    if not R_NAME_RE.match(name):
        return f"not a valid R package name: '{name}'" if name else "missing R package name"
    if not rest:
        return Entry(ListKind.R, name, name, None, source, where)
    operator = _R_OPERATOR_RE.match(rest)
    if operator is None:
        return f"unexpected text after the package name: '{rest}'"
    op, version = operator.group(1), operator.group(2)
    if op not in ("==", ">="):
        return f"unsupported version operator '{op}' (use == or >=)"
    if not version:
        return f"missing version after '{op}'"
    if not R_VERSION_RE.match(version):
        return f"not a valid R version: '{version}'"
    if source == "apt":
        return "version pins are only supported for CRAN packages"
    return Entry(ListKind.R, name, f"{name}{op}{version}", version, source, where)


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return f"not a valid URL: '{url}'"
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        allowed = ", ".join(URL_SCHEMES)
        if not scheme:
            return f"a direct reference must be a URL ({allowed})"
        return f"scheme '{scheme}' is not allowed (use {allowed})"
    if not parts.netloc:
        return f"not a valid URL: '{url}'"
    return None


def _parse_python(line: str, where: str) -> Entry | str:
    if line.startswith((".", "/", "~")):
        return "local paths are not supported (use a package name or URL)"
    if _URL_START_RE.match(line):
        return _parse_bare_url(line, where)
    inline = _INLINE_OPTION_RE.search(line)
    if inline:
        if inline.group(1) == "--hash":
            return _HASH_REFUSAL
        return f"option '{inline.group(1)}' is not allowed in a list"
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unreadable"
        return f"not a valid Python requirement: {reason[:1].lower()}{reason[1:]}"
    if requirement.url is not None:
        problem = _url_problem(requirement.url)
        if problem:
            return problem
    pins = [
        s.version for s in requirement.specifier
        if s.operator in ("==", "===") and not s.version.endswith(".*")
    ]
    return Entry(
        ListKind.PYTHON,
        canonicalize_name(requirement.name),
        str(requirement),
        pins[0] if pins else None,
        None,
        where,
    )


def _parse_bare_url(url: str, where: str) -> Entry | str:
    """A line that is only a URL (pip's `git+https://host/repo@ref#egg=name` form)."""
    if any(c in url for c in " \t\"'"):
        return f"not a valid URL: '{url}'"
    problem = _url_problem(url)
    if problem:
        return problem
    name = url
    fragment = urlsplit(url).fragment
    for part in fragment.split("&") if fragment else ():
        key, _, value = part.partition("=")
        if key == "egg":
            if not EGG_NAME_RE.match(value):
                return f"not a valid egg name: '{value}'"
            name = canonicalize_name(value)
    return Entry(ListKind.PYTHON, name, url, None, None, where)
