"""The original project's real lists, built by pyrlab and the original way, compared import
by import (issue 19: every import that works the original way must work in pyrlab's image).

    .venv/bin/python bench/bench_real_lists.py                    # requirements_common.txt
    .venv/bin/python bench/bench_real_lists.py [--requirements pylab/requirements_common.txt]
        [--debs base/base_debs.txt] [--original DIR] [--no-test] [--jobs 2]
        [--keep | --remove-base] [--skip NAME...] [--original-installer {pip,uv}]
        [--known-failure MODULE=TEXT...]
    .venv/bin/python bench/bench_real_lists.py --compare ORIGINAL_IMAGE PYRLAB_IMAGE
                                                  # compare two built images, build nothing

Lists come from the original project's folder (--original; default ../shared/data/
original-project beside the repository, or one level up from a worktree). Paths given to
--requirements and --debs are relative to it; several files are joined in order.

1. pyrlab: a lab project (`pyrlab init --base debian`) whose pyrlab-base installs the
   Debian list and whose pylab installs the requirements, built with `pyrlab build pylab`
   and default settings (slim on, self-test gate on). A refused image is compared as
   pylab:failed. --no-test builds without the gate instead.
   Its pyrlab.toml marks the imports broken upstream as known failures
   ([test.known_failures.python], KNOWN_FAILURES; --known-failure adds more), as a user
   accepts them: the gate then reports them as known and promotes the image.
2. The original way (bench_inner_loop.Original): one apt layer, then one
   `pip install --no-cache-dir --no-compile -r requirements.txt` layer, same base image.
   --original-installer uv makes that layer `uv pip install -r requirements.txt` instead,
   the list exactly as written, with the uv version pyrlab's builds use (kept out of the
   image). It exists because pip's resolver on requirements_common.txt was still
   backtracking after 44 minutes on this machine, with no result; the issue's author also
   compared with uv. pip stays the default: it is what the original project ran.

Both use one base bootstrapped from the Debian mirror. The original lists were written for
Debian bullseye: names that trixie lacks are left out of both ways (TRIXIE_LACKS), and the
original Base Dockerfile's extra repositories (nodesource nodejs, Google Chrome, CUDA) and
requirements_repos.txt (GitHub) are not reachable from here. Listed packages that neither
way can install here (UNINSTALLABLE, --skip) are left out of both. requirements_mini.txt
alone does not build either way: its numpy<2 has no wheel for trixie's Python 3.13, and
the images have no Python.h to build one.

Then, in each image, as UID 4242, with --network none, one Python process per module:
import every public top-level module (top_level.txt, else RECORD) of every listed
distribution. Printed: a table (module, distribution, version and result in each image),
the failures with their errors, and the counts: imports OK the original way, how many of
those fail in pyrlab's (must be 0: otherwise the exit status is 1), how many work only in
pyrlab's, and listed packages whose major version differs. The JSON also holds every
installed distribution's version in both images (to compare the two resolutions), the
held-back packages pyrlab's build named and its gate's report. JSON goes to bench/results/<date>-real-lists-<lists>.json.
Images (all named pyrlab-bench-lists/…) are removed by id at the end unless --keep; the
bootstrapped base stays unless --remove-base (a new base would make every layer new). Build
caches are left alone: a second run reuses the apt layers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/ is sys.path[0] when this file runs as a script.
from bench_inner_loop import RESULTS, Lab, Original, machine, pyrlab, sh
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

PREFIX = "pyrlab-bench-lists/"
BASE = f"{PREFIX}debian:trixie"
ORIGINAL_TAG = f"{PREFIX}original-pylab:latest"
REPO = Path(__file__).resolve().parents[1]
ORIGINAL_CANDIDATES = [REPO.parent / "shared" / "data" / "original-project",
                       REPO.parents[1] / "shared" / "data" / "original-project"]
# In base_debs.txt, not installable on trixie from deb.debian.org main.
TRIXIE_LACKS = {
    "software-properties-common": "removed from Debian in trixie",
    "ttf-mscorefonts-installer": "in contrib; its installer downloads the fonts from "
                                 "SourceForge, which this machine cannot reach",
}
# Listed, but neither way can install them here: left out of both (the line becomes a
# comment, so the other lines keep their numbers). --skip adds more.
UNINSTALLABLE = {
    "iisignature": "sdist only, and its setup.py imports numpy without declaring it: pip and "
                   "uv both build it in an isolated environment without numpy, and fail",
}
# Imports broken upstream in every environment built from today's index, marked in pyrlab's
# project as a user accepts them (module = a text its error contains). --known-failure adds.
KNOWN_FAILURES = {
    "chartpy": "No module named 'plotly.figure_factory._ohlc'",  # chartpy vs plotly >= 6
}
USER = "4242:4242"
BUILT_LINE = re.compile(r"^(\S+): built in (\d+(?:\.\d+)?)s", re.MULTILINE)
PYTHON = "/opt/venv/bin/python"
GATE_LINE = re.compile(r"^# self-test: \S+ (\S.*)$", re.MULTILINE)

# Container side, as short as it can be: the raw metadata of the distributions whose
# normalised names come on stdin; the host decides what is a module.
INVENTORY = """\
import json, re, sys
from importlib import metadata
wanted = set(json.load(sys.stdin))
out, every = {}, {}
for d in metadata.distributions():
    name = re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
    every.setdefault(name, d.version)
    if name in wanted and name not in out:
        out[name] = {"version": d.version, "top_level": d.read_text("top_level.txt"),
                     "record": [r.split(",")[0] for r in
                                (d.read_text("RECORD") or "").splitlines()]}
print(json.dumps({"listed": out, "every": every}))
"""
# One process per module (argv, never a shell), `jobs` at a time.
IMPORTS = """\
import json, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
modules, jobs, limit = json.load(sys.stdin), int(sys.argv[1]), float(sys.argv[2])
def one(m):
    t = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-c", "import importlib, sys; "
                            "importlib.import_module(sys.argv[1])", m],
                           capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return m, {"ok": False, "error": f"timeout after {limit:.0f}s", "seconds": limit}
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    error = "" if p.returncode == 0 else (lines[-1] if lines else f"exit {p.returncode}")
    return m, {"ok": p.returncode == 0, "error": error,
               "seconds": round(time.monotonic() - t, 2)}
with ThreadPoolExecutor(jobs) as pool:
    print(json.dumps(dict(pool.map(one, modules))))
"""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lines(folder: Path, files: list[str]) -> list[str]:
    lines: list[str] = []
    for name in files:
        path = folder / name
        if not path.is_file():
            sys.exit(f"{path}: no such list (give paths relative to --original {folder})")
        lines.append(f"# --- {name}")
        lines.extend(path.read_text().splitlines())
    return lines


def leave_out(lines: list[str], skip: dict[str, str]) -> tuple[list[str], list[str]]:
    """(the lines with the skipped distributions' lines commented out, what was left out)."""
    kept, dropped = [], []
    for raw in lines:
        text = raw.split("#", 1)[0].strip()
        name = normalise(Requirement(text).name) if text and not text.startswith("-") else ""
        if name in skip:
            kept.append(f"# left out by the bench: {raw}")
            dropped.append(f"{raw.strip()}: {skip[name]}")
        else:
            kept.append(raw)
    return kept, dropped


def listed_names(lines: list[str]) -> list[str]:
    """Normalised distribution names of the requirement lines, in order, once each."""
    names: list[str] = []
    for raw in lines:
        text = raw.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            name = normalise(Requirement(text).name)
        except InvalidRequirement:
            sys.exit(f"cannot read the requirement {text!r}")
        if name not in names:
            names.append(name)
    return names


def debian_list(folder: Path, files: list[str]) -> tuple[list[str], list[str]]:
    """(packages for trixie, the dropped ones with their reasons)."""
    kept: list[str] = []
    dropped: list[str] = []
    for raw in read_lines(folder, files):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        if name in TRIXIE_LACKS:
            dropped.append(f"{name}: {TRIXIE_LACKS[name]}")
        elif name not in kept:
            kept.append(name)
    return kept, dropped


def top_level_modules(info: dict[str, Any]) -> list[str]:
    """Public top-level modules of one distribution: top_level.txt, else RECORD's paths."""
    names: set[str] = set()
    if info.get("top_level"):
        names = {n.strip() for n in info["top_level"].splitlines()
                 if n.strip() and "/" not in n}
    else:
        for path in info.get("record") or []:
            parts = path.split("/")
            first = parts[0]
            if (first.startswith("..") or first.endswith((".dist-info", ".data", ".egg-info"))
                    or first == "__pycache__"):
                continue
            if len(parts) == 1:
                if first.endswith(".py"):
                    names.add(first[:-3])
                elif first.endswith((".so", ".pyd")):
                    names.add(first.split(".", 1)[0])
            elif path.endswith((".py", ".so", ".pyd")):
                names.add(first)
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))


def container(image: str, script: str, *argv: str, stdin: str) -> Any:
    done = sh("docker", "run", "--rm", "-i", "--network", "none", "--user", USER,
              "-e", "HOME=/tmp", "-w", "/tmp", "--entrypoint", PYTHON, image,
              "-c", script, *argv, input=stdin)
    return json.loads(done.stdout.strip().splitlines()[-1])


def image_id(ref: str) -> str:
    return sh("docker", "image", "inspect", "--format", "{{.Id}}", ref,
              check=False).stdout.strip()


def major(version: str | None) -> int | None:
    try:
        return Version(version).major if version else None
    except InvalidVersion:
        return None


def mark_known_failures(lab: Lab, known: dict[str, str]) -> None:
    """[test.known_failures.python] in the lab's pyrlab.toml (the template has no [test])."""
    if known:
        lines = "".join(f"{json.dumps(m)} = {json.dumps(t)}\n" for m, t in known.items())
        config = lab.root / "pyrlab.toml"
        config.write_text(config.read_text() + "\n[test.known_failures.python]\n" + lines)


def gate_lines(lab: Lab) -> list[str]:
    """The self-test's verdicts other than ok, from pylab's last build log."""
    logs = sorted((lab.root / ".pyrlab" / "logs").glob("pylab-[0-9]*.log"))
    text = logs[-1].read_text() if logs else ""
    return [m.group(1) for m in GATE_LINE.finditer(text) if not m.group(1).startswith("ok ")]


def build_pyrlab(lab: Lab, no_test: bool) -> dict[str, Any]:
    started = time.perf_counter()
    done = pyrlab("build", "-C", str(lab.root), "--engine", "docker", "--json", "pylab",
                  *(["--no-test"] if no_test else []), check=False)
    wall = time.perf_counter() - started
    (lab.root.parent / "pyrlab-build.stderr").write_text(done.stderr)
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        data = {}
    seconds = {i["name"]: i.get("seconds") for i in data.get("images", [])}
    if not seconds:  # a refused build prints no JSON: its progress lines say the same
        seconds = {name: float(s) for name, s in BUILT_LINE.findall(done.stderr)}
    latest, failed = f"{PREFIX}pylab:latest", f"{PREFIX}pylab:failed"
    if done.returncode == 0:
        ref, gate = latest, "skipped (--no-test)" if no_test else "passed"
    elif image_id(failed):
        ref, gate = failed, "refused"
    else:
        sys.exit(f"pyrlab build failed ({done.returncode}) with no image to compare:\n"
                 f"{done.stderr[-4000:]}")
    return {"ref": ref, "gate": gate, "wall_seconds": round(wall, 1), "exit": done.returncode,
            "seconds_per_image": seconds,
            "self_test_seconds": data.get("seconds", {}).get("self_test"),
            "held_back": {i["name"]: i.get("held_back", []) for i in data.get("images", [])},
            "held_back_lines": [x.strip() for x in done.stderr.splitlines()
                                if "held back" in x or "held-back" in x],
            "gate_lines": gate_lines(lab),
            "report": done.stderr[-6000:]}


def compare(images: dict[str, str], listed: list[str], jobs: int,
            limit: float) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]],
                                   dict[str, dict[str, str]]]:
    """Rows (one per distribution and module), the listed distributions' inventories and
    every installed distribution's version, keyed by way."""
    found = {way: container(ref, INVENTORY, stdin=json.dumps(listed))
             for way, ref in images.items()}
    inventories = {way: f["listed"] for way, f in found.items()}
    modules = {way: {d: top_level_modules(i) for d, i in inv.items()}
               for way, inv in inventories.items()}
    results: dict[str, dict[str, Any]] = {}
    for way, ref in images.items():
        wanted = sorted({m for ms in modules[way].values() for m in ms})
        started = time.perf_counter()
        results[way] = container(ref, IMPORTS, str(jobs), str(limit), stdin=json.dumps(wanted))
        print(f"{way}: {len(wanted)} modules imported one process each in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for dist in listed:
        names = sorted({m for way in images for m in modules[way].get(dist, [])}) or [""]
        for module in names:
            row: dict[str, Any] = {"module": module, "distribution": dist}
            for way in images:
                info = inventories[way].get(dist)
                row[f"{way}_version"] = info["version"] if info else None
                if info is None:
                    row[f"{way}_ok"], row[f"{way}_error"] = False, "not installed"
                elif module not in modules[way][dist]:
                    row[f"{way}_ok"], row[f"{way}_error"] = None, "not shipped"
                else:
                    result = results[way][module]
                    row[f"{way}_ok"], row[f"{way}_error"] = result["ok"], result["error"]
            rows.append(row)
    slim = {way: {d: {"version": i["version"], "modules": modules[way][d]}
                  for d, i in inventories[way].items()} for way in images}
    every = {way: dict(sorted(f["every"].items())) for way, f in found.items()}
    return rows, slim, every


def shown(row: dict[str, Any], way: str) -> str:
    ok = row[f"{way}_ok"]
    return "ok" if ok else ("-" if ok is None else "ERROR")


def summarise(rows: list[dict[str, Any]], listed: list[str]) -> dict[str, Any]:
    ok_original = {r["module"] for r in rows if r["original_ok"]}
    ok_pyrlab = {r["module"] for r in rows if r["pyrlab_ok"]}
    regressions = sorted(ok_original - ok_pyrlab)
    majors = []
    for dist in listed:
        row = next(r for r in rows if r["distribution"] == dist)
        a, b = row["original_version"], row["pyrlab_version"]
        if major(a) != major(b):
            majors.append({"distribution": dist, "original": a, "pyrlab": b})
    errors = {r["module"]: r["pyrlab_error"] for r in rows if r["module"] in regressions}
    return {"imports_ok_original": len(ok_original),
            "of_those_failing_in_pyrlab": len(regressions),
            "failing_in_pyrlab": [{"module": m, "error": errors[m]} for m in regressions],
            "ok_only_in_pyrlab": sorted(ok_pyrlab - ok_original),
            "failing_in_both": sorted({r["module"] for r in rows if r["module"]
                                       and r["original_ok"] is False
                                       and r["pyrlab_ok"] is False}),
            "major_version_differs": majors}


def print_report(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(f"\n{'module':<28} {'distribution':<26} {'original':>14} {'pyrlab':>14} "
          f"{'orig':>5} {'pyrlab':>6}")
    for r in rows:
        print(f"{r['module'] or '(none)':<28.28} {r['distribution']:<26.26} "
              f"{r['original_version'] or '-':>14.14} {r['pyrlab_version'] or '-':>14.14} "
              f"{shown(r, 'original'):>5} {shown(r, 'pyrlab'):>6}")
    print("\nfailures:")
    for r in rows:
        for way in ("original", "pyrlab"):
            if r[f"{way}_ok"] is False:
                print(f"  {way:<8} {r['module'] or r['distribution']}: {r[f'{way}_error']}")
    print(f"\nimports OK the original way:            {summary['imports_ok_original']}")
    print(f"  of those failing in pyrlab's image:   {summary['of_those_failing_in_pyrlab']}"
          "  (must be 0)")
    for f in summary["failing_in_pyrlab"]:
        print(f"    {f['module']}: {f['error']}")
    print(f"imports OK only in pyrlab's image:      {len(summary['ok_only_in_pyrlab'])}"
          f"  {' '.join(summary['ok_only_in_pyrlab'])}")
    print(f"failing in both:                        {len(summary['failing_in_both'])}"
          f"  {' '.join(summary['failing_in_both'])}")
    print(f"listed packages on another major:       {len(summary['major_version_differs'])}")
    for m in summary["major_version_differs"]:
        print(f"    {m['distribution']}: original {m['original']}, pyrlab {m['pyrlab']}")


def remove_images(keep_base: bool) -> None:
    """This benchmark's images, by id (everything named with PREFIX)."""
    refs = [r for r in sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
            .split() if r.startswith(PREFIX) and not (keep_base and r == BASE)]
    ids = list(dict.fromkeys(filter(None, (image_id(r) for r in refs))))
    for _ in range(3):  # children first: retry what a child still held
        ids = [i for i in ids if sh("docker", "rmi", "--force", i, check=False).returncode]
        if not ids:
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original", type=Path, default=None,
                        help="the original project's folder (default: ../shared/data/"
                        "original-project)")
    parser.add_argument("--requirements", nargs="+", default=["pylab/requirements_common.txt"])
    parser.add_argument("--debs", nargs="+", default=["base/base_debs.txt"])
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME",
                        help="also leave these listed distributions out of both ways")
    parser.add_argument("--original-installer", choices=("pip", "uv"), default="pip",
                        help="the original way's installer: pip (default, as the original "
                        "project) or `uv pip install` (pip's resolver ran over 44 minutes "
                        "on requirements_common.txt)")
    parser.add_argument("--known-failure", nargs="+", default=[], metavar="MODULE=TEXT",
                        help="also mark these imports known to fail in pyrlab's project")
    parser.add_argument("--no-test", action="store_true",
                        help="build pyrlab's image without the self-test gate")
    parser.add_argument("--jobs", type=int, default=2, help="imports at a time per image")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per import")
    parser.add_argument("--keep", action="store_true",
                        help="keep the images (and the work folder) afterwards")
    parser.add_argument("--remove-base", action="store_true",
                        help=f"also remove the bootstrapped base {BASE}")
    parser.add_argument("--compare", nargs=2, metavar=("ORIGINAL", "PYRLAB"),
                        help="build nothing: compare these two images (kept afterwards)")
    args = parser.parse_args()
    folder = args.original or next((c for c in ORIGINAL_CANDIDATES if c.is_dir()), None)
    if folder is None or not folder.is_dir():
        sys.exit("the original project's lists are not found: give --original DIR")
    skip = {**{normalise(n): r for n, r in UNINSTALLABLE.items()},
            **{normalise(n): "--skip" for n in args.skip}}
    requirements, left_out = leave_out(read_lines(folder, args.requirements), skip)
    listed = listed_names(requirements)
    debs, dropped = debian_list(folder, args.debs)
    label = "+".join(Path(r).stem for r in args.requirements)
    known = dict(KNOWN_FAILURES)
    for item in args.known_failure:
        module, sep, text = item.partition("=")
        if not sep or not module or not text:
            sys.exit(f"--known-failure {item!r}: expected MODULE=TEXT")
        known[module] = text

    work = Path(tempfile.mkdtemp(prefix="pyrlab-bench-lists-"))
    print(f"{label}: {len(listed)} listed distributions, {len(debs)} Debian packages "
          f"(left out: {'; '.join(dropped) or 'none'}); work folder {work}", flush=True)
    for line in left_out:
        print(f"left out of both ways: {line}")
    if args.compare:
        args.keep = True
    try:
        built: dict[str, Any] = {"ref": args.compare[1]} if args.compare else {}
        original_seconds = None
        if not args.compare:
            built, original_seconds = build_both(work, requirements, debs, args.no_test,
                                                 args.original_installer, known)
        images = {"original": args.compare[0] if args.compare else ORIGINAL_TAG,
                  "pyrlab": built["ref"]}
        rows, inventories, every = compare(images, listed, args.jobs, args.timeout)
        summary = summarise(rows, listed)
        print_report(rows, summary)

        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / (f"{dt.date.today().isoformat()}-real-lists-{label}"
                         f"-original-{args.original_installer}.json")
        out.write_text(json.dumps({
            "lists": {"requirements": args.requirements, "debs": args.debs,
                      "debs_left_out": dropped, "requirements_left_out": left_out},
            "listed": len(listed), "machine": machine(), "images": images,
            "pyrlab": built, "original": {"wall_seconds": original_seconds,
                                          "installer": args.original_installer},
            "known_failures": known,
            "sizes": {way: int(sh("docker", "image", "inspect", "--format", "{{.Size}}",
                                  ref).stdout) for way, ref in images.items()},
            "summary": summary, "rows": rows, "inventories": inventories,
            "installed": every}, indent=1) + "\n")
        print(f"results: {out}")
        if summary["of_those_failing_in_pyrlab"]:
            sys.exit(1)
    finally:
        if args.compare:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print(f"kept: images {PREFIX}*, work folder {work}")
        else:
            remove_images(keep_base=not args.remove_base)
            shutil.rmtree(work, ignore_errors=True)


def build_both(work: Path, requirements: list[str], debs: list[str], no_test: bool,
               installer: str, known: dict[str, str]) -> tuple[dict[str, Any], float]:
    """pyrlab's build (its facts) and the original way's (its seconds)."""
    if not image_id(BASE):
        pyrlab("bootstrap", "--engine", "docker", "--tag", BASE)
    lab = Lab(work / "lab", requirements, False, debs, prefix=PREFIX, base=BASE,
              pylab_debs=[])
    mark_known_failures(lab, known)
    original = Original(work / "original", requirements, debs, tag=ORIGINAL_TAG,
                        base=BASE, installer=installer)
    built = build_pyrlab(lab, no_test)
    print(f"pyrlab build: {built['wall_seconds']:.0f} s, gate {built['gate']} "
          f"(images {built['seconds_per_image']}, self-test "
          f"{built['self_test_seconds']} s)", flush=True)
    for line in built["held_back_lines"] + built["gate_lines"]:
        print(f"  {line}")
    if built["exit"]:
        print(built["report"])
    original_seconds = original.build()
    print(f"original way build ({installer}): {original_seconds:.0f} s", flush=True)
    return built, round(original_seconds, 1)


if __name__ == "__main__":
    main()
