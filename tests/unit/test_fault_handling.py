"""Faults without an engine: SIGINT/SIGTERM stop what pyrlab streams and refuse new
commands except cleanup; the project's build lock makes a second build wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrlab import proc
from pyrlab.errors import BuildError
from pyrlab.imagebuild.buildlock import build_lock, lock_path

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    proc.reset()
    yield
    proc.reset()


def _python(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


SIGNALLED = """
    import threading
    import time
    from pyrlab import proc

    def build():  # as the executor's worker threads stream a build
        try:
            proc.stream(["sh", "-c", "echo child $$; exec sleep 60"],
                        on_line=lambda line: print(line, flush=True))
        except proc.Interrupted:
            pass

    worker = threading.Thread(target=build)
    try:
        with proc.handle_signals():
            worker.start()
            while worker.is_alive():  # not join(): an exception cuts a join short
                time.sleep(0.01)
            proc.check_interrupted()
    except proc.Interrupted as exc:
        worker.join()
        print("interrupted", exc.exit_code, flush=True)
        try:
            proc.run(["true"])
            print("ran", flush=True)
        except proc.Interrupted:
            print("refused", flush=True)
        with proc.uninterruptible():
            print("cleanup", proc.run(["true"]).ok, flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_pyrlab_alone_stops_its_streamed_child(signum: int) -> None:
    process = _python(SIGNALLED)
    first = _line(process)
    assert first.startswith("child "), first
    child = int(first.split()[1])
    started = time.monotonic()
    process.send_signal(signum)  # to pyrlab alone: the child is in a group of its own
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - started < 5  # SIGINT ends `sleep`, no SIGKILL needed
    assert output.split("\n")[:3] == [f"interrupted {128 + signum}", "refused", "cleanup True"]
    assert _gone(child)


def test_a_stoppable_command_is_stopped_and_raises_instead_of_returning(
        tmp_path: Path) -> None:
    started_file = tmp_path / "started"
    process = _python(f"""
        import threading
        import time
        from pyrlab import proc

        def check():  # as a self-test's `exec` runs in a worker thread
            try:
                proc.run(["sh", "-c", "touch {started_file}; exec sleep 60"], stoppable=True)
                print("returned", flush=True)
            except proc.Interrupted:
                print("stopped", flush=True)

        worker = threading.Thread(target=check)
        try:
            with proc.handle_signals():
                worker.start()
                while worker.is_alive():  # not join(): an exception cuts a join short
                    time.sleep(0.01)
        except proc.Interrupted:
            worker.join()
    """)
    deadline = time.monotonic() + 30
    while not started_file.exists():  # the check runs (its output is captured)
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert output.strip() == "stopped", (process.returncode, output)


def test_uninterruptible_on_the_main_thread_raises_at_its_end() -> None:
    done = []
    with proc.handle_signals():
        with pytest.raises(proc.Interrupted) as caught, proc.uninterruptible():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, and defers
            done.append(proc.run(["true"]).ok)  # cleanup still runs
        assert caught.value.exit_code == 130
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_second_build_waits_for_the_first_and_names_its_pid(tmp_path: Path) -> None:
    notes: list[str] = []
    with build_lock(tmp_path, notes.append):
        assert lock_path(tmp_path).read_text() == f"{os.getpid()}\n"
        waiter = _python(f"""
            from pathlib import Path
            from pyrlab.imagebuild.buildlock import build_lock
            with build_lock(Path({str(tmp_path)!r}), lambda text: print(text, flush=True)):
                print("got it", flush=True)
        """)
        assert _line(waiter) == ("waiting for another pyrlab build of this project "
                                 f"(pid {os.getpid()})…")
        time.sleep(0.3)
        assert waiter.poll() is None  # still waiting while this one holds the lock
    output, _ = waiter.communicate(timeout=30)
    assert output.strip() == "got it" and waiter.returncode == 0
    assert notes == []  # the first did not wait
    assert lock_path(tmp_path).read_text() == ""  # no holder now


def test_a_lock_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".pyrlab").write_text("a file where the folder should be")
    with pytest.raises(BuildError, match="cannot create the build lock"), \
            build_lock(tmp_path, print):
        pass
