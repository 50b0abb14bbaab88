"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

from __future__ import annotations

import re
from dataclasses import replace

from pyrlab.ecosystems.base import (
    Checks,
    ConfigView,
    Contents,
    Context,
    Ecosystem,
    Entry,
    Grammar,
    Pins,
    Queries,
)

# -- grammar --------------------------------------------------------------------------------
# An R package name (also what [test.known_failures.r] takes).
R_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]\Z")
R_VERSION_RE = re.compile(r"^[0-9]+([.-][0-9]+)+$")
R_SOURCES = ("apt", "cran")
_R_OPERATOR_RE = re.compile(r"^(==|>=|<=|!=|~=|=|<|>)\s*(.*)$")
_R_NAME_END_RE = re.compile(r"[=<>!~ \t]")


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
        return Entry(ECOSYSTEM.name, name, name, None, source, where)
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
    return Entry(ECOSYSTEM.name, name, f"{name}{op}{version}", version, source, where)


def _r_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[.-]", text))


def _merge_r(first: Entry, other: Entry) -> Entry | str:
    """One source at most; an exact version must meet every minimum; minimums keep the
    highest."""
    if first.source != other.source and first.source and other.source:
        return f"one package from two sources ({first.source}: and {other.source}:)"
    if first.source == other.source and other.text == first.text:
        return first
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


def _has_r(config: ConfigView, name: str) -> bool:
    """Whether the image or an ancestor installs R (images.NAME.r)."""
    node: str | None = name
    seen: set[str] = set()  # the graph may still hold a cycle or an unknown parent here
    while node is not None and node in config.images and node not in seen:
        if config.images[node].value("r") is not None:
            return True
        seen.add(node)
        node = config.images[node].parent
    return node is not None  # a broken chain is reported as such, not as "no R"


def _needs_r(config: ConfigView, image: str) -> str | None:
    if _has_r(config, image):
        return None
    return "this image has no R: set r = \"debian\" on it or an ancestor"


GRAMMAR = Grammar(
    parse_line=_parse_r,
    merge=_merge_r,
    image_problem=_needs_r,
    keys=("images.*.r", "images.*.r_source", "proxy.cran", "test.known_failures.r"),
    count_label="R",
)

# -- build context ----------------------------------------------------------------------------
CONTEXT = Context()

# -- contents ---------------------------------------------------------------------------------
CONTENTS = Contents()

# -- outdated -----------------------------------------------------------------------------
QUERIES = Queries()

# -- pins -------------------------------------------------------------------------------------
PINS = Pins()

# -- checks -----------------------------------------------------------------------------------
CHECKS = Checks()

# -- the whole --------------------------------------------------------------------------------
ECOSYSTEM = Ecosystem(
    name="r",
    title="R packages",
    order=40,
    step="r",
    list_key="r_packages",
    lock_key="r",
    manifest_key="r",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
