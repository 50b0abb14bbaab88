"""One log file per build: the engine's full output, under .pyrlab/logs/ in the project."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from pyrlab.config.paths import work_dir

KEEP_PER_IMAGE = 20  # older logs of the same image are deleted


def logs_dir(root: Path) -> Path:
    return work_dir(root) / "logs"


def state_logs_dir() -> Path:
    """Where commands that run outside a lab project log (bootstrap without pyrlab.toml)."""
    if os.environ.get("PYRLAB_STATE_DIR"):
        return Path(os.environ["PYRLAB_STATE_DIR"]) / "logs"
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "pyrlab" / "logs"


def new_log_path(folder: Path, name: str) -> Path:
    """`folder/<name>-<YYYYmmdd-HHMMSS>.log`, unique, older ones of `name` pruned."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{name}-{stamp}.log"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{name}-{stamp}-{n}.log"
    mine = re.compile(re.escape(name) + r"-\d{8}-\d{6}(?:-\d+)?\.log$")
    old = sorted((p for p in folder.iterdir() if mine.match(p.name)), key=lambda p: p.name)
    for stale in old[: max(0, len(old) - (KEEP_PER_IMAGE - 1))]:
        stale.unlink(missing_ok=True)
    return path


class BuildLog:
    """A log file that lines are appended to (from any thread), flushed as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("w", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
