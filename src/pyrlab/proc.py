"""The only place pyrlab runs subprocesses. Every argv is logged before it runs.

Arguments are always passed as a list (never through a shell), so nothing from a list or
the config can be interpreted as shell syntax.

Interruption (SIGINT, SIGTERM; see `handle_signals`): the engine's children run in a
process group of their own, so a Ctrl-C at the terminal reaches pyrlab alone and pyrlab
decides what stops. The long-running ones (builds, pulls: `stream`) are stopped; a short
command that has started runs to its end (a tag move is never cut in half); no new command
starts, except cleanup inside `uninterruptible()` (removing a test container, an untagged
image, moving all of an image's tags at once).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

log = logging.getLogger("pyrlab.proc")

# After an interrupt, a streamed child that is still there this long after its SIGINT
# gets SIGKILL (BuildKit cancels a build when its client goes).
KILL_AFTER = 10.0
# A streamed child that died of a signal may leave its own children (the CLI's buildx
# plugin) holding the output pipe open: the rest of its process group goes after this.
ORPHANS_AFTER = 2.0


class Interrupted(KeyboardInterrupt):
    """pyrlab got SIGINT or SIGTERM: what runs stops, nothing new starts."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# ------------------------------------------------------------------ interruption state
_state_lock = threading.RLock()  # re-entrant: the signal handler runs on the main thread
_streamed: set[subprocess.Popen[str]] = set()
_received: int | None = None  # the first SIGINT/SIGTERM, once one came
_local = threading.local()  # .depth: how deep this thread is in uninterruptible()
_deferred = False  # the main thread was uninterruptible when the signal came


def signal_name(signum: int) -> str:
    """"SIGKILL" for 9; "signal N" for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def interrupted() -> int | None:
    """The signal that interrupted pyrlab, or None."""
    return _received


def check_interrupted() -> None:
    """Raise Interrupted once a signal came (outside `uninterruptible()`)."""
    if _received is not None and not getattr(_local, "depth", 0):
        raise Interrupted(_received)


@contextmanager
def uninterruptible() -> Iterator[None]:
    """Commands in this block run even after an interrupt (cleanup, or a sequence that must
    not stop half-way); on the main thread, the signal's exception waits for its end."""
    global _deferred
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1
    if (_local.depth == 0 and _deferred and _received is not None
            and threading.current_thread() is threading.main_thread()):
        _deferred = False
        raise Interrupted(_received)


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # its own group (start_new_session): pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def _kill_streamed() -> None:
    with _state_lock:
        children = list(_streamed)
    for process in children:
        _signal_group(process, signal.SIGKILL)


def interrupt(signum: int) -> None:
    """Record the signal and stop the streamed children: SIGINT to their process groups
    now, SIGKILL after KILL_AFTER (at once on a second signal)."""
    global _received
    first = _received is None
    if first:
        _received = signum
    with _state_lock:
        children = list(_streamed)
    for process in children:
        _signal_group(process, signal.SIGINT if first else signal.SIGKILL)
    if first:
        timer = threading.Timer(KILL_AFTER, _kill_streamed)
        timer.daemon = True
        timer.start()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _deferred
    first = _received is None
    interrupt(signum)
    if not first:
        return  # cleanup is under way: let it finish
    if getattr(_local, "depth", 0):
        _deferred = True
        return
    raise Interrupted(signum)


@contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT and SIGTERM end pyrlab through Interrupted (see the module's docstring)
    while the block runs; the handlers before are restored after it. Off the main thread
    (where Python allows no handler) the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def reset() -> None:
    """Forget an interrupt (tests that run several commands in one process)."""
    global _received, _deferred
    _received, _deferred = None, False


# ------------------------------------------------------------------ running
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
    stoppable: bool = False,
) -> Completed:
    """Run to completion and capture output. A missing binary raises FileNotFoundError;
    after an interrupt, Interrupted (outside `uninterruptible()`). `stoppable`: a command
    that may take long (a self-test's check) is stopped by an interrupt as `stream`'s are,
    and then raises Interrupted instead of returning what it printed."""
    check_interrupted()
    log.debug("run: %s", describe(argv))
    text_input = input.decode() if isinstance(input, bytes) else input
    if stoppable:
        return _run_stoppable(argv, env=env, text_input=text_input, stdin=stdin,
                              timeout=timeout, cwd=cwd)
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
        start_new_session=True,
    )
    return Completed(tuple(argv), result.returncode, result.stdout, result.stderr)


@contextmanager
def _stopped_by_interrupts(process: subprocess.Popen[str]) -> Iterator[None]:
    """While the block runs, an interrupt signals the process's group (see `interrupt`)."""
    with _state_lock:
        _streamed.add(process)
    try:
        if _received is not None:  # the signal came while it was starting
            _signal_group(process, signal.SIGINT)
        yield
    finally:
        with _state_lock:
            _streamed.discard(process)


def _run_stoppable(argv: Sequence[str], *, env: Mapping[str, str] | None,
                   text_input: str | None, stdin: IO[bytes] | None, timeout: float | None,
                   cwd: Path | None) -> Completed:
    process = subprocess.Popen(
        list(argv), env=_env(env), cwd=cwd,
        stdin=subprocess.PIPE if text_input is not None and stdin is None else stdin,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        start_new_session=True)
    with _stopped_by_interrupts(process), process:
        try:
            stdout, stderr = process.communicate(text_input, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    check_interrupted()
    return Completed(tuple(argv), process.returncode, stdout, stderr)


def _reap_orphans(process: subprocess.Popen[str]) -> None:
    """When the child dies of a signal, its own children go too (see ORPHANS_AFTER)."""
    if process.wait() < 0:
        time.sleep(ORPHANS_AFTER)
        _signal_group(process, signal.SIGKILL)


def stream(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
) -> int:
    """Run with stdout+stderr merged, calling on_line for each line; returns the exit code
    (negative: killed by that signal). An interrupt stops it (see `interrupt`)."""
    check_interrupted()
    log.debug("stream: %s", describe(argv))
    process = subprocess.Popen(
        list(argv),
        env=_env(env),
        cwd=cwd,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    # Left only once it is gone: until then a second signal or KILL_AFTER may need it.
    with _stopped_by_interrupts(process), process:
        threading.Thread(target=_reap_orphans, args=(process,), daemon=True,
                         name="pyrlab-reap").start()
        assert process.stdout is not None
        for line in process.stdout:
            on_line(line.rstrip("\n"))
        return process.wait()


def interactive(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run attached to the user's terminal (shell, logs -f); returns the exit code."""
    log.debug("interactive: %s", describe(argv))
    return subprocess.call(list(argv), env=_env(env))
