"""The test suites of an environment that nothing imports (uv-install runs it).

    python -I test_folders.py SITE OUT            every folder under SITE (a full build)
    python -I test_folders.py SITE OUT LISTFILE   the files LISTFILE names (a delta: paths
                                                  relative to SITE, as in RECORD)

A test suite is a folder named `tests` or `test` inside a package (not at the top of SITE),
the outermost one on its path. Most are never imported, but some packages import their own
(tables/__init__.py: `from .tests import print_versions`; music21 imports music21.test): a
suite that any code outside the test suites imports, at any depth of a function, absolute
or relative, is kept, and so is whatever a kept suite imports in turn. OUT gets the others,
one absolute path a line: uv-install compiles no bytecode for them and, with [base] slim,
removes them. Only files that mention tests or test near an import are parsed (a bytes
search first), and pytest's conftest.py files count as test code.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from collections.abc import Iterator

NAMES = ("tests", "test")
# The words tests and test, found fast (a literal prefix); whether one is a word of its own
# and in an import is checked around each hit.
WORD = re.compile(rb"tests?\b")
# An import in a logical line: a statement of its own or after `:` or `;` (`try: import x`),
# or a call of import_module() or __import__(). Not a docstring's prose or doctest (>>>).
IMPORT = re.compile(rb"(?:^|[:;])[ \t]*(?:import[ \t(]|from[ \t]+[\w.]+[ \t]+import\b)"
                    rb"|import_module\(|__import__\(")
UNPARSED = (SyntaxError, ValueError, RecursionError, MemoryError)


def suite_of(parts: list[str]) -> str | None:
    """The test suite (a path relative to SITE) that a folder or module path lies in."""
    for i in range(1, len(parts)):
        if parts[i] in NAMES:
            return "/".join(parts[: i + 1])
    return None


def logical_line(source: bytes, at: int) -> tuple[int, int]:
    """Where the line holding `at` starts and ends, lines ended by a backslash joined."""
    start = source.rfind(b"\n", 0, at)
    while start > 0 and source[start - 1] == 0x5C:
        start = source.rfind(b"\n", 0, start - 1)
    end = source.find(b"\n", at)
    while end > 0 and source[end - 1] == 0x5C:
        end = source.find(b"\n", end + 1)
    return start + 1, end if end >= 0 else len(source)


def statements(source: bytes) -> Iterator[bytes]:
    """The statements of `source` that may import a test suite, as text: a logical line
    holding the word tests or test and an import, or an `import (…)` the word is inside;
    either up to its closing parenthesis. Generous: a comment may pass too."""
    for hit in WORD.finditer(source):
        at = hit.start()
        if at and (source[at - 1:at].isalnum() or source[at - 1] == 0x5F):  # pytest, _test
            continue
        start, end = logical_line(source, at)
        if not IMPORT.search(source[start:end]):
            earlier = source[max(0, start - 4000):start]
            opened = earlier.rfind(b"import")
            if (opened < 0 or not earlier[opened + 6:].lstrip().startswith(b"(")
                    or earlier.count(b"(", opened) <= earlier.count(b")", opened)):
                continue  # no import on its line, and not inside an `import (`
            start = logical_line(source, start - len(earlier) + opened)[0]
            if not IMPORT.search(source[start:end]):
                continue
        if source.count(b"(", start, end) > source.count(b")", start, end):
            end = logical_line(source, max(source.find(b")", end), end))[1]
        yield source[start:end].lstrip()


def imports(tree: ast.AST, package: list[str]) -> set[tuple[str, ...]]:
    """Every module path `tree` may import: `a.b` of `import a.b`, `a.b` and `a.b.c` of
    `from a.b import c`, relative ones resolved against `package`, and the string argument
    of import_module() and __import__()."""
    found: set[tuple[str, ...]] = set()

    def resolve(name: str, level: int) -> tuple[str, ...] | None:
        if level > len(package):
            return None  # above the top-level package: the import fails anyway
        base = package[: len(package) - level + 1] if level else []
        return tuple(base + [p for p in name.split(".") if p])

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(tuple(alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.module or "", node.level)
            if target is not None:
                found.add(target)
                found.update(target + (alias.name,) for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__")):
            name = node.args[0].value
            target = resolve(name.lstrip("."), len(name) - len(name.lstrip(".")))
            if target is not None:
                found.add(target)
    return found


def used_suites(site: str, rel: str, suites: dict[str, list[str]]) -> set[str]:
    """The test suites that the module at `rel` (relative to SITE) imports. Each statement
    that may is parsed alone; where one does not parse alone (`try: import x`, a docstring's
    prose), the whole file is."""
    try:
        with open(os.path.join(site, rel), "rb") as f:
            source = f.read()
    except OSError:
        return set()
    package = rel.split("/")[:-1]  # of a module, and of __init__.py: its folder
    found: set[tuple[str, ...]] = set()
    for statement in statements(source):
        try:
            found |= imports(ast.parse(statement), package)
        except UNPARSED:
            try:
                found = imports(ast.parse(source), package)
            except UNPARSED:
                found = set()  # a file that does not compile imports nothing
            break
    return {suite for target in found if (suite := suite_of(list(target))) in suites}


def listed(site: str, listfile: str | None) -> list[str]:
    """Every file (relative to SITE, `/`-separated) under SITE or named in listfile."""
    if listfile is not None:
        with open(listfile, encoding="utf-8") as f:
            return [os.path.relpath(os.path.join(site, line.rstrip("\n")), site)
                    for line in f if line.strip()]
    found: list[str] = []
    for folder, dirs, files in os.walk(site):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, site)
        prefix = "" if rel == "." else rel + "/"
        found.extend(prefix + name for name in files)
        found.extend(prefix + name + "/" for name in dirs if name in NAMES)  # empty ones too
    return found


def main(argv: list[str]) -> None:
    site, out = argv[1], argv[2]
    started = time.monotonic()
    suites: dict[str, list[str]] = {}  # suite → its .py files
    outside: list[str] = []  # .py files in no suite: the packages' own code
    for rel in listed(site, argv[3] if len(argv) > 3 else None):
        if rel.startswith("../"):
            continue
        parts = rel.rstrip("/").split("/")
        suite = suite_of(parts[:-1] if not rel.endswith("/") else parts)
        if suite is not None:
            files = suites.setdefault(suite, [])
            if rel.endswith(".py") and parts[-1] != "conftest.py":
                files.append(rel)
        elif rel.endswith(".py") and parts[-1] != "conftest.py":
            outside.append(rel)
    kept: set[str] = set()
    todo, scanned = outside, 0
    while todo:  # a kept suite's files are the packages' code too: what they import stays
        scanned += len(todo)
        new = set().union(*(used_suites(site, rel, suites) for rel in todo)) - kept
        kept |= new
        todo = [rel for suite in sorted(new) for rel in suites[suite]]
    unused = sorted(set(suites) - kept)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(os.path.join(site, suite) + "\n" for suite in unused)
    shown = ", ".join(sorted(kept)) if kept else "none"
    print(f"pyrlab: test suites: {len(kept)} of {len(suites)} kept, imported by their "
          f"packages ({shown}); {scanned} files scanned in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main(sys.argv)
