"""What an image holds, as JSON: inventory.py OUT.json META.json BASE_ID (by /opt/venv/bin/python).
Stdlib only and no interpretation: the host validates and classifies what this writes."""

import importlib.metadata
import json
import pathlib
import platform
import re
import shutil
import subprocess
import sys

OS_RELEASE_KEYS = ("PRETTY_NAME", "ID", "VERSION_ID", "VERSION_CODENAME")
# The first of each name in .libPaths() order is the one R loads; base packages come with R.
R_LIST = r"""ip <- installed.packages(fields = "Repository", noCache = TRUE)
ip <- ip[!duplicated(ip[, "Package"]) & ip[, "Priority"] %in% c(NA, "recommended"), , drop = FALSE]
repo <- ifelse(is.na(ip[, "Repository"]), "", ip[, "Repository"])
cat(paste(R.version$major, R.version$minor, sep = "."), "\n", sep = "")
cat(paste(ip[, "Package"], ip[, "Version"], ip[, "LibPath"], repo, sep = "\t"), sep = "\n")"""


def run(*argv: str) -> list[str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def debs() -> list[list[str]]:  # a package of dpkg's own architecture loses its ":ARCH"
    native = run("dpkg", "--print-architecture")[0]
    fields = "${binary:Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n"
    rows = [line.split("\t") for line in run("dpkg-query", "-W", "-f", fields)]
    return sorted([n.removesuffix(":" + native), v, a] for n, v, a, s in rows if s == "installed")


def python_dists() -> list[list[str]]:
    found: dict[str, list[str]] = {}
    for dist in importlib.metadata.distributions():  # sys.path order: the first one wins
        name = dist.metadata["Name"]
        key = re.sub(r"[-_.]+", "-", name or "").lower()
        if name and key not in found:
            direct = json.loads(dist.read_text("direct_url.json") or "{}")
            found[key] = [name, dist.version, direct.get("url", "")]
    return sorted(found.values())


def r_packages() -> dict[str, object] | None:
    if shutil.which("Rscript") is None:
        return None
    version, *rows = run("Rscript", "--vanilla", "-e", R_LIST)
    return {"version": version, "packages": sorted(row.split("\t") for row in rows)}


meta = json.loads(pathlib.Path(sys.argv[2]).read_text(encoding="utf-8"))
meta["base_id"] = sys.argv[3]  # the base image's ID, known only when the build runs
os_release = platform.freedesktop_os_release()
inventory = {
    "format": 1, "meta": meta, "python": platform.python_version(),
    "os_release": {key: os_release.get(key, "") for key in OS_RELEASE_KEYS},
    "debs": debs(), "python_dists": python_dists(), "r": r_packages(),
}
pathlib.Path(sys.argv[1]).write_text(json.dumps(inventory, sort_keys=True), encoding="utf-8")
