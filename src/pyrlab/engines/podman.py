"""Podman through its command line client (`podman build` understands cache mounts)."""

from __future__ import annotations

from pathlib import Path

from pyrlab.dockerfile.render import RenderOptions
from pyrlab.engines.base import BuildRequest, Engine


class Podman(Engine):
    name = "podman"

    @property
    def render_options(self) -> RenderOptions:
        # buildah 1.28 hangs on a second RUN --mount=type=cache,sharing=locked.
        return RenderOptions(cache_sharing_locked=False)

    def describe(self) -> str:
        return f"podman ({self.binary} build)"

    def build_argv(self, request: BuildRequest, iidfile: Path) -> list[str]:
        argv = [self.binary, "build", "--format", "docker", "--iidfile", str(iidfile)]
        for tag in request.tags:
            argv += ["--tag", tag]
        for key, value in sorted(request.labels.items()):
            argv += ["--label", f"{key}={value}"]
        for key, value in sorted(request.build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        if request.network_host:
            argv += ["--network", "host"]
        if request.no_cache:
            argv.append("--no-cache")
        argv.append("--pull=always" if request.pull else "--pull=never")
        return argv + [str(request.context)]

    def gpu_args(self) -> list[str]:
        return ["--device", "nvidia.com/gpu=all"]

    def prune_build_cache(self) -> None:
        self._run(["builder", "prune", "--force", "--all"])

    def start_hint(self) -> str:
        return "check `podman info`; rootful podman needs no daemon"
