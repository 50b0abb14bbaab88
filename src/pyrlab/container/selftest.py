"""pyrlab's self-test, run by `pyrlab test` inside a throwaway container of the image.

argv: `imports JSON` (JSON: [[distribution, [modules] or null], …]; null: find the import
names in the distribution's metadata) or `kernels JSON` (JSON: [kernel name, …]). Prints
one JSON list of [name, what, seconds, error] rows; "" as error means it worked. What to
check and how to report it is decided on the host (pyrlab/selftest.py).
"""

import importlib
import importlib.metadata
import json
import sys
import time
import traceback
from typing import Any

EXTENSION_SUFFIXES = (".so", ".pyd")


def last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


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


def imports(wanted: list[list[object]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, modules in wanted:
        try:
            dist = importlib.metadata.distribution(str(name))
        except importlib.metadata.PackageNotFoundError:
            rows.append([name, "", 0.0, "not installed"])
            continue
        found = import_names(dist) if not isinstance(modules, list) else [str(m) for m in modules]
        if not found:
            rows.append([name, "", 0.0, ""])  # a meta-package: nothing to import
        for module in found:
            started = time.monotonic()
            try:
                importlib.import_module(module)
                error = ""
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: report, go on
                error = last_line(exc)
            rows.append([name, module, round(time.monotonic() - started, 3), error])
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
