"""Waiting until a lab's JupyterLab answers on its status API, with a spinner on a TTY."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TextIO

POLL_SECONDS = 0.1


class Spinner:
    """One self-rewriting status line on stderr, only when stderr is a terminal."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
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
    """Whether Jupyter Server's /api/status answers 200 to this token."""
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


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
