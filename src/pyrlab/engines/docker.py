"""Docker through its command line client, always with BuildKit.

Two ways to reach BuildKit: the buildx plugin (`docker buildx build --load`) or, for
clients before Docker 23 that still carry the built-in builder, `DOCKER_BUILDKIT=1 docker
build`. A client of 23 or newer without buildx cannot use BuildKit at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

from pyrlab import proc
from pyrlab.engines.base import (
    BuildFailure,
    BuildOutput,
    BuildRequest,
    Engine,
    reported,
    request_args,
    step_label,
    step_title,
)
from pyrlab.engines.buildcache import marked_records, prune
from pyrlab.errors import EngineError

# Every image carries BuildKit's inline cache (its layers' cache keys, in the image config),
# so that any image pyrlab pushed can be a teammate's `--cache-from`. The docker driver
# exports no other cache (registry and local caches need a docker-container builder).
INLINE_CACHE_ARG = "BUILDKIT_INLINE_CACHE=1"


class BuildKitOutput(BuildOutput):
    """BuildKit's `--progress=plain`: `#7 [2/4] RUN …`, `#7 1.234 output`, `#7 ERROR: …`."""

    _VERTEX = re.compile(r"^#(\d+) (.*)$")
    _STEP = re.compile(r"^\[(?:([^\]]*) )?(\d+)/(\d+)\] (.*)$")
    _TIMED = re.compile(r"^\d+\.\d+ (.*)$")

    def __init__(self) -> None:
        self.titles: dict[str, str] = {}
        self.output: dict[str, list[str]] = {}
        self.failed: str | None = None
        self.error = ""
        self.last_lines: list[str] = []

    def feed(self, line: str) -> str | None:
        self.last_lines = (self.last_lines + [line])[-self.TAIL:]
        stripped = line.strip()
        if stripped.lower().startswith("error:") or "executor failed running" in stripped \
                or stripped.startswith("failed to solve"):
            self.error = stripped
        match = self._VERTEX.match(line)
        if not match:
            return None
        vertex, rest = match.groups()
        if vertex not in self.titles:
            step = self._STEP.match(rest)
            if step:
                stage, n, total, instruction = step.groups()
                self.titles[vertex] = f"{step_label(stage, n, total)} {step_title(instruction)}"
                return self.titles[vertex] if reported(instruction) else None
            self.titles[vertex] = ""  # [internal] load …, exporting, …
            return None
        if rest.startswith("ERROR"):
            if self.failed is None or not self.titles.get(self.failed):
                self.failed = vertex
            self.error = self.error or rest
            return None
        timed = self._TIMED.match(rest)
        if timed:
            lines = self.output.setdefault(vertex, [])
            lines.append(timed.group(1))
            del lines[: -self.TAIL]
        return None

    def failure(self) -> BuildFailure:
        # "ERROR: failed to solve: executor failed running [...]: exit code: 1" says no more
        # than its exit code once the step and its output are shown.
        code = re.search(r"exit code: (\d+)\s*$", self.error)
        error = f"exit code {code.group(1)}" if code else self.error
        step = self.titles.get(self.failed or "", "")
        if self.failed is not None and self.output.get(self.failed):
            return BuildFailure(step, self.output[self.failed], error)
        return BuildFailure(step, self.last_lines, error)


def _common_build_args(request: BuildRequest, iidfile: Path) -> list[str]:
    argv = ["--progress=plain", "--iidfile", str(iidfile), *request_args(request),
            "--build-arg", INLINE_CACHE_ARG]
    for ref in request.cache_from:
        argv += ["--cache-from", ref]
    if request.pull:
        argv.append("--pull")
    return argv + [str(request.context)]


class Docker(Engine):
    """What both ways of building with Docker share."""

    name = "docker"

    def build_output(self) -> BuildOutput:
        return BuildKitOutput()

    def runs_here(self) -> bool:
        return sys.platform.startswith("linux") and local_socket() is not None

    def build_cache_records(self) -> list[dict[str, str]]:
        """BuildKit's cache records (ID, CacheType, Description, InUse, Size)."""
        result = self._check(["system", "df", "--verbose", "--format", "{{json .BuildCache}}"])
        data = json.loads(result.stdout or "null") or []
        return [{k: str(v) for k, v in record.items()} for record in data]

    def prune_build_cache(self, *, dry_run: bool = False) -> list[str]:
        """Remove the cache records pyrlab's steps made (download caches and layers) and
        nothing else (see buildcache.marked_records)."""
        if dry_run:
            return marked_records(self.build_cache_records())
        return prune(self.build_cache_records, lambda record_id: self._run(
            ["builder", "prune", "--force", "--all", "--filter", f"id={record_id}"]))


class DockerBuildx(Docker):

    def describe(self) -> str:
        return f"docker with buildx ({self.binary} buildx build --load)"

    def build_argv(self, request: BuildRequest, iidfile: Path) -> list[str]:
        return [self.binary, "buildx", "build", "--load", *_common_build_args(request, iidfile)]


class DockerClassic(Docker):

    def describe(self) -> str:
        return f"docker with its built-in BuildKit builder (DOCKER_BUILDKIT=1 {self.binary} build)"

    def build_env(self) -> dict[str, str]:
        return {"DOCKER_BUILDKIT": "1"}

    def build_argv(self, request: BuildRequest, iidfile: Path) -> list[str]:
        return [self.binary, "build", *_common_build_args(request, iidfile)]


def client_version(binary: str) -> tuple[int, ...] | None:
    """The client's version, e.g. (20, 10, 24); None when it cannot be run."""
    try:
        result = proc.run([binary, "version", "--format", "{{.Client.Version}}"], timeout=30)
    except FileNotFoundError:
        return None
    text = result.stdout.strip().split("+")[0].split("-")[0]
    parts = [p for p in text.split(".") if p.isdigit()]
    return tuple(int(p) for p in parts) if parts else None


def _cli_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _cli_config() -> dict[str, object]:
    try:
        data = json.loads((_cli_config_dir() / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# Where the docker CLI looks for plugins on Linux, after its config's own folder.
SYSTEM_PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
                      "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")


def has_buildx(binary: str) -> bool:
    """Whether `binary buildx` works. Seen as the plugin file where the CLI looks for it,
    without starting a process (every pyrlab command selects an engine); only when there
    is none is the CLI itself asked."""
    extra = _cli_config().get("cliPluginsExtraDirs")
    dirs = [str(_cli_config_dir() / "cli-plugins"),
            *(d for d in extra if isinstance(d, str))] if isinstance(extra, list) else \
        [str(_cli_config_dir() / "cli-plugins")]
    for folder in [*dirs, *SYSTEM_PLUGIN_DIRS]:
        if os.access(Path(folder) / "docker-buildx", os.X_OK):
            return True
    try:
        return proc.run([binary, "buildx", "version"], timeout=30).ok
    except FileNotFoundError:
        return False


def local_socket() -> str | None:
    """The daemon's socket on this machine (DOCKER_HOST's unix:// path, else the default),
    or None when the CLI talks to another daemon: a tcp:// or ssh:// DOCKER_HOST, or a
    context other than the default (Docker Desktop's, also on Linux, is its VM's)."""
    host = os.environ.get("DOCKER_HOST", "")
    if os.environ.get("DOCKER_CONTEXT") or (host and not host.startswith("unix://")):
        return None
    if _cli_config().get("currentContext") not in (None, "", "default"):
        return None
    return host.removeprefix("unix://") or "/var/run/docker.sock"


def daemon_answers_ping() -> bool:
    """True when the default daemon socket answers /_ping (about a millisecond, where
    `docker version` starts a process); False when that cannot be told this way (another
    DOCKER_HOST or context, no socket): the caller then asks the CLI."""
    path = local_socket()
    if path is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(256).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status.startswith(b"HTTP/1.") and b" 200 " in status


# Debian's docker.io (20.10) client still has the built-in BuildKit builder; a Docker 23+
# client first on PATH may not. Both talk to the same daemon.
DOCKER_CANDIDATES = ("docker", "/usr/bin/docker")


def _daemon_ok(binary: str) -> tuple[bool, str]:
    if daemon_answers_ping():
        return True, ""
    try:
        result = proc.run([binary, "version", "--format", "{{.Server.Version}}"], timeout=30)
    except FileNotFoundError:
        return False, f"{binary} is not installed"
    if result.ok and result.stdout.strip():
        return True, ""
    detail = (result.stderr or result.stdout).strip().splitlines()
    return False, detail[-1] if detail else "the daemon did not answer"


def find() -> Engine:
    """A Docker client that can build with BuildKit, or EngineError naming the fix."""
    binaries: list[str] = []
    for candidate in DOCKER_CANDIDATES:
        path = shutil.which(candidate)
        if path and os.path.realpath(path) not in [os.path.realpath(b) for b in binaries]:
            binaries.append(path)
    if not binaries:
        raise EngineError("docker is not installed",
                          hint="install Docker (Debian: apt-get install docker.io) or use podman")
    ok, detail = _daemon_ok(binaries[0])
    if not ok:
        raise EngineError(f"cannot reach the Docker daemon: {detail}",
                          hint="start it with `systemctl start docker` (or run `dockerd`), "
                          "or pick Podman with --engine podman")
    for binary in binaries:
        if has_buildx(binary):
            return DockerBuildx(binary)
    for binary in binaries:
        version = client_version(binary)
        if version is not None and version < (23,):
            return DockerClassic(binary)
    raise EngineError(
        "no Docker client here can build with BuildKit: "
        f"{', '.join(binaries)} {'has' if len(binaries) == 1 else 'have'} no buildx plugin",
        hint="install the buildx plugin (Debian: docker-buildx, into ~/.docker/cli-plugins/) "
        "or use --engine podman",
    )
