"""pyrlab's own cost in the inner loop: a no-op build and `up` of a built image.

    .venv/bin/python bench/bench_startup.py -C LAB [--image pylab] [--noop-image NAME]
                                           [--runs 5] [--before SRC] [--trace]

Needs a lab whose --noop-image (default: IMAGE) and its ancestors are built and up to date
(`pyrlab build --dry-run -C LAB NAME` says skip for each), and a built IMAGE (a JupyterLab
image): nothing here builds a pyrlab image. `up IMAGE` without --no-build is measured only
when IMAGE is up to date too. Side by side, alternately, median of --runs:

- the engine's own fully cached rebuild of a two-step Dockerfile on the lab's base image
  (`docker buildx build --load -t X .`, the original way's no-op);
- `pyrlab build NAME`, a no-op;
- `pyrlab up IMAGE --no-build` until JupyterLab answers (the command returns then);
- `pyrlab up IMAGE` of the up-to-date image (it plans first);
- `pyrlab down IMAGE`.

With --before SRC (a folder holding another pyrlab's `pyrlab/` package, e.g. an export of
an older commit's src/), each pyrlab figure is also taken with that code, alternately.
With --trace, one more `up --no-build` runs with every engine command and status probe
timed (start offset and duration), printed to stderr.

pyrlab runs as a user runs it: no PYRLAB_* overrides and Python's bytecode cache on.
Labs run on a free port with their own notebook and home folders (in a temporary folder
inside LAB, owned by the lab's UID); the benchmark's image, labs and folders are removed at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TWO_STEP = "pyrlab-startup-bench/two-step:latest"
TRACER = """
import sys, time
T0 = time.perf_counter()
from pyrlab import proc
def traced(kind, call):
    def wrapper(argv, *a, **k):
        began = time.perf_counter()
        try:
            return call(argv, *a, **k)
        finally:
            took = time.perf_counter() - began
            print(f"trace {kind:6} +{(began - T0) * 1000:7.1f} ms {took * 1000:6.1f} ms "
                  f"{' '.join(argv)[:110]}", file=sys.stderr)
    return wrapper
proc.run = traced("run", proc.run)
proc.stream = traced("stream", proc.stream)
from pyrlab.launch import ready
probes = []
def probe(*a, _real=ready.status_ok, **k):
    probes.append(time.perf_counter())
    return _real(*a, **k)
ready.status_ok = probe
from pyrlab.cli import main
code = main(sys.argv[1:])
if probes:
    print(f"trace probes {len(probes)}, first +{(probes[0] - T0) * 1000:.1f} ms, "
          f"last +{(probes[-1] - T0) * 1000:.1f} ms", file=sys.stderr)
print(f"trace end    +{(time.perf_counter() - T0) * 1000:7.1f} ms", file=sys.stderr)
raise SystemExit(code)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sh(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def timed(run: Callable[..., object], *args: str) -> float:
    began = time.perf_counter()
    run(*args)
    return time.perf_counter() - began


class Pyrlab:
    """One pyrlab code base, run as `python -m pyrlab` the way a user runs it."""

    def __init__(self, label: str, src: Path | None) -> None:
        self.label = label
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("PYRLAB_") and k != "PYTHONDONTWRITEBYTECODE"}
        if src is not None:
            self.env["PYTHONPATH"] = str(src)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh(sys.executable, "-m", "pyrlab", *args, env=self.env)

    def trace(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-c", TRACER, *args], capture_output=True,
                              text=True, check=False, env=self.env)
        return done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-C", "--lab", type=Path, required=True)
    parser.add_argument("--image", default="pylab")
    parser.add_argument("--noop-image", default=None, metavar="NAME")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, metavar="SRC")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    lab = ["-C", str(args.lab)]
    codes = [Pyrlab("now", None)]
    if args.before is not None:
        codes.insert(0, Pyrlab("before", args.before))
    noop = args.noop_image or args.image

    def up_to_date(code: Pyrlab, image: str) -> tuple[bool, str]:
        plan = json.loads(code("build", *lab, "--dry-run", "--json", image).stdout)
        return (plan["base"]["action"] == "use"
                and all(i["action"] == "skip" for i in plan["images"])), plan["base"]["ref"]

    plans_up = True
    for code in codes:  # also writes each code base's bytecode cache
        fresh, base_ref = up_to_date(code, noop)
        if not fresh:
            sys.exit(f"{noop} is not up to date in {args.lab}: this benchmark builds no "
                     "pyrlab image (`pyrlab build --dry-run` says what would be built)")
        plans_up = plans_up and up_to_date(code, args.image)[0]
    if not plans_up:
        print(f"note: {args.image} is not up to date: `up` without --no-build (it would "
              "build) is left out", file=sys.stderr)

    # Inside the lab: a project may mount its own folders without --allow-unsafe.
    work = Path(tempfile.mkdtemp(prefix=".pyrlab-startup-bench-", dir=args.lab.resolve()))
    folders = {"notebooks": work / "notebooks", "home": work / "home"}
    for folder in folders.values():
        folder.mkdir()
        if os.geteuid() == 0:  # the lab runs as UID 1000 (run.uid by default)
            os.chown(folder, 1000, 1000)
    run_sets = [a for key, folder in folders.items() for a in ("--set", f"run.{key}={folder}")]
    context = work / "two-step"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base_ref}\nRUN echo one > /one\n"
                                        "RUN echo two > /two\n")
    build_two_step = ("docker", "buildx", "build", "--load", "-t", TWO_STEP, str(context))
    sh(*build_two_step)  # the first build: every later one is fully cached

    figures: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(seconds)

    port = free_port()
    try:
        for _ in range(args.runs):
            record("engine cached rebuild", timed(sh, *build_two_step))
            for code in codes:
                record(f"build no-op [{code.label}]", timed(code, "build", *lab, noop))
            ups = [("up --no-build", ["--no-build"])] + ([("up (plans)", [])] if plans_up else [])
            for code in codes:
                for how, extra in ups:
                    record(f"{how} [{code.label}]", timed(
                        code, "up", args.image, *lab, *extra, "--port", str(port), *run_sets))
                    record(f"down [{code.label}]", timed(
                        code, "down", args.image, *lab, "--port", str(port), *run_sets))
        if args.trace:
            for code in codes:
                print(f"--- {code.label}: up --no-build", file=sys.stderr)
                print(code.trace("up", args.image, *lab, "--no-build", "--port", str(port),
                                 *run_sets), file=sys.stderr, end="")
                code("down", args.image, *lab, "--port", str(port), *run_sets)
    finally:
        subprocess.run(["docker", "rm", "--force", f"pyrlab-{args.image}-{port}"],
                       capture_output=True, check=False)
        subprocess.run(["docker", "rmi", TWO_STEP], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    width = max(map(len, figures))
    print(f"median of {args.runs} (min–max), seconds")
    for name, values in figures.items():
        print(f"{name:<{width}}  {statistics.median(values):6.3f}  "
              f"({min(values):.3f}–{max(values):.3f})")


if __name__ == "__main__":
    main()
