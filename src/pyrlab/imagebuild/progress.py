"""What the user sees while images build, always on stderr (stdout stays for data).

On a terminal: one status line redrawn in place (each building image, its current step
or count and elapsed time) with finished images printed above it. Elsewhere (CI logs,
pipes): plain lines, one per step, none for a count. Called from the build threads, hence the lock.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from pyrlab.engines.base import BuildFailure
from pyrlab.output import is_quiet


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class Progress:
    REFRESH = 0.25  # seconds between redraws of the status line

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = is_quiet()  # -q: only a failure is shown
        if self.quiet:
            tty = False
        if tty is None:
            tty = self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self.tty = tty
        self._lock = threading.RLock()
        self._active: dict[str, tuple[float, str]] = {}  # name → (started, current step)
        self._shown = False  # a status line is on screen
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.tty:
            self._ticker = threading.Thread(target=self._tick, name="pyrlab-progress",
                                            daemon=True)
            self._ticker.start()

    # ------------------------------------------------------------ events
    def note(self, text: str) -> None:
        self._print(text)

    def start(self, name: str, what: str) -> None:
        with self._lock:
            self._active[name] = (time.monotonic(), "starting")
            self._print(f"{name}: {what}")

    def step(self, name: str, title: str) -> None:
        with self._lock:
            started, _ = self._active.get(name, (time.monotonic(), ""))
            self._active[name] = (started, title)
            if not self.tty:
                self._print(f"{name}: {title}")
            else:
                self._draw()

    def status(self, name: str, text: str) -> None:
        """A passing state of a step (a count that grows): the status line on a terminal
        shows it; elsewhere it is not worth a line."""
        with self._lock:
            if not self.tty:
                return
            started, _ = self._active.get(name, (time.monotonic(), ""))
            self._active[name] = (started, text)
            self._draw()

    def done(self, name: str, text: str) -> None:
        with self._lock:
            self._active.pop(name, None)
            self._print(f"{name}: {text}")

    def failed(self, name: str, failure: BuildFailure, log: Path | None) -> None:
        with self._lock:
            self._active.pop(name, None)
            at = f" at {failure.step}" if failure.step else ""
            lines = [f"{name}: FAILED{at}; its last lines:"]
            lines += [f"  | {line}" for line in failure.tail]
            if failure.error:
                lines.append(f"  {failure.error}")
            if log is not None:
                lines.append(f"  full log: {log}")
            self._print("\n".join(lines), failure=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            self._clear()

    # ------------------------------------------------------------ drawing
    def _print(self, text: str, *, failure: bool = False) -> None:
        if self.quiet and not failure:
            return
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            self._draw()
            self.stream.flush()

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False

    def _draw(self) -> None:
        if not self.tty or not self._active:
            return
        now = time.monotonic()
        parts = [f"{name} {step} {_elapsed(now - started)}"
                 for name, (started, step) in self._active.items()]
        width = shutil.get_terminal_size((100, 24)).columns - 1
        line = "building: " + " | ".join(parts)
        if len(line) > width:
            line = line[: max(0, width - 1)] + "…"
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._shown = True

    def _tick(self) -> None:
        while not self._stop.wait(self.REFRESH):
            with self._lock:
                if self._active:
                    self._draw()
