"""The Debian ecosystem: Debian packages, installed with apt-get."""

from __future__ import annotations

import re
from dataclasses import replace

from pyrlab.ecosystems.base import (
    Checks,
    Contents,
    Context,
    Ecosystem,
    Entry,
    Grammar,
    Pins,
    Queries,
)

# -- grammar --------------------------------------------------------------------------------
DEB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
DEB_VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
DEB_RELEASE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_DEB_SEPARATOR_RE = re.compile(r"[=/]")
# A version relation as Debian's control files and other tools write it (`curl>=8`,
# `curl (>= 8)`, `curl==8`): apt-get takes none of them.
_DEB_RELATION_RE = re.compile(r"^([a-z0-9][a-z0-9+.:-]*)[ \t]*\(?[ \t]*(>=|<=|>>|<<|==|!=|~=|>|<)")
_DEB_ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[^=/]*)")


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
    eco = ECOSYSTEM.name
    if separator == "=":
        if not suffix:
            return "missing version after '='"
        if not DEB_VERSION_RE.match(suffix):
            return f"not a valid Debian version: '{suffix}'"
        return Entry(eco, name, f"{name}={suffix}", suffix, None, where)
    if separator == "/":
        if not suffix:
            return "missing release after '/'"
        if not DEB_RELEASE_RE.match(suffix):
            return f"not a valid Debian release: '{suffix}'"
        return Entry(eco, name, f"{name}/{suffix}", None, None, where)
    return Entry(eco, name, name, None, None, where)


def _merge_deb(first: Entry, other: Entry) -> Entry | str:
    """A plain name merges with a version or a release; two of those only when equal."""
    if other.text == first.text:
        return first
    plain = [e for e in (first, other) if e.text == e.name]
    if not plain:
        return "two different versions or releases"
    kept = other if plain[0] is first else first
    return replace(kept, where=first.where)


GRAMMAR = Grammar(
    parse_line=_parse_deb,
    merge=_merge_deb,
    keys=("base.snapshot", "proxy.apt", "proxy.apt_https"),
    base_list=("base_debs.txt",),
    count_label="debs",
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
    name="debian",
    title="Debian packages",
    order=10,
    step="apt",
    list_key="debs",
    lock_key="debs",
    manifest_key="debs",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
