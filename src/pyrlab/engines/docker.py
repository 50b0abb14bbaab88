"""Docker through its command line client, always with BuildKit.

Two ways to reach BuildKit: the buildx plugin (`docker buildx build --load`) or, for
clients before Docker 23 that still carry the built-in builder, `DOCKER_BUILDKIT=1 docker
build`. A client of 23 or newer without buildx cannot use BuildKit at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyrlab import proc
from pyrlab.engines.base import BuildRequest, Engine, request_args

# BuildKit describes a cache record by the step that made it ("cached mount /var/cache/apt
# from exec /bin/bash -o pipefail -c /run/pyrlab/bin/apt-install"): pyrlab's all name this.
PYRLAB_STEP_MARK = "/run/pyrlab/bin/"


def _common_build_args(request: BuildRequest, iidfile: Path) -> list[str]:
    argv = ["--progress=plain", "--iidfile", str(iidfile), *request_args(request)]
    if request.pull:
        argv.append("--pull")
    return argv + [str(request.context)]


class Docker(Engine):
    """What both ways of building with Docker share."""

    name = "docker"

    def build_cache_records(self) -> list[dict[str, str]]:
        """BuildKit's cache records (ID, CacheType, Description, InUse, Size)."""
        result = self._check(["system", "df", "--verbose", "--format", "{{json .BuildCache}}"])
        data = json.loads(result.stdout or "null") or []
        return [{k: str(v) for k, v in record.items()} for record in data]

    def prune_build_cache(self) -> list[str]:
        """Remove the cache records pyrlab's steps made (download caches and layers) and
        nothing else. BuildKit keeps a record that still has a child, so this goes round
        until a pass removes nothing."""
        removed: list[str] = []
        while True:
            mine = [i for i in pyrlab_records(self.build_cache_records()) if i not in removed]
            for record_id in mine:
                self._run(["builder", "prune", "--force", "--all", "--filter", f"id={record_id}"])
            left = {r["ID"] for r in self.build_cache_records()}
            gone = [record_id for record_id in mine if record_id not in left]
            if not gone:
                return removed
            removed += gone


def pyrlab_records(records: list[dict[str, str]]) -> list[str]:
    """IDs of the records a pyrlab step made and of those built on one (a layer whose
    Parent chain reaches one). The COPY layers after pyrlab's steps are pyrlab's too, but
    BuildKit calls them only "fileop target"; left behind, they would keep their parents,
    the layers of pyrlab's steps, from being removed. An image built FROM a pyrlab image
    starts from new "from local" records, so nobody else's build descends from these."""
    parents = {r["ID"]: [p.strip() for p in r.get("Parent", "").split(",") if p.strip()]
               for r in records if r.get("ID")}
    mine = {r["ID"] for r in records
            if r.get("ID") and PYRLAB_STEP_MARK in r.get("Description", "")}
    grew = True
    while grew:  # add children of what is in, until no more come
        grown = {i for i, ps in parents.items() if i not in mine and mine.intersection(ps)}
        mine |= grown
        grew = bool(grown)
    return [r["ID"] for r in records if r.get("ID") in mine]


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


def has_buildx(binary: str) -> bool:
    try:
        return proc.run([binary, "buildx", "version"], timeout=30).ok
    except FileNotFoundError:
        return False
