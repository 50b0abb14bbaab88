"""Podman through its command line client (`podman build` understands cache mounts)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from pyrlab.engines.base import (
    CACHE_ID_PREFIX,
    BuildFailure,
    BuildOutput,
    BuildRequest,
    Engine,
    HealthCheckRun,
    IndexSteps,
    RunRequest,
    reported,
    request_args,
    step_label,
    step_title,
)
from pyrlab.errors import EngineError


def buildah_tmpdir() -> Path:
    """The TMPDIR `podman build` runs with, under which buildah keeps cache mounts
    (buildah-cache/ID in 1.28, buildah-cache-UID/ID in later versions): the user's own
    $TMPDIR; else, rootless, a folder of the user's own; else /var/tmp.

    Buildah 1.28 puts every user's cache mounts in /var/tmp/buildah-cache: once root's
    builds made it, a rootless build cannot write there (apt: "Could not open lock file
    /var/lib/apt/lists/lock"), and once a user made it, root's builds would use that user's
    files. So a rootless build gets a TMPDIR of its own."""
    if os.environ.get("TMPDIR"):
        return Path(os.environ["TMPDIR"])
    if os.geteuid() == 0:
        return Path("/var/tmp")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pyrlab" / "buildah-tmp"


def buildah_cache_dirs() -> list[Path]:
    """Where buildah (run by this process) keeps cache mounts (see buildah_tmpdir)."""
    root = buildah_tmpdir()
    names = ("buildah-cache", f"buildah-cache-{os.getuid()}")
    return [root / name for name in names if (root / name).is_dir()]


def cache_repository(ref: str) -> str:
    """REPO of REPO:TAG or REPO@DIGEST (a port's colon is not a tag's)."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


class PodmanOutput(BuildOutput):
    """buildah's output: `STEP 3/7: RUN …` (`[2/2] STEP 3/7: …` when the Dockerfile has
    several stages), the step's output, `Error: building at STEP …`."""

    _STEP = re.compile(r"^(?:\[(\d+)/\d+\] )?STEP (\d+)/(\d+): (.*)$")
    _NAMED = re.compile(r"^FROM \S+ AS (\S+)$", re.IGNORECASE)

    def __init__(self) -> None:
        self.title = ""
        self.lines: list[str] = []
        self.error = ""
        self.stage_names: dict[str, str] = {}  # buildah's stage number → its `AS` name

    def feed(self, line: str) -> str | None:
        match = self._STEP.match(line)
        if match:
            stage, n, total, instruction = match.groups()
            named = self._NAMED.match(instruction.strip())
            if stage and named:
                self.stage_names[stage] = named.group(1)
            label = step_label(self.stage_names.get(stage or "", ""), n, total)
            self.title = f"{label} {step_title(instruction)}"
            self.lines = []
            return self.title if reported(instruction) else None
        if line.startswith("Error:"):
            self.error = line.strip()
            return None
        if line.startswith("--> "):  # buildah's own bookkeeping ("--> Using cache …")
            return None
        self.lines.append(line)
        del self.lines[: -self.TAIL]
        return None

    def failure(self) -> BuildFailure:
        return BuildFailure(self.title, list(self.lines), self.error)


VFS_NOTE = ("stores images with vfs, a full copy of the image at every build step: set "
            'driver = "overlay" (docs/building.md, rootless Podman)')


class Podman(Engine):
    name = "podman"
    # buildah 1.28 hangs on a second RUN --mount=type=cache,sharing=locked, and its layer
    # cache ignores what RUN steps bind-mount (so RUN lines carry their inputs' digest).
    locked_cache_sharing = False
    cache_sees_bind_mounts = False
    platform_query = ("info", "--format", "{{.Host.OS}}/{{.Host.Arch}}")

    def __init__(self, binary: str) -> None:
        super().__init__(binary)
        self.storage_note = ""

    def describe(self) -> str:
        note = f"; {self.storage_note}" if self.storage_note else ""
        return f"podman ({self.binary} build{note})"

    def check_available(self) -> None:
        super().check_available()
        if os.geteuid() != 0:
            # Debian's podman without containers-storage's storage.conf leaves a user on vfs.
            driver = self._run(["info", "--format", "{{.Store.GraphDriverName}}"])
            if driver.ok and driver.stdout.strip() == "vfs":
                self.storage_note = VFS_NOTE

    def build_output(self) -> BuildOutput:
        return PodmanOutput()

    def runs_here(self) -> bool:
        # Podman on Linux runs its containers itself, unless told to reach another's
        # service (podman --remote, a connection); on a Mac its machine's VM runs them.
        return sys.platform.startswith("linux") and not any(
            os.environ.get(name) for name in ("CONTAINER_HOST", "CONTAINER_CONNECTION"))

    def build_env(self) -> dict[str, str]:
        tmpdir = buildah_tmpdir()
        if str(tmpdir) == os.environ.get("TMPDIR", "/var/tmp"):
            return {}
        tmpdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {"TMPDIR": str(tmpdir)}

    def build_argv(self, request: BuildRequest, iidfile: Path) -> list[str]:
        argv = [self.binary, "build", "--format", "docker", "--iidfile", str(iidfile),
                *request_args(request)]
        argv.append("--pull=always" if request.pull else "--pull=never")
        # buildah takes a repository (no tag) whose layers a `podman build --cache-to` of
        # that repository pushed; podman 4.3 uses one, the last given.
        for ref in request.cache_from:
            argv += ["--cache-from", cache_repository(ref)]
        return argv + [str(request.context)]

    def push_argv(self, ref: str, digestfile: Path, *, plain_http: bool) -> list[str]:
        argv = [self.binary, "push", "--digestfile", str(digestfile)]
        if plain_http:
            argv.append("--tls-verify=false")
        return argv + [ref]

    def index_steps(self, ref: str, manifests: Sequence[str], digestfile: Path, *,
                    plain_http: bool) -> IndexSteps:
        """Podman keeps a list as a local image: it gets a name of its own (not `ref`,
        which may name a local image, as when pushing to the config's prefix), takes each
        entry from the registry, is pushed with its entries (there already: nothing is
        sent again) and the index's digest written to a file, and goes afterwards."""
        tls = ["--tls-verify=false"] if plain_http else []
        tag = ref.rsplit(":", 1)[-1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
        local = f"localhost/pyrlab-index-{secrets.token_hex(6)}:{tag}"
        return IndexSteps(
            steps=((["manifest", "create", local], False),
                   *((["manifest", "add", *tls, local, f"docker://{m}"], False)
                     for m in manifests),
                   (["manifest", "push", "--all", "--digestfile", str(digestfile), *tls,
                     local, f"docker://{ref}"], False)),
            cleanup=(["manifest", "rm", local],))

    def run_argv(self, request: RunRequest) -> list[str]:
        argv = super().run_argv(request)
        if request.user and request.mounts and os.geteuid() != 0:
            # Rootless, container UIDs other than 0 map to subordinate IDs, so the lab could
            # not write into the host folders it mounts (they look root's inside) and what it
            # wrote would belong to a sub-UID. keep-id maps this user to the lab's UID:GID.
            uid, _, gid = request.user.partition(":")
            spec = f"keep-id:uid={uid}" + (f",gid={gid}" if gid else "")
            argv[2:2] = ["--userns", spec]
        return argv

    def gpu_args(self) -> list[str]:
        return ["--device", "nvidia.com/gpu=all"]

    def check_health(self, name: str) -> HealthCheckRun:
        # Podman runs health checks from systemd timers: without systemd (in a container,
        # under WSL, on many CI runners) none ever runs, and a lab reads "starting" for
        # ever, or "healthy" long after its server died. `podman healthcheck run` checks
        # now and records the result as the timer would (exit 0: healthy, 1: unhealthy;
        # retries and the start period count as usual).
        result = self._run(["healthcheck", "run", name])
        if result.returncode in (0, 1):
            return HealthCheckRun(ran=True)
        detail = (result.stderr or result.stdout).strip().splitlines()
        return HealthCheckRun(ran=False, problem=f"`podman healthcheck run {name}` failed "
                              f"(exit code {result.returncode}): "
                              f"{detail[-1] if detail else 'no output'}")

    def prune_build_cache(self, *, dry_run: bool = False) -> list[str]:
        """buildah keeps `RUN --mount=type=cache,id=ID` folders in <tmp>/buildah-cache[-UID]/
        ID; its layer cache is the intermediate images, which go with the project's."""
        removed = []
        for folder in buildah_cache_dirs():
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith(CACHE_ID_PREFIX) and entry.is_dir():
                    if not dry_run:
                        shutil.rmtree(entry, ignore_errors=True)
                    removed.append(str(entry))
        return removed

    def start_hint(self) -> str:
        return "check `podman info`; rootful podman needs no daemon"


def find() -> Engine:
    """Podman, checked usable, or EngineError naming the fix."""
    path = shutil.which("podman")
    if not path:
        raise EngineError("podman is not installed", hint="apt-get install podman, or use docker")
    engine = Podman(path)
    engine.check_available()
    return engine
