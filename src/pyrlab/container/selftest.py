"""pyrlab's self-test, run by `pyrlab test` inside a throwaway container of the image.

argv: `imports JSON` (JSON: [[distribution, [modules] or null], …]; null: every public
top-level module its metadata names) or `kernels JSON` (JSON: [kernel name, …]). Prints one JSON value as its last line:
- imports: [[distribution, module, seconds, error, exception types], …]; "" as error means
  it worked. Each module is imported in its own process, forked from this one before it
  imported anything of the image's, so that one module's failure (or crash, or what it
  changes in the interpreter) neither hides nor causes another's; as many at a time as the
  container has CPUs.
- kernels: [[kernel, "6*7", seconds, error], …].
What to check and how to judge it is decided on the host (pyrlab/selftest.py).
"""

import importlib
import importlib.metadata
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

EXTENSION_SUFFIXES = (".so", ".pyd")
MODULE_TIMEOUT = 300  # seconds one import may take before its process is killed
ERROR_CHARS = 2000  # of an error's last line: a result stays far below a pipe's buffer


def last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()[:ERROR_CHARS]


def import_names(dist: importlib.metadata.Distribution) -> list[str]:
    """top_level.txt, else the top-level names in RECORD; no private `_x` names, no .pth
    files, no scripts (RECORD names them ../../bin/…)."""
    text = dist.read_text("top_level.txt")
    names = set(text.split()) if text else set()
    if not text:
        for path in dist.files or ():
            parts = path.parts
            if not parts or parts[0] in ("..", "__pycache__") \
                    or parts[0].endswith((".dist-info", ".data", ".egg-info")):
                continue
            if len(parts) > 1:
                names.add(parts[0])
            elif parts[0].endswith(".py"):
                names.add(parts[0][:-3])
            elif parts[0].endswith(EXTENSION_SUFFIXES):
                names.add(parts[0].split(".")[0])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))


def import_alone(module: str, out: int) -> None:
    """In a forked child: import `module`, write [seconds, error, types] to `out`, exit."""
    os.dup2(2, 1)  # what the module prints must not mix with the parent's JSON
    signal.alarm(MODULE_TIMEOUT)
    started = time.monotonic()
    error, types = "", []
    try:
        importlib.import_module(module)
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: report it
        error = last_line(exc)
        types = [t.__name__ for t in type(exc).__mro__ if t not in (BaseException, object)]
    os.write(out, json.dumps([round(time.monotonic() - started, 3), error, types]).encode())
    os._exit(0)


def ended(status: int) -> str:
    """Why a child ended without a result."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGALRM:
            return f"no answer within {MODULE_TIMEOUT} s"
        return f"the import killed its process ({signal.Signals(number).name})"
    return f"the import ended its process with code {os.waitstatus_to_exitcode(status)}"


def import_each(modules: list[str]) -> list[list[Any]]:
    """[seconds, error, types] per module, each imported in a child of its own."""
    jobs = max(1, len(os.sched_getaffinity(0)))
    results: list[list[Any]] = [[0.0, "", []] for _ in modules]
    running: dict[int, tuple[int, int, float]] = {}  # pid → (index, read end, started)

    def reap() -> None:
        pid, status = os.wait()
        index, read_end, started = running.pop(pid)
        os.set_blocking(read_end, False)  # a process the import left may hold the pipe
        data = b""
        try:
            while chunk := os.read(read_end, 65536):
                data += chunk
        except BlockingIOError:
            pass
        os.close(read_end)
        try:
            results[index] = json.loads(data)
        except ValueError:
            results[index] = [round(time.monotonic() - started, 3), ended(status), []]

    for index, module in enumerate(modules):
        while len(running) >= jobs:
            reap()
        read_end, write_end = os.pipe()
        started = time.monotonic()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into this loop
            try:
                os.close(read_end)
                import_alone(module, write_end)
            finally:
                os._exit(1)
        os.close(write_end)
        running[pid] = (index, read_end, started)
    while running:
        reap()
    return results


def imports(wanted: list[list[object]]) -> list[list[object]]:
    rows: list[list[object]] = []
    todo: list[tuple[int, str]] = []  # (row index, module)
    for name, modules in wanted:
        try:
            dist = importlib.metadata.distribution(str(name))
        except importlib.metadata.PackageNotFoundError:
            rows.append([name, "", 0.0, "not installed", []])
            continue
        found = import_names(dist) if not isinstance(modules, list) else [str(m) for m in modules]
        if not found:
            rows.append([name, "", 0.0, "", []])  # a meta-package: nothing to import
        for module in found:
            todo.append((len(rows), module))
            rows.append([name, module, 0.0, "", []])
    for (index, _), result in zip(todo, import_each([m for _, m in todo]), strict=True):
        rows[index][2:] = result
    return rows


def run_line(name: str) -> str:
    """Start kernel `name`, run 6*7 in it, shut it down; the error, or ""."""
    from jupyter_client.manager import start_new_kernel  # type: ignore[import-not-found]

    output: list[str] = []

    def collect(msg: dict[str, Any]) -> None:
        content = msg.get("content", {})
        output.append(str(content.get("text", "")))
        output.append(str(content.get("data", {}).get("text/plain", "")))
        if msg.get("msg_type") == "error":
            output.append(f"{content.get('ename')}: {content.get('evalue')}")

    manager, client = start_new_kernel(kernel_name=name, startup_timeout=90)
    try:
        reply = client.execute_interactive("6*7", timeout=60, output_hook=collect)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    text = " ".join(o for o in output if o).strip()
    if reply["content"]["status"] != "ok" or "42" not in text:
        return f"6*7 gave {text[-200:] or reply['content']['status']!r}"
    return ""


def kernels(names: list[str]) -> list[list[object]]:
    rows: list[list[object]] = []
    for name in names:
        started = time.monotonic()
        try:
            error = run_line(name)
        except BaseException as exc:  # noqa: BLE001 - report, go on
            error = last_line(exc)
        rows.append([name, "6*7", round(time.monotonic() - started, 3), error])
    return rows


if __name__ == "__main__":
    mode, data = sys.argv[1], json.loads(sys.argv[2])
    result = imports(data) if mode == "imports" else kernels(data)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
