"""Waiting until a lab's JupyterLab answers on its status API, with a spinner on a TTY."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from typing import TextIO
from urllib.parse import urlsplit

from pyrlab.output import is_quiet

# A refused connection costs well under a millisecond: polling often notices readiness soon.
POLL_SECONDS = 0.05


class Spinner:
    """One self-rewriting status line on stderr, only when stderr is a terminal."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() and not is_quiet()
        self.frame = 0
        self.width = 0

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"{self.FRAMES[self.frame % len(self.FRAMES)]} {text}"
        self.frame += 1
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def status_ok(url: str, token: str, timeout: float = 2.0) -> bool:
    """Whether Jupyter Server's /api/status answers 200 to this token.

    One plain HTTP/1.1 request on a socket: the probe runs every POLL_SECONDS, and urllib
    (with http.client and ssl) costs more to import than the whole wait often takes."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not token.isprintable():
        return False
    auth = f"Authorization: token {token}\r\n" if token else ""
    request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}"
               "Connection: close\r\n\r\n").encode("ascii", "replace")
    try:
        with socket.create_connection((parts.hostname, parts.port or 80),
                                      timeout=timeout) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head and len(head) < 1024:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                head += chunk
    except (OSError, ValueError):
        return False
    status = head.split(b"\r\n", 1)[0].split()  # b"HTTP/1.1 200 OK"
    return len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1] == b"200"


class NotReady(Exception):
    """The lab did not come up; `reason` says why (it exited, or time ran out)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def wait_ready(status_url: str, token: str, *, timeout: float,
               stopped: Callable[[], str | None], label: str,
               spinner: Spinner | None = None) -> float:
    """Poll until the status API answers; returns the seconds it took.

    `stopped()` returns why the container is no longer running (or None while it runs);
    it is asked about once a second so that a lab that crashed fails at once.
    """
    spinner = spinner or Spinner()
    start = time.monotonic()
    next_check = start
    try:
        while True:
            elapsed = time.monotonic() - start
            if status_ok(status_url, token):
                return elapsed
            now = time.monotonic()
            if now >= next_check:
                reason = stopped()
                if reason is not None:
                    raise NotReady(reason)
                next_check = now + 1.0
            if elapsed > timeout:
                raise NotReady(f"JupyterLab did not answer within {timeout:g} s")
            spinner.update(f"starting {label}… {elapsed:.0f}s")
            time.sleep(POLL_SECONDS)
    finally:
        spinner.clear()
