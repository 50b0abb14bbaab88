"""Choosing the engine: --engine > PYRLAB_ENGINE > pyrlab.toml > auto-detect.

The choice is reported with its source, e.g. "docker with buildx (docker buildx build
--load), from auto-detection".
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyrlab import proc
from pyrlab.errors import EngineError

if TYPE_CHECKING:  # the engines are imported when one is chosen: the CLI imports this module
    from pyrlab.engines.base import Engine

# Debian's docker.io (20.10) client still has the built-in BuildKit builder; a Docker 23+
# client first on PATH may not. Both talk to the same daemon.
DOCKER_CANDIDATES = ("docker", "/usr/bin/docker")


@dataclass(frozen=True)
class Selection:
    engine: Engine
    source: str  # "--engine", "PYRLAB_ENGINE", "pyrlab.toml", "user file …", "auto-detection"

    def describe(self) -> str:
        return f"engine: {self.engine.describe()}, from {self.source}"


def _docker_daemon_ok(binary: str) -> tuple[bool, str]:
    from pyrlab.engines.docker import daemon_answers_ping

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


def find_docker() -> Engine:
    """A Docker client that can build with BuildKit, or EngineError naming the fix."""
    from pyrlab.engines.docker import DockerBuildx, DockerClassic, client_version, has_buildx

    binaries: list[str] = []
    for candidate in DOCKER_CANDIDATES:
        path = shutil.which(candidate)
        if path and os.path.realpath(path) not in [os.path.realpath(b) for b in binaries]:
            binaries.append(path)
    if not binaries:
        raise EngineError("docker is not installed",
                          hint="install Docker (Debian: apt-get install docker.io) or use podman")
    ok, detail = _docker_daemon_ok(binaries[0])
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


def find_podman() -> Engine:
    from pyrlab.engines.podman import Podman

    path = shutil.which("podman")
    if not path:
        raise EngineError("podman is not installed", hint="apt-get install podman, or use docker")
    engine = Podman(path)
    engine.check_available()
    return engine


def named_engine(flag: str | None, config_value: str,
                 environ: Mapping[str, str] | None = None, *,
                 config_source: str = "pyrlab.toml") -> tuple[str, str]:
    """(engine, where the choice came from): --engine, else PYRLAB_ENGINE, else the config's
    `engine`, else ("auto", "auto-detection"). An unknown name is refused."""
    environ = os.environ if environ is None else environ
    if flag and flag != "auto":
        choice, source = flag, "--engine"
    elif environ.get("PYRLAB_ENGINE", "auto") != "auto":
        choice, source = environ["PYRLAB_ENGINE"], "PYRLAB_ENGINE"
    elif config_value != "auto":
        choice, source = config_value, config_source
    else:
        choice, source = "auto", "auto-detection"
    if choice not in ("auto", "docker", "podman"):
        raise EngineError(f"unknown engine {choice!r} (from {source}): use docker or podman")
    return choice, source


@dataclass(frozen=True)
class EngineChoice:
    name: str  # "docker" or "podman"
    source: str


def engine_choice(flag: str | None, config_value: str,
                  environ: Mapping[str, str] | None = None, *,
                  config_source: str = "pyrlab.toml") -> EngineChoice:
    """The engine a build would use, by name, for what only needs to know which (rendering):
    a named engine need not be installed; "auto" looks for one as select_engine does and,
    finding none, answers docker, saying so."""
    choice, source = named_engine(flag, config_value, environ, config_source=config_source)
    if choice != "auto":
        return EngineChoice(choice, source)
    try:
        selection = select_engine(None, "auto", {})
    except EngineError:
        return EngineChoice("docker", "auto-detection, which found no usable engine")
    return EngineChoice(selection.engine.name, selection.source)


def select_engine(flag: str | None, config_value: str,
                  environ: Mapping[str, str] | None = None, *,
                  config_source: str = "pyrlab.toml") -> Selection:
    """The engine: --engine, else PYRLAB_ENGINE, else the config's `engine` (from
    `config_source`: pyrlab.toml or the user's file), else the first that works."""
    choice, source = named_engine(flag, config_value, environ, config_source=config_source)
    if choice == "docker":
        return Selection(find_docker(), source)
    if choice == "podman":
        return Selection(find_podman(), source)
    problems: list[str] = []
    for finder in (find_docker, find_podman):
        try:
            engine = finder()
        except EngineError as exc:
            problems.append(exc.message)
            continue
        # Say why the first choice was passed over: "auto-detection (docker: not running)".
        return Selection(engine, source + (f" ({'; '.join(problems)})" if problems else ""))
    raise EngineError("no usable container engine: " + "; ".join(problems),
                      hint="install and start Docker (with buildx) or Podman, "
                      "or name one with --engine")


def add_engine_argument(parser: argparse.ArgumentParser, dest: str = "engine") -> None:
    parser.add_argument("--engine", choices=("auto", "docker", "podman"), default=None, dest=dest,
                        help="container engine (default: $PYRLAB_ENGINE, then pyrlab.toml's "
                        "engine, then auto-detection: docker, else podman)")
