"""What importing each module in a process of its own costs the self-test, against one
process for all (the gate before issue 19).

    .venv/bin/python bench/bench_gate_isolation.py IMAGE [--runs 3] [--old REV]

IMAGE: a built pyrlab image (its org.pyrlab.lists label names the listed distributions).
In one no-network container of it, as UID 1000, the container script of this checkout
(container/selftest.py: a fork per module, as many at a time as the container has CPUs) and
that of REV (default 2c6be06, one process) import every public top-level module of every
listed distribution, alternately, --runs times each; the median wall time of each `exec`
is printed with the number of modules and of failures each saw.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/opt/venv/bin/python"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=True).stdout


def listed(image: str) -> list[str]:
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}",
                               image))
    lines = json.loads(labels.get("org.pyrlab.lists", "{}")).get("python", {}).get("lines", [])
    names = []
    for line in lines:
        try:
            names.append(Requirement(str(line).split(":", 1)[-1]).name)
        except InvalidRequirement:
            continue
    return sorted(set(names))


def timed(container: str, script: str, data: str) -> tuple[float, list[list[object]]]:
    started = time.monotonic()
    out = subprocess.run(["docker", "exec", container, PYTHON, "-I", "-c", script, "imports",
                          data], capture_output=True, text=True, check=False).stdout
    seconds = time.monotonic() - started
    return seconds, json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old", default="2c6be06")
    args = parser.parse_args()
    new = (ROOT / "src/pyrlab/container/selftest.py").read_text()
    old = subprocess.run(["git", "-C", str(ROOT), "show",
                          f"{args.old}:src/pyrlab/container/selftest.py"],
                         capture_output=True, text=True, check=True).stdout
    dists = listed(args.image)
    data = json.dumps([[d, None] for d in dists])
    container = docker("run", "-d", "--rm", "--network", "none", "--user", "1000:1000",
                       "-e", "HOME=/tmp", "--entrypoint", "sleep", args.image,
                       "infinity").strip()
    try:
        times: dict[str, list[float]] = {"one process": [], "a fork per module": []}
        seen: dict[str, tuple[int, int]] = {}
        for _ in range(args.runs):
            for label, script in (("one process", old), ("a fork per module", new)):
                seconds, rows = timed(container, script, data)
                times[label].append(seconds)
                seen[label] = (len(rows), sum(1 for r in rows if r[3]))
        cpus = docker("exec", container, "nproc").strip()
    finally:
        docker("rm", "-f", container)
    print(f"{args.image}: {len(dists)} listed distributions, {cpus} CPUs in the container")
    for label, values in times.items():
        modules, failures = seen[label]
        print(f"  {label:<18} median {statistics.median(values):6.2f} s of {args.runs} "
              f"({', '.join(f'{v:.2f}' for v in values)}); {modules} modules, "
              f"{failures} failed")


if __name__ == "__main__":
    sys.exit(main())
