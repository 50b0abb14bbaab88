"""What an upgrade would change in a built image, asked of the indexes from inside it.

Each question runs in a throwaway container of the image, as root, with the build's
network settings (the context's net/ files, proxy variables, host networking when a proxy
is on this host); the image's own CA files are trusted there already.

- Python: the image's requirements resolved again by its own /opt/venv pip
  (`pip install --dry-run --ignore-installed --report -`). uv is not in the image (it is
  a build tool kept in the build's cache), and pip there resolves the whole list, with
  dependencies, for the image's own interpreter and platform, reading the same index
  settings (pip.conf) as the build. `pip index versions` would only see one package at a
  time and ignore the list's constraints.
- Debian: `apt-get update` and a simulated `dist-upgrade` (apt-install --upgradable).
- R packages from the CRAN-like repository: `available.packages()` in an R session of the
  image, whose Rprofile.site names the configured repository (r-cran-* packages are Debian
  packages; those pinned with `==` stay where they are).

Both answers are compared with the image's manifest (its inventory).
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pyrlab.config.project import Project
from pyrlab.dockerfile.context import write_context
from pyrlab.dockerfile.render import render_context
from pyrlab.engines.base import Engine, Mount, RunRequest
from pyrlab.errors import BuildError, EngineError
from pyrlab.imagebuild.executor import proxy_build_args
from pyrlab.inventory.model import Inventory, Outdated, normalize_python_name
from pyrlab.inventory.versions import compare

PIP_REPORT = ("/opt/venv/bin/python", "-m", "pip", "install", "--dry-run", "--quiet",
              "--ignore-installed", "--disable-pip-version-check", "--no-cache-dir",
              "--report", "-", "-r", "/run/pyrlab/python/requirements.txt")
APT_UPGRADABLE = ("/run/pyrlab/bin/apt-install", "--upgradable")
# available.packages() only warns when the index cannot be read: that is an error here.
R_AVAILABLE = ("Rscript", "-e", "a <- available.packages()",
               "-e", 'if (!nrow(a)) stop("cannot read the index of ", getOption("repos"))',
               "-e", 'writeLines(paste(a[, "Package"], a[, "Version"]))')


def python_report_versions(report: str) -> dict[str, str]:
    """{normalised name: version} of everything a pip installation report would install."""
    try:
        data = json.loads(report)
        return {normalize_python_name(item["metadata"]["name"]): item["metadata"]["version"]
                for item in data["install"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"pip's installation report cannot be read ({exc!r}): "
                         f"{report[:200]}") from None


def apt_simulation_versions(output: str) -> dict[str, str]:
    """{package: version} that apt's simulated upgrade would install over an installed one."""
    versions = {}
    for line in output.splitlines():
        # Inst libc6 [2.41-11] (2.41-12 Debian:13.2/stable [amd64]) []
        parts = line.split()
        if (len(parts) >= 4 and parts[0] == "Inst" and parts[2].startswith("[")
                and parts[3].startswith("(")):
            versions[parts[1]] = parts[3][1:]
    return versions


def r_available_versions(output: str) -> dict[str, str]:
    """{package: version} of the repository's index, as R_AVAILABLE prints it."""
    versions = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2:
            versions[parts[0]] = parts[1]
    return versions


def outdated_rows(image: str, inventory: Inventory, python: Mapping[str, str],
                  debs: Mapping[str, str], r: Mapping[str, str] | None = None,
                  ) -> list[Outdated]:
    """The installed packages of `inventory` for which a newer version is available."""
    rows = []
    for dist in inventory.python:
        available = python.get(dist.name)
        if available and not dist.url and compare("python", available, dist.version) > 0:
            rows.append(Outdated(image, "python", dist.name, dist.version, available))
    for deb in inventory.debs:
        available = debs.get(deb.name) or debs.get(deb.name.split(":")[0])
        if available and compare("debs", available, deb.version) > 0:
            rows.append(Outdated(image, "debs", deb.name, deb.version, available))
    for package in inventory.r:
        available = (r or {}).get(package.name)
        if (available and package.source == "cran"
                and compare("r", available, package.version) > 0):
            rows.append(Outdated(image, "r", package.name, package.version, available))
    return rows


def ask_image(engine: Engine, ref: str, folder: Path, mounts: Mapping[str, str],
              command: tuple[str, ...], env: Mapping[str, str], network_host: bool, *,
              question: str = "what {ref} could upgrade") -> str:
    """The output of `command`, run as root in a throwaway container of `ref` with the
    context folders `mounts` (context path under pyrlab/ → path under /run/pyrlab)."""
    request = RunRequest(
        image=ref, name=f"pyrlab-ask-{secrets.token_hex(4)}", user="0:0",
        env=env, mounts=tuple(Mount(folder / "pyrlab" / src, f"/run/pyrlab/{dst}", True)
                              for src, dst in mounts.items()),
        network_host=network_host, command=command, detach=False, remove=True,
    )
    try:
        return engine.run(request)
    except EngineError as exc:
        raise BuildError(f"cannot ask {question.format(ref=ref)}: {exc.message}") from None
    except KeyboardInterrupt:  # its client was stopped, the container may still run
        engine.remove_container(request.name)
        raise


def upgradable(project: Project, engine: Engine, name: str, ref: str, inventory: Inventory,
               *, network_host: bool) -> list[Outdated]:
    """What an upgrade would change in the built image `ref` of `name`."""
    context = render_context(project, name, engine.render_options)
    env = proxy_build_args(project.config.proxy)
    python: dict[str, str] = {}
    debs: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="pyrlab-outdated-") as tmp:
        folder = write_context(context, Path(tmp) / "context")
        if "pyrlab/python/requirements.txt" in context.files:
            report = ask_image(engine, ref, folder, {"python": "python", "net/python": "net"},
                          PIP_REPORT, {**env, "PIP_CONFIG_FILE": "/run/pyrlab/net/pip.conf"},
                          network_host)
            python = python_report_versions(report)
        if "pyrlab/apt/system.txt" in context.files:
            simulated = ask_image(engine, ref, folder, {"bin": "bin", "net/apt": "net"},
                             APT_UPGRADABLE, env, network_host)
            debs = apt_simulation_versions(simulated)
        r: dict[str, str] = {}
        if any(package.source == "cran" for package in inventory.r):
            r = r_available_versions(ask_image(engine, ref, folder, {}, R_AVAILABLE, env,
                                          network_host))
    return outdated_rows(name, inventory, python, debs, r)
