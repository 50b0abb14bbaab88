"""What to tell the user when a build step failed for a reason they can fix in the config."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from pyrlab.config.model import ProxyConfig
from pyrlab.credentials import mask_url
from pyrlab.engines.emulation import fix
from pyrlab.platforms import Platform, is_native, qemu_name

# What pip, uv, apt and R print when a server did not answer in time.
_TIMEOUT_RE = re.compile(
    r"read timed out|timed out|timeout was reached|operation timed out|ReadTimeoutError",
    re.IGNORECASE)
_URL_RE = re.compile(r"https?://[^\s'\"`)<>]+")
DEFAULT_INDEX = "https://pypi.org/simple"


def _server(url: str) -> str:
    """The part of a URL that names the server and index, without a file or project."""
    parts = urlsplit(url)
    path = parts.path
    for marker in ("/+simple/", "/simple/", "/+f/", "/packages/"):
        if marker in path:
            path = path[: path.index(marker) + len(marker)]
            break
    return mask_url(urlunsplit((parts.scheme, parts.netloc, path, "", "")))


def timeout_hint(tail: list[str], proxy: ProxyConfig) -> str | None:
    """When the failed step's last lines say a server timed out: which one (credentials
    masked) and the setting to raise; None otherwise."""
    timed_out = [line for line in tail if _TIMEOUT_RE.search(line)]
    if not timed_out:
        return None
    # pip names the URL on the line that timed out; uv on the "Failed to fetch" line above.
    urls = [u for line in timed_out + tail for u in _URL_RE.findall(line)]
    if urls:
        where = _server(urls[0])
    else:
        # pip names only the path of the page it waited for; the index is the configured one.
        where = mask_url(proxy.pip_index or DEFAULT_INDEX)
    return (f"{where} did not answer within {proxy.timeout} s ({proxy.retries} retries); "
            "a cold caching proxy or a slow index can take longer: raise proxy.timeout in "
            f"pyrlab.toml (now {proxy.timeout}), or for one run set PYRLAB_PROXY__TIMEOUT=600")


def exec_format_hint(tail: list[str], platform: Platform, host: Platform) -> str | None:
    """When the failed step's last lines say the kernel could not run a program ("exec
    /bin/bash: exec format error", as runc and crun say it): why, for a build for
    `platform` on an engine whose own is `host`; None otherwise. For another platform the
    engine's kernel has no emulation that containers can use, which emulation.check cannot
    see from here (a remote daemon, a VM); for the engine's own, a program (most often the
    base image) is another platform's."""
    if not any("exec format error" in line.lower() for line in tail):
        return None
    if is_native(platform, host):
        return ("a program this step runs is built for another platform than the engine's "
                f"own ({host}): is the base image another platform's? `docker image "
                "inspect --format '{{.Os}}/{{.Architecture}}' IMAGE` says which")
    return (f"the engine's machine ({host}) cannot run {platform}'s programs in a container: "
            f"it has no emulation of {qemu_name(platform)} with flag F; {fix(platform)}")
