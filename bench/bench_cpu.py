"""Where the CPU goes in a cold build of pylab, pyrlab's way and the original way (issue 24).

    .venv/bin/python bench/bench_cpu.py [--lab ds25|heavy] [--runs 3] [--keep]

Each run starts from a cold cache as bench_inner_loop.py's cold scenario makes it (this
benchmark's images removed, the build cache records of both ways pruned, download caches
included), then builds pylab both ways one after the other, the order alternating from run
to run: the original way (bench_inner_loop.Original: one `docker buildx build --load`) and
`pyrlab build pylab` with its defaults (bytecode and self-test gate on). Each build gets a
fresh project folder, so no run reuses a lock or a pin of an earlier one.

While it runs, a thread samples every SAMPLE_S seconds the CPU counters that tell the work
apart (cgroup v1 CPU accounting; the method of notes/cold-plan.md §2):
- the machine: /proc/stat's busy ticks (user nice system irq softirq);
- build steps: /sys/fs/cgroup/cpuacct/docker/buildkit/cpuacct.usage (every RUN step of
  both ways: BuildKit runs them in that cgroup, and a cgroup's counter keeps the CPU of its
  finished children);
- containers (pyrlab's gate): /sys/fs/cgroup/cpuacct/docker/cpuacct.usage minus the above;
- dockerd and containerd: utime + stime of the process itself (exports, layer store,
  snapshots; not cutime/cstime, where runc's children, the steps, land too);
- the client (pyrlab, the docker CLI, buildx): getrusage(RUSAGE_CHILDREN) around the build;
- the rest: the machine's busy time less all of the above (kernel threads, shims, this
  benchmark's own sampling).

Each way's build output is stamped line by line as it arrives (the original way's from
its pipe, pyrlab's by tailing the new files under LAB/.pyrlab/logs), which cuts the build
into BuildKit's steps (`#N [...]` to `#N DONE`), the export (the last step's end to the end
of `exporting to image`), pyrlab's bytecode compile (from uv-install's "pyrlab: bytecode …
in Xs" line) and its self-test gate ("# pyrlab: self-test of" to "passed"/"FAILED").

Printed, side by side: each way's median wall time and CPU-s with the spread (min-max),
CPU / (cores × wall), the idle core-seconds the original way leaves (cores × wall - CPU),
pyrlab's CPU-s for bytecode and for the gate, and the study's decision: parity is out of
reach on this machine when pyrlab's CPU-s exceed cores × the original way's wall time (no
schedule can pack them in), and by the study's rule (cold-plan §4) when they exceed
STUDY_SHARE of it (the export's idle core and the network waits cannot be filled). The
figures, every run's steps included, go to bench/results/<date>-cpu-<lab>.json.

Only this benchmark's images and cache records are removed (bench_inner_loop's
remove_images and prune): it shares bench_inner_loop's image names and base, so the two
must not run at the same time. Other work on the engine during a run counts as this
run's: the load before each build is measured and printed; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

# bench/ is sys.path[0] when this file runs as a script.
from bench_inner_loop import (
    BASE,
    BASE_DEBS,
    BYTECODE_LINE,
    DS25,
    HEAVY,
    HEAVY_DEBS,
    ORIGINAL_MARK,
    PYLAB_DEBS,
    RESULTS,
    Lab,
    Original,
    cold_start,
    machine,
    prune,
    pyrlab,
    remove_images,
    sh,
    user_env,
)

CGROUP = Path("/sys/fs/cgroup/cpuacct/docker")
BUILDKIT = CGROUP / "buildkit"
SAMPLE_S = 0.25
TAIL_S = 0.1
TICK = os.sysconf("SC_CLK_TCK")
# cold-plan §4: pyrlab's CPU-s above 1.7 × the original way's wall on 2 cores (0.85 of
# what the cores give) cannot be packed in: the export leaves a core idle and network waits
# leave both, and pyrlab's own work cannot fill them.
STUDY_SHARE = 0.85
# A machine busier than this before a build (cores) is noted: its work counts as the run's.
QUIET_CORES = 0.25
SETTLE_MAX_S = 20.0
STAMP_LAG_S = 0.5  # how late a stamp may be (log polling, buildx's output ticks)
SHOWN_STEP_S = 0.3  # steps shorter than this are only in the JSON


class AccountingUnavailable(Exception):
    pass


# ----------------------------------------------------------------------- counters
class Sample(NamedTuple):
    t: float  # time.monotonic()
    busy: float  # CPU-s of the whole machine
    docker: float  # CPU-s of the docker cgroup (containers and build steps)
    buildkit: float  # CPU-s of the build steps
    dockerd: float
    containerd: float


def process_id(name: str) -> int | None:
    """The lowest PID whose command is `name` (as `pgrep -x` finds it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return min(found) if found else None


def busy_seconds(stat_line: str) -> float:
    """Busy CPU-s in /proc/stat's `cpu` line: user nice system irq softirq (not idle,
    iowait, steal, or guest, which user already counts)."""
    ticks = [int(v) for v in stat_line.split()[1:]]
    return (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / TICK


def process_seconds(stat: str) -> float:
    """utime + stime of /proc/PID/stat's text (fields 14 and 15; the command in parentheses
    may hold spaces)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def check_accounting() -> tuple[int, int | None]:
    """dockerd's and containerd's PIDs, or AccountingUnavailable saying what is missing."""
    usage = CGROUP / "cpuacct.usage"
    if not usage.is_file():
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").is_file()
        raise AccountingUnavailable(
            f"{usage} not found: this benchmark needs cgroup v1 CPU accounting of Docker "
            "(the cpuacct controller, Docker's cgroupfs driver, containers under docker/). "
            + ("This host runs cgroup v2 (unified hierarchy); " if v2 else "")
            + "Run it on a host like the CI's (.ci/setup-host.sh: cgroup v1, cgroupfs), "
            "or check `docker info --format '{{.CgroupVersion}} {{.CgroupDriver}}'`.")
    try:
        int(usage.read_text())
    except (OSError, ValueError) as exc:
        raise AccountingUnavailable(f"{usage} cannot be read ({exc}): run as a user "
                                    "that may read Docker's cgroups") from exc
    dockerd = process_id("dockerd")
    if dockerd is None:
        raise AccountingUnavailable("no dockerd process on this machine: this benchmark "
                                    "reads dockerd's own CPU time from /proc, so the engine "
                                    "must run here (start it with .ci/setup-host.sh)")
    try:
        process_seconds((Path("/proc") / str(dockerd) / "stat").read_text())
    except (OSError, ValueError) as exc:
        raise AccountingUnavailable(f"dockerd's /proc/{dockerd}/stat cannot be read "
                                    f"({exc})") from exc
    return dockerd, process_id("containerd")


def read_ns(path: Path) -> float:
    try:
        return int(path.read_text()) / 1e9
    except (OSError, ValueError):
        return 0.0  # BuildKit makes its cgroup at its first RUN step


def read_process(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        return process_seconds((Path("/proc") / str(pid) / "stat").read_text())
    except (OSError, ValueError):
        return 0.0


def sample(dockerd: int, containerd: int | None) -> Sample:
    with open("/proc/stat") as stat:
        line = stat.readline()
    return Sample(time.monotonic(), busy_seconds(line), read_ns(CGROUP / "cpuacct.usage"),
                  read_ns(BUILDKIT / "cpuacct.usage"), read_process(dockerd),
                  read_process(containerd))


class Sampler(threading.Thread):
    def __init__(self, dockerd: int, containerd: int | None) -> None:
        super().__init__(daemon=True)
        self.pids = (dockerd, containerd)
        self.samples: list[Sample] = [sample(*self.pids)]
        self.stopped = threading.Event()
        self.lock = threading.Lock()  # samples stay in time order

    def take(self) -> float:
        with self.lock:
            self.samples.append(sample(*self.pids))
            return self.samples[-1].t

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_S):
            self.take()

    def now(self) -> float:
        """A fresh sample's time (a window's end needs one after the event)."""
        return self.take()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def at(samples: Sequence[Sample], t: float) -> Sample:
    """The counters at time t, linear between the samples around it (clamped at the ends)."""
    if t <= samples[0].t:
        return samples[0]
    if t >= samples[-1].t:
        return samples[-1]
    lo, hi = 0, len(samples) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if samples[mid].t <= t:
            lo = mid
        else:
            hi = mid
    a, b = samples[lo], samples[hi]
    share = (t - a.t) / (b.t - a.t) if b.t > a.t else 0.0
    return Sample(t, *(x + (y - x) * share for x, y in zip(a[1:], b[1:], strict=True)))


def cpu(samples: Sequence[Sample], start: float, end: float) -> dict[str, float]:
    """CPU-s by source between two times: total (the machine), steps, containers, dockerd,
    containerd, other (total less those four)."""
    a, b = at(samples, start), at(samples, end)
    steps = b.buildkit - a.buildkit
    containers = (b.docker - a.docker) - steps
    split = {"total": b.busy - a.busy, "steps": steps, "containers": containers,
             "dockerd": b.dockerd - a.dockerd, "containerd": b.containerd - a.containerd}
    split["other"] = split["total"] - sum(v for k, v in split.items() if k != "total")
    return {k: round(v, 3) for k, v in split.items()}


# ----------------------------------------------------------------------- build output
class Line(NamedTuple):
    t: float  # time.monotonic() when the line arrived
    source: str  # one build's output (the original way's; pyrlab's log file name)
    text: str


class Phase(NamedTuple):
    name: str
    source: str
    start: float
    end: float
    reported_s: float | None  # BuildKit's own duration ("#N DONE 11.5s")


DONE = re.compile(r"^#(\d+) (DONE (\d+(?:\.\d+)?)s|CACHED|ERROR|CANCELED)")
VERTEX = re.compile(r"^#(\d+) (.*)$")
MOUNT = re.compile(r"--mount=\S+\s+")
GATE_START = "# pyrlab: self-test of "
GATE_END = re.compile(r"^# pyrlab: self-test (passed|FAILED)")


def step_name(text: str) -> str:
    """A step's header, short: RUN's mount options and the original way's marker left out."""
    text = MOUNT.sub("", text).replace(f": {ORIGINAL_MARK} && ", "")
    text = " ".join(text.split())
    return text if len(text) <= 70 else text[:67] + "..."


def steps(lines: Iterable[Line]) -> list[Phase]:
    """BuildKit's steps in plain progress output, one build per source: a step starts at
    the first line that names its number (or BuildKit's own duration before its end, if
    that is STAMP_LAG_S earlier) and ends at its DONE line. Cached steps and steps that never ended are
    left out. The export ("exporting to image") prints its lines only
    once it is over: it starts where the build's last other step ended."""
    first: dict[tuple[str, str], tuple[float, str]] = {}
    found: list[Phase] = []
    for line in lines:
        head = VERTEX.match(line.text)
        if not head:
            continue
        key = (line.source, head.group(1))
        done = DONE.match(line.text)
        if done and key in first:
            if done.group(2).startswith("DONE"):
                started, name = first[key]
                reported = float(done.group(3))
                # A step that waits (on a locked cache mount, beside another stage) may be
                # printed only when it ends: BuildKit's own duration is then the longer
                # (by more than the stamps' own lag).
                if line.t - started < reported - STAMP_LAG_S:
                    started = line.t - reported
                found.append(Phase(name, line.source, started, line.t, reported))
            continue
        if key not in first and not done:
            first[key] = (line.t, step_name(head.group(2)))
    result = []
    for phase in found:
        if phase.name.startswith("exporting to image"):
            before = [p.end for p in found if p.source == phase.source
                      and p.end <= phase.end and not p.name.startswith("exporting")]
            phase = phase._replace(start=max(before, default=phase.start))
        result.append(phase)
    return sorted(result, key=lambda p: (p.start, p.end))


def bytecode_phases(lines: Iterable[Line]) -> list[Phase]:
    """uv-install's bytecode compile: its line arrives at its end and says how long."""
    found = []
    for line in lines:
        match = BYTECODE_LINE.search(line.text)
        if match:
            seconds = float(match.group(1))
            found.append(Phase("bytecode", line.source, line.t - seconds, line.t, seconds))
    return found


def gate_phases(lines: Iterable[Line]) -> list[Phase]:
    """The self-test gate: from its first line to its verdict."""
    found, started = [], {}
    for line in lines:
        if line.text.startswith(GATE_START):
            started[line.source] = line.t
        elif GATE_END.match(line.text) and line.source in started:
            found.append(Phase("self-test gate", line.source, started.pop(line.source),
                               line.t, None))
    return found


def gaps(phases: Iterable[Phase], start: float, end: float) -> list[tuple[float, float]]:
    """The stretches of [start, end] inside no phase."""
    found, reach = [], start
    for phase in sorted(phases, key=lambda p: p.start):
        if phase.start > reach:
            found.append((reach, min(phase.start, end)))
        reach = max(reach, phase.end)
    if reach < end:
        found.append((reach, end))
    return [(a, b) for a, b in found if b > a]


class Stamper(threading.Thread):
    """Stamps the lines of a stream as they arrive (the original way's build output)."""

    def __init__(self, stream: IO[str], source: str) -> None:
        super().__init__(daemon=True)
        self.stream, self.source = stream, source
        self.lines: list[Line] = []

    def run(self) -> None:
        for text in self.stream:
            self.lines.append(Line(time.monotonic(), self.source, text.rstrip("\n")))


def image_of(log: Path) -> str:
    """The image a build log is for (pyrlab names it IMAGE-YYYYMMDD-HHMMSS.log)."""
    return re.sub(r"-\d{8}-\d{6}$", "", log.stem)


class LogTail(threading.Thread):
    """Stamps the lines of the log files that appear in a folder (pyrlab writes one per
    image built, line by line), polling every TAIL_S seconds."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.old = set(folder.glob("*.log")) if folder.is_dir() else set()
        self.read: dict[Path, int] = {}
        self.partial: dict[Path, str] = {}
        self.lines: list[Line] = []
        self.stopped = threading.Event()

    def poll(self) -> None:
        now = time.monotonic()
        new = sorted(set(self.folder.glob("*.log")) - self.old) if self.folder.is_dir() else []
        for log in new:
            with open(log, encoding="utf-8", errors="replace") as f:
                f.seek(self.read.get(log, 0))
                text = self.partial.pop(log, "") + f.read()
                self.read[log] = f.tell()
            *complete, rest = text.split("\n")
            if rest:
                self.partial[log] = rest
            self.lines += [Line(now, image_of(log), line) for line in complete]

    def run(self) -> None:
        while not self.stopped.wait(TAIL_S):
            self.poll()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.poll()
        now = time.monotonic()
        self.lines += [Line(now, image_of(log), rest) for log, rest in self.partial.items()]


# ----------------------------------------------------------------------- a build
def client_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settle(sampler: Sampler, cores: int) -> float:
    """Waits (at most SETTLE_MAX_S) until the machine is quiet, e.g. dockerd done with the
    prune; returns the busy cores over the last second."""
    deadline = time.monotonic() + SETTLE_MAX_S
    while True:
        start = sampler.now()
        time.sleep(1.0)
        load = cpu(sampler.samples, start, sampler.now())["total"] / (time.monotonic() - start)
        if load <= QUIET_CORES or time.monotonic() > deadline:
            if load > QUIET_CORES:
                print(f"  note: {load:.2f} of {cores} cores busy before this build (other work "
                      "on the machine counts as the build's)", flush=True)
            return round(load, 3)


def run_original(original: Original) -> tuple[list[Line], float, float]:
    # --progress=plain: what a pipe gets anyway (auto), named so the format is sure.
    argv = original.build_argv()
    argv.insert(argv.index("--load"), "--progress=plain")
    started = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        assert process.stdout is not None
        stamper = Stamper(process.stdout, "original")
        stamper.start()
        code = process.wait()
        end = time.monotonic()
        stamper.join()
    if code != 0:
        tail = "\n".join(line.text for line in stamper.lines[-40:])
        sys.exit(f"the original way's build failed ({code}):\n{tail}")
    return stamper.lines, started, end


def run_pyrlab(lab: Lab) -> tuple[list[Line], float, float, dict[str, Any]]:
    tail = LogTail(lab.root / ".pyrlab" / "logs")
    tail.start()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pyrlab", *lab.build_args()],
                          capture_output=True, text=True, check=False, env=user_env())
    end = time.monotonic()
    tail.stop()
    if done.returncode != 0:
        sys.exit(f"pyrlab build failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return tail.lines, started, end, lab.account(done.stdout)


def phase_row(phase: Phase, samples: Sequence[Sample], t0: float) -> dict[str, Any]:
    wall = phase.end - phase.start
    split = cpu(samples, phase.start, phase.end)
    return {"name": phase.name, "build": phase.source, "start_s": round(phase.start - t0, 2),
            "end_s": round(phase.end - t0, 2), "wall_s": round(wall, 2),
            "reported_s": phase.reported_s, "cpu_s": split,
            "cores_busy": round(split["total"] / wall, 2) if wall > 0 else None}


def account(way: str, lines: list[Line], start: float, end: float, client: float,
            samples: Sequence[Sample], cores: int, load: float) -> dict[str, Any]:
    wall = end - start
    split = cpu(samples, start, end)
    split["client"] = round(client, 3)
    split["other"] = round(split["other"] - client, 3)
    build_steps = steps(lines)
    record: dict[str, Any] = {
        "way": way, "wall_s": round(wall, 2), "cpu_s": split,
        "utilisation": round(split["total"] / (cores * wall), 3),
        "idle_core_s": round(cores * wall - split["total"], 2),
        "busy_cores_before": load,
        "steps": [phase_row(p, samples, start) for p in build_steps]}
    gates = gate_phases(lines)
    if way == "pyrlab":
        for key, phases in (("bytecode", bytecode_phases(lines)), ("gate", gates)):
            rows = [phase_row(p, samples, start) for p in phases]
            record[key] = {"wall_s": round(sum(r["wall_s"] for r in rows), 2),
                           "cpu_s": round(sum(r["cpu_s"]["total"] for r in rows), 2),
                           "windows": rows}
    # What no step and no gate covers: the client's start, pyrlab's planning, tags, the
    # next build's start, the lock (the "11 s gap").
    outside = gaps([*build_steps, *gates], start, end)
    record["outside"] = {
        "wall_s": round(sum(b - a for a, b in outside), 2),
        "cpu_s": round(sum(cpu(samples, a, b)["total"] for a, b in outside), 2),
        "windows": [[round(a - start, 2), round(b - start, 2)] for a, b in outside]}
    return record


# ----------------------------------------------------------------------- report
def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2)}


def shown(figure: dict[str, float], unit: str = "", digits: int = 1) -> str:
    text = f"{figure['median']:.{digits}f}{unit}"
    if figure["min"] != figure["max"]:
        text += f" ({figure['min']:.{digits}f}-{figure['max']:.{digits}f})"
    return text


def step_medians(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each step that every run has, by build and name, in the first run's order: median
    wall time, CPU-s and busy cores."""
    def by_name(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(row["build"], row["name"]): row for row in record["steps"]}

    named = [by_name(record) for record in records]
    medians = []
    for key, first in named[0].items():
        rows = [each[key] for each in named if key in each]
        if len(rows) == len(records):
            wall = statistics.median(row["wall_s"] for row in rows)
            used = statistics.median(row["cpu_s"]["total"] for row in rows)
            medians.append({"build": key[0], "name": key[1], "start_s": first["start_s"],
                            "wall_s": round(wall, 2), "cpu_s": round(used, 2),
                            "cores_busy": round(used / wall, 2) if wall > 0 else None})
    return medians


def summary(runs: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    ways: dict[str, Any] = {}
    for way in ("original", "pyrlab"):
        records = [run[way] for run in runs]
        ways[way] = {
            "wall_s": spread([r["wall_s"] for r in records]),
            "cpu_s": spread([r["cpu_s"]["total"] for r in records]),
            "utilisation": spread([r["utilisation"] for r in records]),
            "idle_core_s": spread([r["idle_core_s"] for r in records]),
            "cpu_by_source_s": {k: spread([r["cpu_s"][k] for r in records])
                                for k in records[0]["cpu_s"]}}
        keys = ("bytecode", "gate", "outside") if way == "pyrlab" else ("outside",)
        for key in keys:
            ways[way][key] = {"wall_s": spread([r[key]["wall_s"] for r in records]),
                              "cpu_s": spread([r[key]["cpu_s"] for r in records])}
        ways[way]["steps"] = step_medians(records)
    original_wall = ways["original"]["wall_s"]
    need = ways["pyrlab"]["cpu_s"]
    budget = cores * original_wall["median"]
    study = STUDY_SHARE * budget
    if need["median"] > budget:
        verdict = "blocked"
        why = (f"pyrlab's {need['median']:.1f} CPU-s exceed the {budget:.1f} core-s that "
               f"{cores} cores give in the original way's {original_wall['median']:.1f} s: "
               "no schedule reaches parity on this machine")
    elif need["median"] > study:
        verdict = "blocked"
        why = (f"pyrlab's {need['median']:.1f} CPU-s fit in {cores} × the original way's wall "
               f"({budget:.1f} core-s) but exceed the study's {STUDY_SHARE * cores:.2f} × wall "
               f"= {study:.1f}: parity would need a perfect packing")
    else:
        verdict = "reachable"
        why = (f"pyrlab's {need['median']:.1f} CPU-s are within the study's "
               f"{STUDY_SHARE * cores:.2f} × the original way's wall = {study:.1f} core-s "
               f"({budget:.1f} at full use): parity is a question of the schedule")
    worst = need["max"] > STUDY_SHARE * cores * original_wall["min"]
    best = need["min"] > STUDY_SHARE * cores * original_wall["max"]
    robust = worst == best  # every pairing of the spreads gives the same answer
    if not robust:
        why += "; the spreads straddle the line (more runs needed)"
    extra = ways["pyrlab"]["cpu_s"]["median"] - ways["original"]["cpu_s"]["median"]
    return {"ways": ways, "cores": cores,
            "decision": {"verdict": verdict, "why": why, "robust_over_spread": robust,
                         "pyrlab_cpu_s": need["median"], "cores_x_original_wall": round(budget, 2),
                         "study_share": STUDY_SHARE, "study_threshold": round(study, 2),
                         "pyrlab_extra_cpu_s": round(extra, 2),
                         "original_idle_core_s": ways["original"]["idle_core_s"]["median"]}}


def print_run(run: dict[str, Any]) -> None:
    for way in run["order"]:
        record = run[way]
        split = record["cpu_s"]
        print(f"  {way}: {record['wall_s']:.1f} s, {split['total']:.1f} CPU-s "
              f"({record['utilisation']:.0%} of the cores): steps {split['steps']:.1f}, "
              f"containers {split['containers']:.1f}, dockerd {split['dockerd']:.1f}, "
              f"containerd {split['containerd']:.1f}, client {split['client']:.1f}, "
              f"other {split['other']:.1f}", flush=True)
        rows = [r for r in record["steps"] if r["wall_s"] >= SHOWN_STEP_S]
        rows += record.get("bytecode", {}).get("windows", [])
        rows += record.get("gate", {}).get("windows", [])
        for row in sorted(rows, key=lambda r: r["start_s"]):
            c = row["cpu_s"]
            print(f"    {row['start_s']:6.1f}-{row['end_s']:6.1f} {row['wall_s']:5.1f} s "
                  f"{c['total']:5.1f} CPU-s ({row['cores_busy']:.2f} cores; steps "
                  f"{c['steps']:.1f} ctr {c['containers']:.1f} dockerd {c['dockerd']:.1f})"
                  f"  {row['build']}: {row['name']}", flush=True)
        print(f"    outside the steps and the gate: {record['outside']['wall_s']:.1f} s, "
              f"{record['outside']['cpu_s']:.1f} CPU-s", flush=True)


def print_summary(result: dict[str, Any], runs: int) -> None:
    ways, decision, cores = result["ways"], result["decision"], result["cores"]
    o, p = ways["original"], ways["pyrlab"]
    print(f"\nmedian of {runs} cold run(s), (min-max); {cores} cores")
    print(f"{'':<40} {'original':>22} {'pyrlab':>22}")
    rows = [("wall", "wall_s", " s"), ("CPU (user+sys, whole machine)", "cpu_s", " CPU-s"),
            (f"CPU / ({cores} × wall)", "utilisation", ""),
            (f"idle core-s ({cores} × wall - CPU)", "idle_core_s", "")]
    for label, key, unit in rows:
        digits = 2 if key == "utilisation" else 1
        print(f"{label:<40} {shown(o[key], unit, digits):>22} {shown(p[key], unit, digits):>22}")
    for source in o["cpu_by_source_s"]:
        if source != "total":
            print(f"{'  CPU-s: ' + source:<40} {shown(o['cpu_by_source_s'][source]):>22} "
                  f"{shown(p['cpu_by_source_s'][source]):>22}")
    for key, label in (("bytecode", "pyrlab: bytecode"), ("gate", "pyrlab: self-test gate")):
        print(f"{label + ' wall / CPU-s':<40} {'':>22} "
              f"{shown(p[key]['wall_s'], ' s')} / {shown(p[key]['cpu_s'])}")
    print(f"{'outside the steps and gate: wall / CPU-s':<40} "
          f"{shown(o['outside']['wall_s'], ' s') + ' / ' + shown(o['outside']['cpu_s']):>22} "
          f"{shown(p['outside']['wall_s'], ' s')} / {shown(p['outside']['cpu_s'])}")
    for way in ("original", "pyrlab"):
        print(f"{way}'s steps of {SHOWN_STEP_S} s or more (medians): wall, CPU-s, busy cores")
        for step in ways[way]["steps"]:
            if step["wall_s"] >= SHOWN_STEP_S:
                print(f"  {step['wall_s']:6.1f} s {step['cpu_s']:6.1f} CPU-s "
                      f"{step['cores_busy'] or 0:5.2f}  {step['build']}: {step['name']}")
    print(f"\npyrlab needs {decision['pyrlab_extra_cpu_s']:.1f} CPU-s more than the original "
          f"way uses; the original way leaves {decision['original_idle_core_s']:.1f} core-s idle.")
    print(f"parity on this machine's cores: {decision['verdict'].upper()}: {decision['why']}")


# ----------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", choices=("ds25", "heavy"), default="ds25")
    parser.add_argument("--runs", type=int, default=3,
                        help="cold runs, each building both ways (the order alternates)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the images and the work folder at the end")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    try:
        dockerd, containerd = check_accounting()
    except AccountingUnavailable as exc:
        sys.exit(f"bench_cpu: CPU accounting is not available: {exc}")
    cores = len(os.sched_getaffinity(0))
    requirements = list(DS25 if args.lab == "ds25" else HEAVY)
    debs = BASE_DEBS if args.lab == "ds25" else HEAVY_DEBS

    work = Path(tempfile.mkdtemp(prefix="pyrlab-bench-cpu-"))
    print(f"lab {args.lab}: {len(requirements)} requirements, {args.runs} cold run(s) per way, "
          f"{cores} cores; work folder {work}", flush=True)
    sampler = Sampler(dockerd, containerd)
    sampler.start()
    runs: list[dict[str, Any]] = []
    try:
        if sh("docker", "image", "inspect", BASE, check=False).returncode != 0:
            pyrlab("bootstrap", "--engine", "docker", "--tag", BASE)
        for number in range(args.runs):
            order = ("original", "pyrlab") if number % 2 == 0 else ("pyrlab", "original")
            original = Original(work / f"original-{number}", requirements, debs + PYLAB_DEBS)
            lab = Lab(work / f"lab-{number}", requirements, False, debs)
            print(f"run {number + 1}: cold cache (images removed, both ways' records pruned); "
                  f"{' then '.join(order)}", flush=True)
            cold_start()
            run: dict[str, Any] = {"order": list(order)}
            for way in order:
                load = settle(sampler, cores)
                started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                before = client_seconds()
                output: dict[str, Any] = {}
                if way == "original":
                    lines, start, end = run_original(original)
                else:
                    lines, start, end, output = run_pyrlab(lab)
                client = client_seconds() - before
                sampler.now()
                record = account(way, lines, start, end, client, sampler.samples, cores, load)
                record["started"] = started_at
                if way == "pyrlab":
                    record["pyrlab_seconds"] = output.get("seconds")
                    record["self_test_reported_s"] = lab.test_seconds[-1]
                    record["bytecode_reported_s"] = lab.bytecode_seconds[-1]
                run[way] = record
            runs.append(run)
            print_run(run)
        result = summary(runs, cores)
        print_summary(result, len(runs))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{dt.date.today().isoformat()}-cpu-{args.lab}.json"
        out.write_text(json.dumps({"lab": args.lab, "requirements": len(requirements),
                                   "machine": machine(), "sample_s": SAMPLE_S,
                                   **result, "runs": runs}, indent=2) + "\n")
        print(f"results: {out}")
    finally:
        sampler.stop()
        if not args.keep:
            remove_images()
            # The original way's records carry this benchmark's own marker; pyrlab's are
            # left, as bench_inner_loop leaves them (their marker is every pyrlab build's).
            prune(ORIGINAL_MARK)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
