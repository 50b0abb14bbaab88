"""The Python ecosystem: Python packages (distributions), installed with uv into /opt/venv."""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit

from pyrlab.ecosystems.base import (
    Checks,
    Contents,
    Context,
    Ecosystem,
    Entry,
    Grammar,
    Include,
    Pins,
    Queries,
)

# -- grammar --------------------------------------------------------------------------------
URL_SCHEMES = ("https", "http", "git+https", "git+ssh", "git+http")
EGG_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_URL_START_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_OPTION_RE = re.compile(r"^(--[^=\s]+|-[^=\s])(.*)$")
_INLINE_OPTION_RE = re.compile(r"[ \t](--[A-Za-z][A-Za-z0-9-]*)")
_INCLUDE_OPTIONS = ("-r", "--requirement")
_INDEX_OPTIONS = frozenset(
    {"-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links",
     "--trusted-host"}
)
# Why `--hash` is refused: the lists are normalised entries, and a hash-checking install
# needs a hash for every package, dependencies too, which pyrlab's lock does instead.
_HASH_REFUSAL = ("option '--hash' is not supported: a hash-checking install needs a hash "
                 "for every dependency too; pin versions here and let pyrlab.lock record "
                 "exactly what was installed")


def _option(line: str) -> Include | str:
    """pip's options: `-r FILE` includes a list; the others are refused, with the reason."""
    match = _OPTION_RE.match(line)
    if match is None:
        return f"option '{line.split()[0]}' is not allowed in a list"
    option, rest = match.group(1), match.group(2)
    if option in _INCLUDE_OPTIONS:
        target = rest.strip().removeprefix("=").strip()
        if not target:
            return f"option '{option}' needs a file name"
        return Include(target)
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


def _semicolon(line: str) -> bool:
    """One `;` may separate a requirement from its marker (never in a URL or option)."""
    return (line.count(";") == 1 and not line.startswith((";", "-"))
            and not _URL_START_RE.match(line))


def _marker(entry: Entry) -> str | None:
    return entry.text.split(";", 1)[1].strip() if ";" in entry.text else None


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
    # packaging is loaded here, not at pyrlab's start: only a list read needs it.
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

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
        ECOSYSTEM.name,
        canonicalize_name(requirement.name),
        str(requirement),
        pins[0] if pins else None,
        None,
        where,
    )


def _parse_bare_url(url: str, where: str) -> Entry | str:
    """A line that is only a URL (pip's `git+https://host/repo@ref#egg=name` form)."""
    from packaging.utils import canonicalize_name

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
    return Entry(ECOSYSTEM.name, name, url, None, None, where)


def _merge_python(first: Entry, other: Entry) -> Entry | str:
    """As pip and uv read two lines for one package: extras add up, specifiers intersect,
    two different pins or direct references cannot both hold."""
    from packaging.requirements import InvalidRequirement, Requirement

    if other.text == first.text:
        return first
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


GRAMMAR = Grammar(
    parse_line=_parse_python,
    merge=_merge_python,
    marker=_marker,
    option=_option,
    continuation=True,
    semicolon=_semicolon,
    keys=("base.python", "proxy.pip_index", "proxy.pip_extra_index",
          "test.known_failures.python"),
    count_label="python",
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
    name="python",
    title="Python packages",
    order=30,
    step="python",
    list_key="requirements",
    lock_key="python",
    manifest_key="python_dists",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
