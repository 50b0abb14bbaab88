"""Another platform's lab under emulation, beside the engine's own (issue 23): time and disk.

    .venv/bin/python bench/bench_platforms.py [--keep]

A small lab (Debian's Python on a base bootstrapped from the mirror for each platform,
ipykernel and numpy: tests/integration/cases/platforms' lists) is built for each platform
on its own, the engine's own first, each from cold (this benchmark's images removed,
pyrlab's build cache records pruned: download caches and the bytecode cache included);
then one package is added and each platform is built again (a delta). Per platform:
the base's bootstrap, each image's build and self-test, the add-one, the images' sizes and
the build cache the platform's steps keep (their cache mounts carry its token). These are
figures, not targets: emulation is slow, and this machine is shared.

Only this benchmark's images (named pyrlab-bench-platforms/…) and pyrlab's build cache
records are removed. The figures go to bench/results/<date>-platforms.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_inner_loop import PYRLAB_MARK, prune, sh

from pyrlab.engines import buildcache
from pyrlab.platforms import SUPPORTED, host_platform, token

NAME = "pyrlab-bench-platforms"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
RESULTS = Path(__file__).parent / "results"
REQUIREMENTS = ["ipykernel", "numpy"]
ADDED = "six"


def write_lab(root: Path) -> None:
    cas = json.dumps([str(p) for p in sorted(HOST_CA_DIR.glob("*.crt"))])
    (root / "pyrlab.toml").write_text(f"""\
name = "{NAME}"

[base]
image = "{NAME}/debian:trixie"
bootstrap = "trixie"
python = "debian"
debs = []
ca_certificates = {cas}
jupyterhub = false

[images.pyrlab-base]

[images.pylab]
from = "pyrlab-base"
requirements = ["requirements.txt"]
ports = {{ lab = 8888 }}
""")
    (root / "requirements.txt").write_text("".join(f"{r}\n" for r in REQUIREMENTS))


def pyrlab(root: Path, *args: str) -> dict[str, Any]:
    done = sh(sys.executable, "-m", "pyrlab", "-C", str(root), *args, "--json",
              env={"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    return dict(json.loads(done.stdout))


def remove_images() -> None:
    refs = [r for r in sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
            .split() if r.startswith(f"{NAME}/")]
    for _ in range(4):
        if refs:
            sh("docker", "rmi", "--force", *refs, check=False)


def ref(image: str, platform_name: str, host: str) -> str:
    arch = "" if platform_name == host else f"/{token(platform_name)}"
    return f"{NAME}/{image}{arch}:latest" if image != "debian" else \
        f"{NAME}/debian{arch}:trixie"


def size(image_ref: str) -> int:
    return int(sh("docker", "image", "inspect", "--format", "{{.Size}}", image_ref).stdout)


UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def cache_bytes() -> int:
    """The build cache pyrlab's steps keep (layers and cache mounts): measured right after
    one platform's builds, which started from none, it is that platform's."""
    total = 0.0
    for record in buildcache.docker_records("docker"):
        if PYRLAB_MARK in record.get("Description", ""):
            text = record.get("Size", "0B")
            unit = text.lstrip("0123456789.")
            total += float(text[: len(text) - len(unit)] or 0) * UNITS.get(unit, 1)
    return int(total)


def images_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: {"seconds": i["seconds"],
                        "self_test": i["test"]["seconds"] if i["test"] else None,
                        "action": i["action"]} for i in data["images"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the images at the end")
    args = parser.parse_args()
    host = host_platform()
    order = [host, *(p for p in SUPPORTED if p != host)]
    figures: dict[str, Any] = {"host": host, "cores": os.cpu_count(),
                               "python": platform.python_version(), "platforms": {}}
    root = Path(tempfile.mkdtemp(prefix="bench-platforms-"))
    try:
        write_lab(root)
        for target in order:
            remove_images()
            prune(PYRLAB_MARK)
            (root / "pyrlab.lock").unlink(missing_ok=True)
            (root / "requirements.txt").write_text("".join(f"{r}\n" for r in REQUIREMENTS))
            started = time.monotonic()
            cold = pyrlab(root, "build", "--platform", target)
            cold_seconds = time.monotonic() - started
            lines = (root / "requirements.txt").read_text() + f"{ADDED}\n"
            (root / "requirements.txt").write_text(lines)
            started = time.monotonic()
            added = pyrlab(root, "build", "--platform", target)
            add_seconds = time.monotonic() - started
            figures["platforms"][target] = {
                "cold_seconds": round(cold_seconds, 1),
                "cold_images": images_of(cold),
                "add_one_seconds": round(add_seconds, 1),
                "add_one_images": images_of(added),
                "sizes": {image: size(ref(image, target, host))
                          for image in ("debian", "pyrlab-base", "pylab")},
                "build_cache_bytes": cache_bytes(),
            }
            print(json.dumps({target: figures["platforms"][target]}, indent=1), flush=True)
    finally:
        if not args.keep:
            remove_images()
        shutil.rmtree(root, ignore_errors=True)
    native, *others = (figures["platforms"][p] for p in order)
    print(f"\n{'':<24}" + "".join(f"{p:>16}" for p in order))
    for label, key in (("cold build (s)", "cold_seconds"), ("add one (s)", "add_one_seconds")):
        print(f"{label:<24}" + "".join(f"{figures['platforms'][p][key]:>16}" for p in order))
    for image in ("debian", "pyrlab-base", "pylab"):
        print(f"{image + ' (MB)':<24}" + "".join(
            f"{figures['platforms'][p]['sizes'][image] / 1e6:>16.0f}" for p in order))
    print(f"{'build cache (MB)':<24}" + "".join(
        f"{figures['platforms'][p]['build_cache_bytes'] / 1e6:>16.0f}" for p in order))
    for other in others:
        print(f"ratio {order[1]} / {host}: cold "
              f"{other['cold_seconds'] / native['cold_seconds']:.1f}, add one "
              f"{other['add_one_seconds'] / native['add_one_seconds']:.1f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{dt.date.today().isoformat()}-platforms.json"
    out.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
