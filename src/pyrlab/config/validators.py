"""The checks of single configuration values: each takes a TOML value and says what is
wrong with it (None: nothing), in words a message can end with.

Values that end up in a Dockerfile line or a command line (image names, references,
prefixes, suites, ports) are checked against strict grammars; free text (URLs, paths) only
ever reaches the build through files in the build context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pyrlab.config.guess import did_you_mean
from pyrlab.config.tomlread import toml_kind
from pyrlab.credentials import mask_url
from pyrlab.platforms import Platform, UnknownPlatform, known_spellings, parse

# Grammars of values that stand in Dockerfile lines and command lines; they end in \Z, since
# `$` also matches before a final newline ("pylab\n" would pass and break the Dockerfile).
IMAGE_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?/)?"
    rf"{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[a-f0-9]{64})?\Z"
)
PREFIX_RE = re.compile(r"^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?/)?(?:" + _COMPONENT + r"/)*\Z")
SUITE_RE = re.compile(r"^[a-z][a-z0-9-]*\Z")
PORT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*\Z")


def is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else f"expected a string, got {toml_kind(v)}"


def is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"expected true or false, got {toml_kind(v)}"


def is_run_path(v: Any) -> str | None:
    """A host path of [run]; "" means "not used"."""
    if not isinstance(v, str):
        return is_str(v)
    return is_path(v) if v.strip() else None


def is_str_list(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return f"expected an array of strings, got {toml_kind(v)}"
    return None


def is_path_list(v: Any) -> str | None:
    if isinstance(v, str):
        v = [v]
    error = is_str_list(v)
    if error:
        return error
    for item in v:
        error = is_path(item)
        if error:
            return error
    return None


def is_path(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"expected a string, got {toml_kind(v)}"
    if not v.strip():
        return "empty file name"
    if "\0" in v:  # no system has such a file; Python refuses to try
        return f"a file name cannot hold a NUL character: {v!r}"
    return None


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v not in choices:
            shown = repr(v) if isinstance(v, str) else toml_kind(v)
            return f"expected one of {', '.join(repr(c) for c in choices)}, got {shown}"
        return None

    return check


def is_url(*schemes: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"expected a URL string, got {toml_kind(v)}"
        try:
            parts = urlsplit(v)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return f"not a valid URL: {v!r}"
        if parts.scheme not in schemes or not parts.netloc:
            return f"expected a {'/'.join(schemes)} URL, got {mask_url(v)!r}"
        def bad(text: str) -> bool:
            return any(c.isspace() or c in "\"'\\`$<>{}|^" or not c.isprintable() for c in text)

        if bad(v):
            # Credentials are shown masked (see pyrlab.credentials), so say where it is.
            where = "" if bad(mask_url(v)) else " (in its credentials, shown as ***)"
            return f"URL contains a character that is not allowed{where}: {mask_url(v)!r}"
        return None

    return check


def is_uid(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 2**31 - 1:
        return f"expected a numeric id, got {v!r}"
    return None


def is_project_name(v: Any) -> str | None:
    if not isinstance(v, str) or not (v == "" or IMAGE_NAME_RE.match(v)):
        return ("expected a project name: lower-case letters, digits and . _ - such as "
                f"'my-lab' (or \"\" for bare image names), got {v!r}")
    return None


def is_image_ref(v: Any) -> str | None:
    if not isinstance(v, str) or not IMAGE_REF_RE.match(v):
        return f"not a valid image reference: {v!r}"
    return None


def is_int_in(low: int, high: int, unit: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            return f"expected a whole number of {unit} from {low} to {high}, got {v!r}"
        return None
    return check


def is_port(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        return f"expected a port number 1-65535, got {v!r}"
    return None


def is_bind(v: Any) -> str | None:
    if not isinstance(v, str) or not re.match(r"^(?:[0-9.]+|\[?[0-9a-fA-F:]+\]?|localhost)\Z", v):
        return f"expected an IP address to publish ports on, got {v!r}"
    return None


def is_snapshot(v: Any) -> str | None:
    """snapshot.debian.org's time stamps: YYYYMMDDTHHMMSSZ, a real UTC time."""
    if isinstance(v, str) and re.match(r"^\d{8}T\d{6}Z\Z", v):
        try:
            datetime.strptime(v, "%Y%m%dT%H%M%SZ")
            return None
        except ValueError:
            pass
    return f"expected a snapshot.debian.org time stamp such as '20250601T000000Z', got {v!r}"


def cache_source_problem(value: Any) -> str | None:
    """Why `value` is not a cache source (an image ref, or a prefix ending in '/')."""
    if not isinstance(value, str):
        return f"expected an image reference, got {toml_kind(value)}"
    if value.endswith("/") and PREFIX_RE.match(value):
        return None
    if IMAGE_REF_RE.match(value):
        return None
    return (f"expected a registry image such as 'registry.example.org/team/pylab:latest' "
            f"or a prefix ending in '/' such as 'registry.example.org/team/', got {value!r}")


def platform_of(value: Any) -> tuple[Platform | None, str | None]:
    """(the platform `value` names, as platforms.parse writes it, None) or (None, why it
    names none, with a guess at a misspelt one): for `[build] platforms` and --platform."""
    if not isinstance(value, str):
        return None, f"expected a platform such as 'linux/arm64', got {toml_kind(value)}"
    try:
        return parse(value), None
    except UnknownPlatform as exc:
        spellings = known_spellings()
        guess = did_you_mean(value.strip(), spellings) if exc.misspelt else None
        return None, str(exc) + (f"; did you mean {spellings[guess]}?" if guess else "")


def is_suite(v: Any) -> str | None:
    if isinstance(v, str) and SUITE_RE.match(v):
        return None
    return f"expected a Debian suite name such as 'trixie', got {v!r}"


def is_locale(v: Any) -> str | None:
    if isinstance(v, str) and re.match(r"^[A-Za-z]{1,3}(?:_[A-Z]{2})?\.(?:UTF-8|utf8)\Z", v):
        return None
    return f"expected a UTF-8 locale such as 'en_US.UTF-8', got {v!r}"


def is_host_list(v: Any) -> str | None:
    """A no_proxy value: host names, addresses, CIDRs, ports and wildcards, comma-separated."""
    return is_str(v) or (
        None if re.match(r"^[A-Za-z0-9.,:*/\[\]_-]*\Z", v) else f"not a host list: {v!r}")


def is_parent_name(v: Any) -> str | None:
    """An image's `from`: another image's name (that it is one of the graph is checked
    with the whole graph)."""
    if isinstance(v, str) and IMAGE_NAME_RE.match(v):
        return None
    return f"expected the name of another image, got {v!r}"


def is_prefix(v: Any) -> str | None:
    if isinstance(v, str) and PREFIX_RE.match(v):
        return None
    return f"expected a registry/namespace prefix ending in '/', got {v!r}"


def is_rc_table(v: Any) -> str | None:
    """run.rc: image = "script" lines."""
    if isinstance(v, dict) and all(is_run_path(x) is None for x in v.values()):
        return None
    return "expected a table of image = \"script\""
