"""The only place pyrlab runs subprocesses. Every argv is logged before it runs.

Arguments are always passed as a list (never through a shell), so nothing from a list or
the config can be interpreted as shell syntax.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("pyrlab.proc")


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def describe(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | str | None = None,
    stdin: IO[bytes] | None = None,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run to completion and capture output. A missing binary raises FileNotFoundError."""
    log.debug("run: %s", describe(argv))
    text_input = input.decode() if isinstance(input, bytes) else input
    result = subprocess.run(
        list(argv),
        env=_env(env),
        input=text_input if stdin is None else None,
        stdin=stdin,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    return Completed(tuple(argv), result.returncode, result.stdout, result.stderr)


def stream(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
) -> int:
    """Run with stdout+stderr merged, calling on_line for each line; returns the exit code."""
    log.debug("stream: %s", describe(argv))
    with subprocess.Popen(
        list(argv),
        env=_env(env),
        cwd=cwd,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            on_line(line.rstrip("\n"))
        return process.wait()


def interactive(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run attached to the user's terminal (shell, logs -f); returns the exit code."""
    log.debug("interactive: %s", describe(argv))
    return subprocess.call(list(argv), env=_env(env))
