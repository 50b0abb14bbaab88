"""One build of a project at a time: `build`, `up` (when it builds), `upgrade` and
`rollback` hold an exclusive lock on `.pyrlab/build.lock` while they plan and build.

A second run waits for the first (saying so, with the holder's pid) and then plans
afresh, so it sees what the first one built and tags always move in one order. The lock is
the kernel's (flock): a run that dies, however it dies, holds it no more.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyrlab.config.paths import work_dir
from pyrlab.errors import BuildError


def lock_path(root: Path) -> Path:
    return work_dir(root) / "build.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


@contextmanager
def build_lock(root: Path, note: Callable[[str], None]) -> Iterator[None]:
    """Hold the project's build lock for the block, waiting for another run that has it
    (an interrupt ends the wait)."""
    path = lock_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held until the block's end
    except OSError as exc:
        raise BuildError(f"cannot create the build lock {path}: {exc.strerror}",
                         hint="pyrlab needs to write in the project's .pyrlab/ folder") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            note(f"waiting for another pyrlab build of this project"
                 f"{f' (pid {holder})' if holder else ''}…")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
