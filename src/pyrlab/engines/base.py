"""The container engine contract. Every difference between engines lives behind it.

Engines only assemble argument lists and hand them to pyrlab.proc; the `*_argv` methods
are pure so that tests can check them without an engine.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrlab import proc
from pyrlab.dockerfile.render import RenderOptions
from pyrlab.errors import EngineError


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    tags: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    network_host: bool = False
    no_cache: bool = False
    pull: bool = False


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: int
    container_port: int


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class RunRequest:
    image: str
    name: str
    user: str | None = None  # "UID:GID"
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    gpus: bool = False
    network_host: bool = False
    workdir: str | None = None
    extra_args: tuple[str, ...] = ()  # from the user's config, passed through as given
    command: tuple[str, ...] = ()
    detach: bool = True
    remove: bool = False
    security_opts: tuple[str, ...] = ("no-new-privileges",)


class Engine(ABC):
    """One container engine, reached through its command line client."""

    name: str = ""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    # ------------------------------------------------------------ description
    @property
    def render_options(self) -> RenderOptions:
        return RenderOptions()

    def describe(self) -> str:
        return f"{self.name} ({self.binary})"

    # ------------------------------------------------------------ build
    @abstractmethod
    def build_argv(self, request: BuildRequest, iidfile: Path) -> list[str]: ...

    def build_env(self) -> dict[str, str]:
        return {}

    def build(self, request: BuildRequest, on_line: Callable[[str], None]) -> tuple[int, str]:
        """Build; returns (exit code, image ID or "")."""
        iidfile = request.context.parent / f".{request.context.name}.iid"
        iidfile.unlink(missing_ok=True)
        code = self._stream(self.build_argv(request, iidfile), on_line, env=self.build_env())
        image_id = iidfile.read_text().strip() if code == 0 and iidfile.exists() else ""
        iidfile.unlink(missing_ok=True)
        return code, image_id

    # ------------------------------------------------------------ images
    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        result = self._run(["image", "inspect", ref])
        if not result.ok:
            return None
        data = json.loads(result.stdout or "[]")
        return data[0] if data else None

    def image_labels(self, ref: str) -> dict[str, str]:
        info = self.inspect_image(ref)
        if info is None:
            return {}
        return dict((info.get("Config") or {}).get("Labels") or {})

    def tag(self, source: str, target: str) -> None:
        self._check(["tag", source, target])

    def remove_images(self, refs: Sequence[str]) -> None:
        if refs:
            self._run(["rmi", *refs])

    def list_images(self, label: str) -> list[dict[str, str]]:
        """Images carrying a label (key or key=value): ID, Repository, Tag."""
        result = self._check(["images", "--filter", f"label={label}", "--format", "{{json .}}"])
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return [{"ID": r.get("ID", r.get("Id", "")), "Repository": r.get("Repository", ""),
                 "Tag": r.get("Tag", "")} for r in rows]

    def import_tarball(self, tarball: Path, ref: str) -> str:
        result = self._check(["import", str(tarball), ref])
        return result.stdout.strip()

    @abstractmethod
    def prune_build_cache(self) -> None: ...

    # ------------------------------------------------------------ containers
    def run_argv(self, request: RunRequest) -> list[str]:
        argv = [self.binary, "run"]
        if request.detach:
            argv.append("--detach")
        if request.remove:
            argv.append("--rm")
        argv += ["--name", request.name]
        if request.user:
            argv += ["--user", request.user]
        for opt in request.security_opts:
            argv += ["--security-opt", opt]
        for key, value in sorted(request.env.items()):
            argv += ["--env", f"{key}={value}"]
        for port in request.ports:
            argv += ["--publish", f"{port.host_ip}:{port.host_port}:{port.container_port}"]
        for mount in request.mounts:
            spec = f"type=bind,source={mount.source},target={mount.target}"
            argv += ["--mount", spec + (",readonly" if mount.read_only else "")]
        for key, value in sorted(request.labels.items()):
            argv += ["--label", f"{key}={value}"]
        if request.gpus:
            argv += self.gpu_args()
        if request.network_host:
            argv += ["--network", "host"]
        if request.workdir:
            argv += ["--workdir", request.workdir]
        argv += list(request.extra_args)
        argv.append(request.image)
        argv += list(request.command)
        return argv

    def gpu_args(self) -> list[str]:
        return ["--gpus", "all"]

    def run(self, request: RunRequest) -> str:
        result = proc.run(self.run_argv(request))
        if not result.ok:
            raise EngineError(f"{self.name} run failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout.strip()

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        result = self._run(["container", "inspect", name])
        if not result.ok:
            return None
        data = json.loads(result.stdout or "[]")
        return data[0] if data else None

    def list_containers(self, label: str, *, all: bool = True) -> list[str]:
        argv = ["ps", "--filter", f"label={label}", "--format", "{{.Names}}"]
        if all:
            argv.insert(1, "--all")
        return [n for n in self._check(argv).stdout.split() if n]

    def stop(self, name: str, timeout: int = 10) -> None:
        self._run(["stop", "--time", str(timeout), name])

    def remove_container(self, name: str) -> None:
        self._run(["rm", "--force", name])

    def logs_argv(self, name: str, *, follow: bool = False, tail: int | None = None) -> list[str]:
        argv = [self.binary, "logs"]
        if follow:
            argv.append("--follow")
        if tail is not None:
            argv += ["--tail", str(tail)]
        return argv + [name]

    def logs(self, name: str, tail: int | None = None) -> str:
        result = proc.run(self.logs_argv(name, tail=tail))
        return result.stdout + result.stderr

    def exec_argv(self, name: str, command: Sequence[str], *, interactive: bool = False,
                  user: str | None = None) -> list[str]:
        argv = [self.binary, "exec"]
        if interactive:
            argv.append("--interactive")
            argv.append("--tty")
        if user:
            argv += ["--user", user]
        return argv + [name, *command]

    # ------------------------------------------------------------ availability
    def check_available(self) -> None:
        """Raise EngineError naming the fix when the engine cannot be used."""
        try:
            result = proc.run([self.binary, "info", "--format", "{{json .}}"], timeout=30)
        except FileNotFoundError:
            raise EngineError(f"{self.binary} is not installed") from None
        if not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise EngineError(
                f"{self.name} is not usable: {detail[-1] if detail else 'info failed'}",
                hint=self.start_hint(),
            )

    def start_hint(self) -> str:
        return f"start the {self.name} engine and try again"

    # ------------------------------------------------------------ helpers
    def _run(self, args: Sequence[str]) -> proc.Completed:
        return proc.run([self.binary, *args])

    def _check(self, args: Sequence[str]) -> proc.Completed:
        result = self._run(args)
        if not result.ok:
            message = (result.stderr or result.stdout).strip()
            raise EngineError(f"{proc.describe([self.binary, *args])} failed: {message}")
        return result

    def _stream(self, argv: Sequence[str], on_line: Callable[[str], None],
                env: Mapping[str, str] | None = None) -> int:
        try:
            return proc.stream(argv, on_line=on_line, env=env)
        except FileNotFoundError:
            raise EngineError(f"{argv[0]} is not installed") from None
