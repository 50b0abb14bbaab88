"""Version order in each ecosystem, so that a diff can say upgraded or downgraded.

Each `compare_*` returns a negative number, zero or a positive number, like C's strcmp.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, TypeVar

from packaging.version import InvalidVersion, Version

from pyrlab.contents.model import Ecosystem


def compare(ecosystem: Ecosystem, a: str, b: str) -> int:
    if ecosystem == "debs":
        return compare_deb(a, b)
    if ecosystem == "python":
        return compare_python(a, b)
    return compare_r(a, b)


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...

    def __gt__(self, other: Any, /) -> bool: ...


_T = TypeVar("_T", bound=_Ordered)


def _sign(a: _T, b: _T) -> int:
    return int(a > b) - int(a < b)


# --- Debian: dpkg's own algorithm (deb-version(7)) ---------------------------------------

def _split_deb(version: str) -> tuple[int, str, str]:
    """[epoch:]upstream[-revision]; the revision is after the last hyphen."""
    epoch, colon, rest = version.partition(":")
    if not colon or not epoch.isdigit():
        epoch, rest = "0", version
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    return int(epoch), upstream, revision


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _order(char: str) -> int:
    """dpkg's weight of a non-digit: `~` below the end of the string, letters below the rest."""
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating non-digit runs (by `_order`) and digit runs (numeric)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            # The end of a string, and a digit, weigh 0: more than `~`, less than anything else.
            ac = _order(a[i]) if i < len(a) and not _is_digit(a[i]) else 0
            bc = _order(b[j]) if j < len(b) and not _is_digit(b[j]) else 0
            if ac != bc:
                return _sign(ac, bc)
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and _is_digit(a[i]):
            i += 1
        while j < len(b) and _is_digit(b[j]):
            j += 1
        difference = _sign(int(a[start_i:i] or "0"), int(b[start_j:j] or "0"))
        if difference:
            return difference
    return 0


def compare_deb(a: str, b: str) -> int:
    epoch_a, upstream_a, revision_a = _split_deb(a)
    epoch_b, upstream_b, revision_b = _split_deb(b)
    return (_sign(epoch_a, epoch_b) or _compare_part(upstream_a, upstream_b)
            or _compare_part(revision_a, revision_b))


# --- Python: PEP 440 --------------------------------------------------------------------

def compare_python(a: str, b: str) -> int:
    try:
        return _sign(Version(a), Version(b))
    except InvalidVersion:  # not PEP 440 (a very old sdist): the text is all there is
        return _sign(a, b)


# --- R: integer components, as package_version() reads them -------------------------------

_R_VERSION_RE = re.compile(r"^[0-9]+([.-][0-9]+)*$")


def compare_r(a: str, b: str) -> int:
    if not (_R_VERSION_RE.match(a) and _R_VERSION_RE.match(b)):
        return _sign(a, b)
    return _sign([int(x) for x in re.split(r"[.-]", a)], [int(x) for x in re.split(r"[.-]", b)])
