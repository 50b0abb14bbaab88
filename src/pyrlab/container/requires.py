"""What `pyrlab why` reads in a throwaway container of the image (by /opt/venv/bin/python -I).

Prints one JSON object: the marker environment (PEP 508 names), where Rscript is ("": no
R), and, for every distribution the lab's Python sees (the first of each name in sys.path
order), its name, version, Requires-Dist lines and direct URL. Stdlib only, no
interpretation: markers are evaluated and the graph is built on the host
(pyrlab/inventory/dependencies.py).
"""

import importlib.metadata
import json
import os
import platform
import re
import shutil
import sys
from typing import Any


def full_version(info: Any) -> str:  # sys.implementation.version
    version = f"{info.major}.{info.minor}.{info.micro}"
    return version if info.releaselevel == "final" else \
        f"{version}{info.releaselevel[0]}{info.serial}"


environment = {
    "implementation_name": sys.implementation.name,
    "implementation_version": full_version(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
dists = {}
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    key = re.sub(r"[-_.]+", "-", name or "").lower()
    if name and key not in dists:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        dists[key] = {"name": name, "version": dist.version, "requires": dist.requires or [],
                      "url": direct.get("url", "")}
report = {"environment": environment, "rscript": shutil.which("Rscript") or "",
          "dists": sorted(dists.values(), key=lambda d: d["name"])}
sys.stdout.write("\n" + json.dumps(report) + "\n")
