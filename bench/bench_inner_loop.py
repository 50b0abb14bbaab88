"""The inner loop, side by side with the original way of building.

    .venv/bin/python bench/bench_inner_loop.py [--lab ds25|heavy] [--adds 3] [--with-r]
                                               [--cold-runs 3] [--skip-cold] [--keep]

The original way (the Makefile-and-Dockerfiles project pyrlab replaces) is one `apt-get
install` layer, then `pip install --no-cache-dir --no-compile -r requirements.txt` in one
layer. Both ways use the same lists, the same base image (bootstrapped by pyrlab from the
Debian mirror), the same engine (Docker with BuildKit) and the host's extra CA files.
Scenarios, each run for pyrlab and the original way alternately in one run:

- cold: build cache records of both ways pruned (download caches included), no images, no
  pyrlab.lock; --cold-runs times (3), alternating which way goes first: the median, every
  run and the spread are printed and kept;
- add one package (median of --adds, a different package each time, never built before);
- remove one package;
- no-op rebuild;
- image size;
- `import pandas, sklearn, matplotlib.pyplot, scipy.stats` as another UID (median of 3);
- `pyrlab up` of the built image until JupyterLab answers (pyrlab only);
- with --with-r: adding one R package to an rlab (pyrlab only; no baseline).

Figures and ratios are printed; the machine's facts and the figures go to
bench/results/<date>.json. Only this benchmark's images and build cache records are
removed (images are named pyrlab-bench-inner/…; the original way's steps carry a marker).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrlab.ecosystems.python import UV_VERSION
from pyrlab.engines import buildcache

PREFIX = "pyrlab-bench-inner/"
BASE = f"{PREFIX}debian:trixie"
ORIGINAL = f"{PREFIX}original-pylab:latest"
ORIGINAL_MARK = "pyrlab-bench-original"  # in every RUN line of the original way
PYRLAB_MARK = buildcache.PYRLAB_STEP_MARK
# uv-install's report of its bytecode step ("pyrlab: bytecode … in 12s").
BYTECODE_LINE = re.compile(r"pyrlab: bytecode[^\n]* in (\d+(?:\.\d+)?)s")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
RESULTS = Path(__file__).parent / "results"

DS25 = ["jupyterlab", "ipywidgets", "ipykernel", "numpy", "pandas", "scipy", "matplotlib", "seaborn", "scikit-learn", "statsmodels", "sympy", "plotly", "bokeh", "numba", "pyarrow", "polars", "h5py", "openpyxl", "requests", "tqdm", "dtale", "tensorboard", "jupytext", "pyyaml", "networkx"]
# A heavier lab, like real team labs (100+ distributions once resolved).
HEAVY = DS25 + ["xarray", "dask", "distributed", "altair", "vega_datasets", "folium", "geopandas", "shapely", "pyproj", "sqlalchemy", "psycopg2-binary", "duckdb", "lightgbm", "xgboost", "catboost", "optuna", "mlflow-skinny", "transformers", "tokenizers", "datasets", "huggingface_hub", "nltk", "spacy", "gensim", "beautifulsoup4", "lxml", "scrapy", "pillow", "opencv-python-headless", "scikit-image", "imageio", "plotnine", "pydantic", "fastapi", "uvicorn", "httpx", "aiohttp", "black", "ruff", "mypy", "pytest", "hypothesis", "rich", "typer", "click", "joblib", "cloudpickle"]
# Packages added one at a time (light, pure Python, in neither list): a random order each
# run, so no add is ever already in the layer cache.
ADDABLE = ["tabulate", "toolz", "cachetools", "xmltodict", "humanize", "inflection", "pyfiglet", "python-slugify", "emoji", "termcolor", "tinydb", "parse", "munch"]
IMPORTS = "import pandas, sklearn, matplotlib.pyplot, scipy.stats"
BASE_DEBS = ["less", "git"]
# The heavy list's lightgbm loads libgomp.so.1 (pyrlab's self-test found it missing).
HEAVY_DEBS = BASE_DEBS + ["libgomp1"]
# pylab's own Debian list in pyrlab's lab (the original way installs it with the rest):
# one entry from the start, so that adding another is a change of a list, not a new step.
PYLAB_DEBS = ["jq"]


def sh(*argv: str, check: bool = True, env: dict[str, str] | None = None,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})}, input=input)
    if check and done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def user_env() -> dict[str, str]:
    """pyrlab's environment as a user runs it: no PYRLAB_* overrides, and Python's bytecode
    cache on (this workplace sets PYTHONDONTWRITEBYTECODE, which would recompile pyrlab at
    every start)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("PYRLAB_") and k != "PYTHONDONTWRITEBYTECODE"}


def pyrlab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "pyrlab", *args], capture_output=True,
                          text=True, check=False, env=user_env())
    if check and done.returncode != 0:
        sys.exit(f"pyrlab {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


# ----------------------------------------------------------------------- the original way
def original_dockerfile(base: str, installer: str = "pip") -> str:
    """The original way's Dockerfile on `base` (reads base_debs.txt and requirements.txt
    from its context, and the host's CA files from ca/). `installer` "uv" installs the list
    with `uv pip install -r` (the uv that pyrlab's builds use, kept out of the image)
    instead of pip's."""
    install = ("pip install --no-cache-dir --no-compile -r /tmp/requirements.txt"
               if installer == "pip" else
               f"python3 -m venv /tmp/uv && /tmp/uv/bin/pip install --quiet --no-cache-dir \\\n"
               f"      --no-compile uv=={UV_VERSION} && \\\n"
               "    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt /tmp/uv/bin/uv pip install \\\n"
               "      --no-cache --python /opt/venv/bin/python -r /tmp/requirements.txt && \\\n"
               "    rm -rf /tmp/uv")
    return f"""\
FROM {base}
COPY ca/ /usr/local/share/ca-certificates/bench/
COPY base_debs.txt /tmp/
RUN : {ORIGINAL_MARK} && apt-get update && \\
    xargs -a /tmp/base_debs.txt apt-get install -y --no-install-recommends \\
      ca-certificates python3 python3-venv tini curl && \\
    rm -rf /var/lib/apt/lists/* && update-ca-certificates
ENV PATH=/opt/venv/bin:$PATH PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY requirements.txt /tmp/
RUN : {ORIGINAL_MARK} && python3 -m venv /opt/venv && \\
    {install}
"""


ORIGINAL_DOCKERFILE = original_dockerfile(BASE)


class Original:
    def __init__(self, folder: Path, requirements: list[str], debs: list[str],
                 tag: str = ORIGINAL, base: str = BASE, installer: str = "pip") -> None:
        self.folder = folder
        self.tag = tag
        folder.mkdir(parents=True)
        (folder / "ca").mkdir()
        for ca in sorted(HOST_CA_DIR.glob("*.crt")):
            shutil.copy(ca, folder / "ca" / ca.name)
        (folder / "Dockerfile").write_text(original_dockerfile(base, installer))
        (folder / "base_debs.txt").write_text("\n".join(debs) + "\n")
        self.write(requirements)

    def write(self, requirements: list[str]) -> None:
        (self.folder / "requirements.txt").write_text("\n".join(requirements) + "\n")

    def build_argv(self) -> list[str]:
        return ["docker", "buildx", "build", "--load", "--network", "host", "-t", self.tag,
                str(self.folder)]

    def build(self) -> float:
        before = sh("docker", "image", "inspect", "--format", "{{.Id}}", self.tag,
                    check=False).stdout.strip()
        seconds = timed(lambda: sh(*self.build_argv()))
        if before and before != sh("docker", "image", "inspect", "--format", "{{.Id}}",
                                   self.tag).stdout.strip():
            sh("docker", "rmi", before, check=False)  # the replaced build, now untagged
        return seconds


# ----------------------------------------------------------------------- pyrlab
class Lab:
    def __init__(self, root: Path, requirements: list[str], with_r: bool,
                 debs: list[str], prefix: str = PREFIX, base: str = BASE,
                 pylab_debs: list[str] = PYLAB_DEBS) -> None:
        self.root = root
        self.test_seconds: list[float] = []
        self.bytecode_seconds: list[float] = []
        # The lab's folders inside the project: a project may mount its own folders (one
        # outside it needs the user's own config or --allow-unsafe).
        self.run_sets = ["--set", f"run.notebooks={root / 'notebooks'}",
                         "--set", f"run.home={root / 'home'}"]
        pyrlab("init", str(root), "--base", "debian")
        config = root / "pyrlab.toml"
        text = config.read_text().replace('image = "pyrlab-debian:trixie"', f'image = "{base}"')
        # Same lists as the original way: no jupyterhub-singleuser (pyrlab's own addition
        # for hubs, which the original way does not install).
        hub = "# jupyterhub = true"
        assert hub in text, "the init template changed: update the benchmark"
        text = text.replace(hub, "jupyterhub = false  #", 1)
        # The project's name makes its images PREFIX/IMAGE (`prefix` is for a registry).
        named = f'name = "{prefix.rstrip("/")}"'
        assert f'name = "{root.name}"' in text, "the init template changed: update the benchmark"
        config.write_text(text.replace(f'name = "{root.name}"', named, 1))
        (root / "base_debs.txt").write_text("\n".join(debs) + "\n")
        # pylab's own Debian list (PYLAB_DEBS).
        text = config.read_text()
        marker = '[images.pylab]\nfrom = "pyrlab-base"\nrequirements = ["requirements.txt"]\n'
        assert marker in text, "the init template changed: update the benchmark"
        config.write_text(text.replace(marker, marker + 'debs = ["pylab_debs.txt"]\n'))
        (root / "pylab_debs.txt").write_text("".join(f"{d}\n" for d in pylab_debs))
        (root / "r_packages.txt").write_text("apt:jsonlite\n" if with_r else "")
        self.write(requirements)

    def write(self, requirements: list[str]) -> None:
        (self.root / "requirements.txt").write_text("\n".join(requirements) + "\n")

    def log_lines(self, image: str) -> list[str]:
        """What pyrlab's installer steps said in the image's last build log."""
        logs = sorted((self.root / ".pyrlab" / "logs").glob(f"{image}-[0-9]*.log"))
        keys = ("pyrlab: ", "Prepared ", "Installed ", "CACHED", " DONE ")
        lines = logs[-1].read_text().splitlines() if logs else []
        return [line for line in lines if any(k in line for k in keys)]

    def build(self, *images: str) -> float:
        """Wall time of a default `pyrlab build` (self-test gate included); the gate's share
        is added to self.test_seconds, the bytecode compiler's (from the build logs) to
        self.bytecode_seconds."""
        started = time.perf_counter()
        done = pyrlab(*self.build_args(*images))
        wall = time.perf_counter() - started
        self.account(done.stdout)
        return wall

    def build_args(self, *images: str) -> list[str]:
        """`pyrlab build`'s arguments (after `pyrlab`) for `images` (default pylab)."""
        return ["build", "-C", str(self.root), "--engine", "docker", "--json",
                *(images or ("pylab",))]

    def account(self, stdout: str) -> dict[str, Any]:
        """Adds a build's gate and bytecode seconds (from its --json output and its logs) to
        self.test_seconds and self.bytecode_seconds; returns the parsed output."""
        result: dict[str, Any] = json.loads(stdout)
        self.test_seconds.append(float(result.get("seconds", {}).get("self_test", 0.0)))
        compiled = 0.0
        for image in result.get("images", []):
            log = image.get("log")
            if image.get("action") == "built" and log and Path(log).is_file():
                for seconds in BYTECODE_LINE.findall(Path(log).read_text()):
                    compiled += float(seconds)
        self.bytecode_seconds.append(compiled)
        return result


# ----------------------------------------------------------------------- helpers
def prune(mark: str) -> int:
    """Remove the build cache records of steps naming `mark` and the layers built on them
    (never anything else)."""
    return len(buildcache.prune(lambda: buildcache.docker_records("docker"),
                                lambda record: sh("docker", "builder", "prune", "--force",
                                                  "--all", "--filter", f"id={record}",
                                                  check=False), mark))


def cold_start() -> None:
    """Cold, for both ways: this benchmark's images removed, both ways' build cache records
    pruned (download caches included)."""
    remove_images()
    prune(ORIGINAL_MARK)
    prune(PYRLAB_MARK)


def remove_images() -> None:
    refs = [r for r in sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
            .split() if r.startswith(PREFIX) and r != BASE]
    for _ in range(4):
        if refs:
            sh("docker", "rmi", "--force", *refs, check=False)


def size(ref: str) -> int:
    return int(sh("docker", "image", "inspect", "--format", "{{.Size}}", ref).stdout)


def import_seconds(ref: str) -> float:
    runs = []
    for _ in range(3):
        done = sh("docker", "run", "--rm", "--user", "4242:4242", "--entrypoint", "",
                  ref, "/opt/venv/bin/python", "-c",
                  f"import time; t = time.perf_counter(); {IMPORTS}; "
                  "print(time.perf_counter() - t)")
        runs.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def up_seconds(lab: Lab) -> float:
    port = 20000 + secrets.randbelow(20000)
    try:
        return timed(lambda: pyrlab("up", "pylab", "-C", str(lab.root), "--no-build",
                                    "--port", str(port), *lab.run_sets))
    finally:
        pyrlab("down", "pylab", "-C", str(lab.root), "--port", str(port), *lab.run_sets)


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def add(self, scenario: str, original: float | None, ours: float, unit: str = "s",
            self_test: float | None = None, bytecode: float | None = None,
            runs: list[tuple[float, float]] | None = None) -> None:
        """`runs`: (original, pyrlab) of each run a median row stands for, kept with it."""
        ratio = ours / original if original else None
        row: dict[str, object] = {"scenario": scenario, "original": original, "pyrlab": ours,
                                  "unit": unit, "ratio": ratio, "pyrlab_self_test": self_test,
                                  "pyrlab_bytecode": bytecode}
        if runs:
            row["runs"] = [{"original": o, "pyrlab": p, "ratio": p / o} for o, p in runs]
        self.rows.append(row)
        shown = "-" if original is None else f"{original:9.2f}"
        shares = [f"self-test {self_test:.1f} s"] if self_test is not None else []
        if bytecode:
            shares.append(f"bytecode {bytecode:.1f} s")
        gate = f"  (of which {', '.join(shares)})" if shares else ""
        print(f"{scenario:<52} {shown:>9} {ours:9.2f} {unit:<3} "
              f"{'' if ratio is None else f'{ratio:5.2f}'}{gate}", flush=True)
        if runs:
            print(f"{'  runs (original / pyrlab / ratio):':<52} " + "; ".join(
                f"{o:.1f} / {p:.1f} / {p / o:.2f}" for o, p in runs), flush=True)
            print(f"{'  spread (min-max):':<52} "
                  f"{min(o for o, _ in runs):.1f}-{max(o for o, _ in runs):.1f}  "
                  f"{min(p for _, p in runs):.1f}-{max(p for _, p in runs):.1f}  "
                  f"{min(p / o for o, p in runs):.2f}-{max(p / o for o, p in runs):.2f}",
                  flush=True)


def machine() -> dict[str, object]:
    def version(*argv: str) -> str:
        done = sh(*argv, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""

    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "docker": version("docker", "version", "--format", "{{.Server.Version}}"),
            "buildx": version("docker", "buildx", "version"),
            "kernel": platform.release()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", choices=("ds25", "heavy"), default="ds25")
    parser.add_argument("--adds", type=int, default=3)
    parser.add_argument("--with-r", action="store_true")
    parser.add_argument("--cold-runs", type=int, default=3,
                        help="cold builds per way, alternating which goes first (median)")
    parser.add_argument("--skip-cold", action="store_true",
                        help="keep the build caches (cold figures are then not cold)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    requirements = list(DS25 if args.lab == "ds25" else HEAVY)
    addable = random.sample(ADDABLE, len(ADDABLE))

    work = Path(tempfile.mkdtemp(prefix="pyrlab-bench-"))
    table = Table()
    print(f"lab {args.lab}: {len(requirements)} requirements; work folder {work}")
    print(f"{'scenario':<52} {'original':>9} {'pyrlab':>9}     ratio")
    try:
        if sh("docker", "image", "inspect", BASE, check=False).returncode != 0:
            pyrlab("bootstrap", "--engine", "docker", "--tag", BASE)
        debs = BASE_DEBS if args.lab == "ds25" else HEAVY_DEBS
        original = Original(work / "original", requirements, debs + PYLAB_DEBS)
        lab = Lab(work / "lab", requirements, args.with_r, debs)

        if args.skip_cold:
            table.add("cold build of pylab (warm cache)", original.build(), lab.build(),
                      self_test=lab.test_seconds[-1], bytecode=lab.bytecode_seconds[-1])
        else:
            # Each run from a cold cache, no images and no pyrlab.lock (a new project's first
            # build); which way goes first alternates, as the machine's state drifts.
            colds: list[tuple[float, float, float, float]] = []
            for run in range(max(1, args.cold_runs)):
                cold_start()
                (lab.root / "pyrlab.lock").unlink(missing_ok=True)
                if run % 2 == 0:
                    theirs, ours = original.build(), lab.build()
                else:
                    ours = lab.build()
                    theirs = original.build()
                colds.append((theirs, ours, lab.test_seconds[-1], lab.bytecode_seconds[-1]))
                print(f"  cold run {run + 1}: original {theirs:.1f} s, pyrlab {ours:.1f} s "
                      f"({ours / theirs:.2f})", flush=True)
            n = len(colds)
            table.add(f"cold build of pylab (median of {n}, alternated)",
                      statistics.median(c[0] for c in colds),
                      statistics.median(c[1] for c in colds),
                      self_test=statistics.median(c[2] for c in colds),
                      bytecode=statistics.median(c[3] for c in colds),
                      runs=[(c[0], c[1]) for c in colds])

        adds: list[tuple[float, float, float, float]] = []
        for _ in range(args.adds):
            package = addable.pop()
            requirements.append(package)
            original.write(requirements)
            lab.write(requirements)
            adds.append((original.build(), lab.build(), lab.test_seconds[-1],
                         lab.bytecode_seconds[-1]))
        table.add(f"add one package, rebuild (median of {args.adds})",
                  statistics.median(a[0] for a in adds),
                  statistics.median(a[1] for a in adds),
                  self_test=statistics.median(a[2] for a in adds),
                  bytecode=statistics.median(a[3] for a in adds))

        table.add("no-op rebuild", statistics.median(original.build() for _ in range(3)),
                  statistics.median(lab.build() for _ in range(3)))
        table.add("image size", size(ORIGINAL) / 1e9, size(f"{PREFIX}pylab:latest") / 1e9, "GB")
        table.add(f"`{IMPORTS}` as UID 4242", import_seconds(ORIGINAL),
                  import_seconds(f"{PREFIX}pylab:latest"))
        table.add("`pyrlab up pylab` of a built image (ready)", None, up_seconds(lab))

        # A package of the original list, so that neither way has built the shorter list
        # before (removing the last one added would give the original way a cache hit).
        removed = "jupytext"
        requirements.remove(removed)
        original.write(requirements)
        lab.write(requirements)
        table.add(f"remove one package ({removed}), rebuild", original.build(), lab.build(),
                  self_test=lab.test_seconds[-1], bytecode=lab.bytecode_seconds[-1])
        table.add("image size after the removal", size(ORIGINAL) / 1e9,
                  size(f"{PREFIX}pylab:latest") / 1e9, "GB")

        # Debian packages: no baseline (the original way has one apt layer for everything).
        (lab.root / "pylab_debs.txt").write_text("\n".join([*PYLAB_DEBS, "tree"]) + "\n")
        table.add("pylab: add one Debian package (tree), rebuild", None, lab.build(),
                  self_test=lab.test_seconds[-1])
        base_debs = lab.root / "base_debs.txt"
        base_debs.write_text(base_debs.read_text() + "file\n")
        table.add("base_debs.txt: add one package (file), rebuild", None, lab.build(),
                  self_test=lab.test_seconds[-1], bytecode=lab.bytecode_seconds[-1])
        print("  what pylab's rebuild on the new pyrlab-base reused:")
        for line in lab.log_lines("pylab"):
            if any(k in line for k in ("Prepared ", "Installed ", "pyrlab: ")):
                print(f"    {line}")

        if args.with_r:
            lab.build("rlab")
            packages = lab.root / "r_packages.txt"
            packages.write_text(packages.read_text() + "apt:digest\n")
            table.add("rlab: add one R package (apt:digest), rebuild", None, lab.build("rlab"),
                      self_test=lab.test_seconds[-1])

        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{dt.date.today().isoformat()}-{args.lab}.json"
        out.write_text(json.dumps({"lab": args.lab, "requirements": len(requirements),
                                   "machine": machine(), "rows": table.rows}, indent=2) + "\n")
        print(f"results: {out}")
    finally:
        if not args.keep:
            remove_images()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
