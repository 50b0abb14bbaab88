"""What an upgrade would change in a built image, asked of the indexes from inside it.

Each question runs in a throwaway container of the image, as root, with the build's
network settings (the context's net/ files, the build secrets mounted read-only at
/run/pyrlab/secret, never in its environment or command line, host networking when a proxy
is on this host); the image's own CA files are trusted there already.

- Python: the image's lists resolved again by the uv builds use (uv-resolve, which fetches
  that uv with the image's pip through the configured index, since uv is a build tool kept
  in the build's cache, not in the image), for the image's own interpreter and platform,
  with an empty cache, as `pyrlab upgrade` resolves them; heldback.py then names the listed
  packages that resolution holds back and what holds them, and takes a floor where a
  resolution keeping one newer exists, as `upgrade` does. So what `outdated` offers is what
  `upgrade` delivers.
- Debian: `apt-get update` and a simulated `dist-upgrade` (apt-install --upgradable).
- R packages from the CRAN-like repository: `available.packages()` in an R session of the
  image, whose Rprofile.site names the configured repository (r-cran-* packages are Debian
  packages; those pinned with `==` stay where they are).

Both answers are compared with the image's manifest (its inventory).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from secrets import token_hex

from pyrlab.config.project import Project
from pyrlab.contents.heldback import HeldBack
from pyrlab.contents.model import Inventory, Outdated, normalize_python_name
from pyrlab.contents.versions import compare
from pyrlab.credentials import Redactor
from pyrlab.dockerfile.context import secret_folder, write_context
from pyrlab.dockerfile.network import SECRET_DIR, build_secrets
from pyrlab.dockerfile.render import RenderOptions, render_context
from pyrlab.engines.base import Engine, Mount, RunRequest
from pyrlab.errors import BuildError, EngineError

# Commands run through net-env, which exports the proxy variables from the secrets.
NET_ENV = "/run/pyrlab/bin/net-env"
UV_RESOLVE = ("/run/pyrlab/bin/uv-resolve",)
APT_UPGRADABLE = ("/run/pyrlab/bin/apt-install", "--upgradable")
# available.packages() only warns when the index cannot be read: that is an error here.
# A repository with credentials is not in the image's Rprofile.site: it is a build secret.
R_AVAILABLE = (NET_ENV, "Rscript",
               "-e", f'f <- "{SECRET_DIR}/repos.txt"',
               "-e", "if (file.exists(f)) options(repos = c(CRAN = readLines(f)[[1L]]))",
               "-e", "a <- available.packages()",
               "-e", ('if (!nrow(a)) stop("cannot read the index of ", '
                      'sub("//[^/@]*@", "//***@", getOption("repos")))'),
               "-e", 'writeLines(paste(a[, "Package"], a[, "Version"]))')


def python_resolution(answer: str) -> tuple[dict[str, str], list[HeldBack]]:
    """{normalised name: version} of the resolution heldback.py printed, and its findings."""
    try:
        data = json.loads(answer.strip().splitlines()[-1])
        versions = {normalize_python_name(k): str(v) for k, v in data["resolution"].items()}
        held = [HeldBack(kind=kind, **{k: str(v) for k, v in row.items()
                                       if k in HeldBack.__dataclass_fields__})
                for kind in ("held", "raised") for row in data[kind]]
        held += [HeldBack(kind="note", text=str(note)) for note in data["notes"]]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise BuildError(f"the resolution's answer cannot be read ({exc!r}): "
                         f"{answer[-200:]}") from None
    return versions, held


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
              command: tuple[str, ...], secrets: Path, network_host: bool, *,
              redact: Callable[[str], str], env: Mapping[str, str] | None = None,
              question: str = "what {ref} could upgrade") -> str:
    """The output of `command`, run as root in a throwaway container of `ref` with the
    context folders `mounts` (context path under pyrlab/ → path under /run/pyrlab) and the
    folder of build secrets `secrets` at SECRET_DIR, read-only. A failure's message is
    `redact`ed (R, for one, names the repository URL it could not read)."""
    request = RunRequest(
        image=ref, name=f"pyrlab-ask-{token_hex(4)}", user="0:0", env=env or {},
        mounts=(*(Mount(folder / "pyrlab" / src, f"/run/pyrlab/{dst}", True)
                  for src, dst in mounts.items()), Mount(secrets, SECRET_DIR, True)),
        network_host=network_host, command=command, detach=False, remove=True,
    )
    try:
        return engine.run(request)
    except EngineError as exc:
        raise BuildError(f"cannot ask {question.format(ref=ref)}: {redact(exc.message)}") \
            from None
    except KeyboardInterrupt:  # its client was stopped, the container may still run
        engine.remove_container(request.name)
        raise


def upgradable(project: Project, engine: Engine, name: str, ref: str, inventory: Inventory,
               *, network_host: bool) -> tuple[list[Outdated], list[HeldBack]]:
    """What an upgrade would change in the built image `ref` of `name`, and the listed
    packages its resolution would hold back."""
    context = render_context(project, name, RenderOptions.for_builder(engine))
    secrets = build_secrets(project)
    redact = Redactor(project.config.proxy.urls())
    python: dict[str, str] = {}
    held: list[HeldBack] = []
    debs: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="pyrlab-outdated-") as tmp, \
            secret_folder(secrets) as secret_files:
        folder = write_context(context, Path(tmp) / "context")
        if "pyrlab/python/requirements.txt" in context.files:
            answer = ask_image(engine, ref, folder,
                               {"bin": "bin", "python": "python", "net/python": "net"},
                               UV_RESOLVE, secret_files, network_host, redact=redact)
            python, held = python_resolution(answer)
        if "pyrlab/apt/system.txt" in context.files:
            simulated = ask_image(engine, ref, folder, {"bin": "bin", "net/apt": "net"},
                                  APT_UPGRADABLE, secret_files, network_host, redact=redact)
            debs = apt_simulation_versions(simulated)
        r: dict[str, str] = {}
        if any(package.source == "cran" for package in inventory.r):
            r = r_available_versions(ask_image(engine, ref, folder, {"bin": "bin"},
                                               R_AVAILABLE, secret_files, network_host,
                                               redact=redact))
    return outdated_rows(name, inventory, python, debs, r), held
