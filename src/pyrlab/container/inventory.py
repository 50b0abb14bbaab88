"""What an image holds, as JSON: inventory.py OUT.json META.json (run by /opt/venv/bin/python).

Stdlib only and no interpretation: the host validates and classifies what this writes.
"""

import importlib.metadata
import json
import platform
import re
import shutil
import subprocess
import sys

# The first of each name in .libPaths() order is the one R loads; base packages come with R.
R_LIST = r"""ip <- installed.packages(fields = "Repository", noCache = TRUE)
ip <- ip[!duplicated(ip[, "Package"]) & ip[, "Priority"] %in% c(NA, "recommended"), , drop = FALSE]
repo <- ifelse(is.na(ip[, "Repository"]), "", ip[, "Repository"])
cat(paste(R.version$major, R.version$minor, sep = "."), "\n", sep = "")
cat(paste(ip[, "Package"], ip[, "Version"], ip[, "LibPath"], repo, sep = "\t"), sep = "\n")"""


def run(*argv: str) -> list[str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def debs() -> list[list[str]]:
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


out_path, meta_path = sys.argv[1:3]
os_release = platform.freedesktop_os_release()
with open(meta_path, encoding="utf-8") as meta_file:
    meta = json.load(meta_file)
inventory = {
    "format": 1, "meta": meta, "python": platform.python_version(),
    "os_release": {k: os_release.get(k, "") for k in ("PRETTY_NAME", "ID", "VERSION_ID",
                                                      "VERSION_CODENAME")},
    "debs": debs(), "python_dists": python_dists(), "r": r_packages(),
}
with open(out_path, "w", encoding="utf-8") as out_file:
    json.dump(inventory, out_file, indent=1, sort_keys=True)
