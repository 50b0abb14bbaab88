"""Credentials in [proxy] URLs (`http://user:secret@proxy:3128`, an index token): used at
build time only. Everything else (the build context, the input hash, labels, logs, the
engine command line, messages) sees them masked: `http://user:***@proxy:3128`, or
`https://***@host/` for a token given as the user name alone. And whether a URL is the
build host's own (`is_loopback_url`): what a lab or a registry elsewhere cannot reach.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def has_credentials(url: str) -> bool:
    return "@" in urlsplit(url).netloc


def is_loopback_url(url: str) -> bool:
    """Whether a URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mask_url(url: str) -> str:
    """`url` with its password (or a user-name token) replaced by ***."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))


def secret_words(urls: Iterable[str]) -> list[str]:
    """The secret parts of `urls` as written and percent-decoded (what a tool that echoes a
    URL or an Authorization it built may print), longest first."""
    words: set[str] = set()
    for url in urls:
        netloc = urlsplit(url).netloc
        if "@" not in netloc:
            continue
        user, colon, password = netloc.rsplit("@", 1)[0].partition(":")
        secret = password if colon else user
        words.update(w for w in (secret, unquote(secret)) if w)
    return sorted(words, key=lambda w: (-len(w), w))


# A URL's password in any output: scheme://user:PASSWORD@ (user and host kept).
_URL_PASSWORD = re.compile(r"(//[^/\s:@]*:)[^/\s@]+@")
# Shorter secrets are masked only inside URLs: as bare words they would mask ordinary text.
MIN_BARE_SECRET = 6


class Redactor:
    """Masks credentials in lines of engine output (a build log, the failure shown): the
    password of any URL, and the secrets of `urls` (a project's [proxy], see
    ProxyConfig.urls) wherever they appear (a tool may print a URL it was given, decoded, or
    a token alone)."""

    def __init__(self, urls: Iterable[str]) -> None:
        words = [w for w in secret_words(urls) if len(w) >= MIN_BARE_SECRET]
        self._words = re.compile("|".join(map(re.escape, words))) if words else None

    def __call__(self, line: str) -> str:
        line = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", line)
        return self._words.sub(MASK, line) if self._words is not None else line
