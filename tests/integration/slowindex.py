"""A deliberately slow PEP 503 package index on 127.0.0.1, for tests.

Each project page (`/simple/NAME/`) is fetched from an upstream simple index (PyPI by
default, `PYRLAB_TEST_UPSTREAM_INDEX` to change it) and answered only after a delay chosen
by the client: longer than that client's own default read timeout (pip 15 s, uv 30 s), so a
build passes only when pyrlab gives the installers more patience. The package files stay
on the upstream's file host (the page's links are absolute).
"""

from __future__ import annotations

import http.server
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

UPSTREAM = os.environ.get("PYRLAB_TEST_UPSTREAM_INDEX", "https://pypi.org/simple/")
# The installers' default read timeouts, and a margin past them.
DEFAULT_TIMEOUTS = {"pip": 15.0, "uv": 30.0}
MARGIN = 5.0


@dataclass
class Served:
    path: str
    client: str  # "pip", "uv" or the user agent's first word
    delay: float
    status: int


@dataclass
class SlowIndex:
    url: str  # the simple index URL to configure (ends in /simple/)
    served: list[Served] = field(default_factory=list)

    def pages(self, client: str) -> list[str]:
        return [s.path for s in self.served if s.client == client and s.status == 200]


def _client(user_agent: str) -> str:
    first = user_agent.split("/", 1)[0].strip().lower()
    return first or "unknown"


@contextmanager
def slow_index() -> Iterator[SlowIndex]:
    state = SlowIndex("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/simple/"):
                self.send_error(404)
                return
            client = _client(self.headers.get("User-Agent", ""))
            delay = DEFAULT_TIMEOUTS.get(client, 0.0) + MARGIN
            time.sleep(delay)
            request = urllib.request.Request(UPSTREAM + self.path.removeprefix("/simple/"),
                                             headers={"Accept": "text/html"})
            try:
                with urllib.request.urlopen(request, timeout=60) as upstream:
                    body = upstream.read()
                status = 200
            except OSError:
                body, status = b"", 404
            # The client may have given up during the delay: writing then fails, harmlessly.
            state.served.append(Served(self.path, client, delay, status))
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
