"""Acceptance, by hand: an R lab for the other platform under emulation (issue 23).

    .venv/bin/python bench/accept_arm64_rlab.py [--keep]

Too slow for CI (R from Debian, installed under qemu-user), so it is run and reported by
hand. A small rlab (R from Debian, IRkernel and `r-cran-jsonlite` as Debian binaries, no
JupyterLab) on a base bootstrapped for the platform is built for the other supported
platform only (arm64 on an amd64 machine). Its self-test loads the R packages there; then,
in the image under `--platform`, R says its architecture and jsonlite works. Prints the
times and the image sizes; exits non-zero when anything fails. Removes its images (named
pyrlab-accept-rlab/…) at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pyrlab.platforms import SUPPORTED, host_platform, qemu_name, token

NAME = "pyrlab-accept-rlab"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


def run(*argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, input=input)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the images")
    args = parser.parse_args()
    host = host_platform()
    other = next(p for p in SUPPORTED if p != host)
    root = Path(tempfile.mkdtemp(prefix="accept-rlab-"))
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

[build]
platforms = ["{other}"]

[images.pyrlab-base]

[images.rlab]
from = "pyrlab-base"
r = "debian"
r_packages = ["r_packages.txt"]
r_source = "apt"
""")
    (root / "r_packages.txt").write_text("IRkernel\njsonlite\n")
    ok = False
    try:
        started = time.monotonic()
        done = run(sys.executable, "-m", "pyrlab", "-C", str(root), "build", "--json")
        seconds = time.monotonic() - started
        if done.returncode != 0:
            print(done.stderr[-4000:])
            print(f"FAILED: build for {other} in {seconds:.0f}s")
            return 1
        data = json.loads(done.stdout)
        for image in data["images"]:
            test = image["test"] or {}
            print(f"{image['name']} ({image['platform']}): {image['action']} in "
                  f"{image['seconds']}s, self-test {test.get('seconds')}s: "
                  + ", ".join(f"{c['kind']} {c['name']} {'ok' if c['ok'] else c['error']}"
                              for c in test.get("checks", [])))
        ref = f"{NAME}/rlab/{token(other)}:latest"
        said = run("docker", "run", "--rm", "--network", "none", "--platform", other, ref,
                   "Rscript", "-e", "library(jsonlite); cat(R.version$arch, "
                   "as.character(toJSON(1:3)), sep = ' ')")
        print(f"in {ref}: {said.stdout.strip()!r} {said.stderr.strip()[-300:]}")
        size = run("docker", "image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
        print(f"build for {other}, from cold base: {seconds:.0f}s; rlab image "
              f"{int(size or 0) / 1e6:.0f} MB")
        ok = said.stdout.split() == [qemu_name(other), "[1,2,3]"]
        print("OK" if ok else "FAILED: R in the image did not say what was expected")
    finally:
        if not args.keep:
            refs = [r for r in run("docker", "images", "--format",
                                   "{{.Repository}}:{{.Tag}}").stdout.split()
                    if r.startswith(f"{NAME}/")]
            if refs:
                run("docker", "rmi", "--force", *refs)
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
