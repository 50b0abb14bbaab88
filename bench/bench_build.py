"""Build benchmark: how long pyrlab takes to decide there is nothing to build, and what a
small edit costs. Needs a working engine; builds real images (first run: minutes).

    .venv/bin/python bench/bench_build.py [--engine docker|podman] [--project DIR]
                                           [--full-lists] [--runs N] [--keep]

It makes a lab project of the default image graph (pyrlab-base, pylab, rlab-base, rlab)
with `pyrlab init --base debian` on a base bootstrapped from the Debian mirror (light
package lists unless --full-lists, so the first build takes a few minutes, not tens), then
prints:

- the first build of the whole graph;
- a no-op `pyrlab build` of the whole graph: the command's wall time, and pyrlab's own
  time (the wall time minus the engine commands it waited for), median of N runs;
- `--dry-run` of the same;
- adding one requirement to requirements.txt: what was rebuilt and how long it took.

Images are named pyrlab-bench/… and removed at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pyrlab import proc
from pyrlab.cli import main

PREFIX = "pyrlab-bench/"
BASE = f"{PREFIX}debian:trixie"
LIGHT_LISTS = {
    "base_debs.txt": "less\n",
    "requirements.txt": "six\npackaging\n",
    "r_debs.txt": "",
    "r_requirements.txt": "six\n",
    "r_packages.txt": "apt:jsonlite\n",
}


@contextlib.contextmanager
def engine_time() -> Iterator[list[float]]:
    """Collect the seconds spent waiting for subprocesses (proc.run / proc.stream)."""
    spent: list[float] = []
    originals = proc.run, proc.stream

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - started)
        return wrapper

    proc.run, proc.stream = timed(proc.run), timed(proc.stream)  # type: ignore[assignment]
    try:
        yield spent
    finally:
        proc.run, proc.stream = originals  # type: ignore[assignment]


def pyrlab_in_process(*args: str) -> tuple[int, float, float, int, str]:
    """(exit code, wall seconds, seconds in engine commands, engine commands, stdout)."""
    out, err = io.StringIO(), io.StringIO()
    with engine_time() as spent, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        started = time.perf_counter()
        code = main(list(args))
        wall = time.perf_counter() - started
    if code != 0:
        sys.exit(f"pyrlab {' '.join(args)} failed ({code}):\n{err.getvalue()}")
    return code, wall, sum(spent), len(spent), out.getvalue()


def pyrlab_cli(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """`python -m pyrlab ARGS` as a user runs it: wall time including interpreter start."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pyrlab", *args], capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"pyrlab {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return wall, done


def make_project(root: Path, full_lists: bool) -> None:
    if (root / "pyrlab.toml").exists():
        return
    pyrlab_cli("init", str(root), "--base", "debian")
    config = root / "pyrlab.toml"
    text = config.read_text().replace('image = "pyrlab-debian:trixie"', f'image = "{BASE}"')
    config.write_text(f'prefix = "{PREFIX}"\n' + text)
    if not full_lists:
        for name, content in LIGHT_LISTS.items():
            (root / name).write_text(content)


def row(label: str, seconds: float, note: str = "") -> None:
    print(f"{label:<58} {seconds:7.2f} s{'  ' + note if note else ''}")


def actions(stdout: str) -> dict[str, str]:
    return {i["name"]: i["action"] for i in json.loads(stdout)["images"]}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="docker", choices=("docker", "podman"))
    parser.add_argument("--project", type=Path, default=None,
                        help="lab project to use (made here when it has no pyrlab.toml)")
    parser.add_argument("--full-lists", action="store_true",
                        help="keep init's package lists (JupyterLab, pandas, R packages…)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the images afterwards")
    args = parser.parse_args()

    temp = None
    if args.project is None:
        temp = Path(tempfile.mkdtemp(prefix="pyrlab-bench-"))
        args.project = temp / "lab"
    root = args.project.resolve()
    make_project(root, args.full_lists)
    common = ["-C", str(root), "--engine", args.engine]

    probe = subprocess.run([args.engine, "image", "inspect", BASE], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        seconds, _ = pyrlab_cli("bootstrap", "--engine", args.engine, "--tag", BASE)
        row(f"bootstrap {BASE} from the Debian mirror", seconds)

    seconds, done = pyrlab_cli("build", *common, "--json")
    built = [n for n, a in actions(done.stdout).items() if a == "built"]
    print(done.stderr.splitlines()[0])
    row(f"first build ({len(built)} of 4 images built)", seconds)

    walls, owns, engines, calls = [], [], [], 0
    for _ in range(args.runs):
        cli_wall, done = pyrlab_cli("build", *common, "--json")
        assert set(actions(done.stdout).values()) == {"skipped"}, done.stdout
        _, wall, engine, calls, _ = pyrlab_in_process("build", *common)
        walls.append(cli_wall)
        owns.append(wall - engine)
        engines.append(engine)
    n = f"median of {args.runs}"
    row(f"no-op build of the graph: command wall time ({n})", statistics.median(walls),
        "(Python start-up included)")
    row("  of which engine commands", statistics.median(engines), f"({calls} commands)")
    row("  pyrlab's own time after start-up", statistics.median(owns))
    dry_wall, _ = pyrlab_cli("build", *common, "--dry-run")
    row("build --dry-run: command wall time", dry_wall)

    requirements = root / "requirements.txt"
    original = requirements.read_text()
    requirements.write_text(original + "idna\n")
    try:
        seconds, done = pyrlab_cli("build", *common, "--json")
    finally:
        requirements.write_text(original)
    rebuilt = [n for n, a in actions(done.stdout).items() if a == "built"]
    row(f"one requirement added: rebuilt {', '.join(rebuilt)}", seconds)

    seconds, done = pyrlab_cli("build", *common, "--json")
    rebuilt = [n for n, a in actions(done.stdout).items() if a == "built"]
    row(f"and removed again: rebuilt {', '.join(rebuilt)}", seconds)

    if not args.keep:
        pyrlab_cli("clean", *common)
        subprocess.run([args.engine, "rmi", BASE], capture_output=True, check=False)
    if args.keep:
        print(f"images and the project kept: {root}")
    elif temp is not None:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
