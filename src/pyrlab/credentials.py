"""Credentials in [proxy] URLs (`http://user:secret@proxy:3128`, an index token): used at
build time only. Everything else (the build context, the input hash, labels, logs, the
engine command line, messages) sees them masked: `http://user:***@proxy:3128`, or
`https://***@host/` for a token given as the user name alone.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from pyrlab.config.schema import ProxyConfig

MASK = "***"


def has_credentials(url: str) -> bool:
    return "@" in urlsplit(url).netloc


def mask_url(url: str) -> str:
    """`url` with its password (or a user-name token) replaced by ***."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))


def proxy_urls(proxy: ProxyConfig) -> list[str]:
    """Every URL of [proxy]."""
    urls = [proxy.apt, proxy.pip_index, *proxy.pip_extra_index, proxy.cran, proxy.http_proxy,
            proxy.https_proxy]
    return [u for u in urls if u]


def secret_words(proxy: ProxyConfig) -> list[str]:
    """The secret parts of [proxy]'s URLs as written and percent-decoded (what a tool that
    echoes a URL or an Authorization it built may print), longest first."""
    words: set[str] = set()
    for url in proxy_urls(proxy):
        netloc = urlsplit(url).netloc
        if "@" not in netloc:
            continue
        user, colon, password = netloc.rsplit("@", 1)[0].partition(":")
        secret = password if colon else user
        words.update(w for w in (secret, unquote(secret)) if w)
    return sorted(words, key=lambda w: (-len(w), w))


class Redactor:
    """Replaces the credentials of a project's [proxy] in lines of engine output (a build
    log, the failure shown) with ***."""

    def __init__(self, proxy: ProxyConfig) -> None:
        words = secret_words(proxy)
        self._pattern = re.compile("|".join(map(re.escape, words))) if words else None

    def __call__(self, line: str) -> str:
        return self._pattern.sub(MASK, line) if self._pattern is not None else line
