"""The renderer asks the registered ecosystems for their part (ecosystems.base.Context) and
names none of them: an ecosystem registered beside the built-in ones gets its step, files,
caches, secrets, network files and needs without a change to the renderer."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrlab import ecosystems
from pyrlab.config.project import Project, load_project
from pyrlab.credentials import mask_url
from pyrlab.dockerfile.network import build_secrets
from pyrlab.dockerfile.render import INVENTORY_COMMAND, Delta, RenderOptions, render_context
from pyrlab.ecosystems.base import (
    Cache,
    Context,
    DeltaView,
    Ecosystem,
    Needs,
    Part,
    ProjectView,
    ProxyView,
    lines,
)
from pyrlab.imagebuild.planner import delta_lists, part_names

SCRIPT = b"#!/bin/sh\nwhile read -r name; do : > \"/opt/files/$name\"; done < /run/pyrlab/files/files.txt\n"


def _part(project: ProjectView, name: str, needs: Needs, delta: DeltaView | None) -> Part:
    if name != "pylab":
        return Part(render=False)
    added = delta.added.get("files", ()) if delta is not None else ()
    return Part(render=True, files={"files.txt": lines(["a", "b", *added])},
                pins={"files.txt": b""})


def _net_files(project: ProjectView, proxy: ProxyView) -> dict[str, bytes]:
    return {"files.conf": lines([f"index = {proxy.pip_index or 'none'}"])}


FILES = Ecosystem(
    name="files", title="plain files", order=35, step="files", list_key="files",
    lock_key="files", manifest_key="files",
    context=Context(
        script="files-install",
        part=_part,
        comment=lambda root: "# Plain files.",
        scripts=lambda: {"files-install": (SCRIPT, 0o755)},
        caches=(Cache("files", "/var/cache/pyrlab/files"),),
        secrets=("files.conf",),
        needs=lambda project, name: Needs(debs=("file",)) if name == "pylab" else Needs(),
        net_files=_net_files,
        delta_lists=("files.txt",),
        env=("FILES_HOME=/opt/files",),
    ))


@pytest.fixture
def full(full_project: Path) -> Project:
    return load_project(full_project, environ={})


def _run_of(dockerfile: str, script: str) -> str:
    at = dockerfile.index(f"/run/pyrlab/bin/{script}")
    return dockerfile[dockerfile.rindex("RUN ", 0, at):dockerfile.index("\n", at)]


def test_a_registered_ecosystem_gets_its_step_in_install_order(full: Project) -> None:
    before = {name: render_context(full, name) for name in full.config.images}
    undo = ecosystems.register(FILES)
    try:
        context = render_context(full, "pylab")
        files = context.files
        assert files["pyrlab/bin/files-install"] == (SCRIPT, 0o755)
        assert files["pyrlab/files/files.txt"][0] == b"a\nb\n"
        assert files["pyrlab/pins/files/files.txt"][0] == b""
        index = mask_url(full.config.proxy.pip_index or "none")
        assert files["pyrlab/net/files/files.conf"][0] == lines([f"index = {index}"])
        assert "pyrlab/net/files/timeout" in files
        # What it needs of Debian is installed in the Debian step, after pyrlab's own.
        assert files["pyrlab/apt/system.txt"][0].decode().splitlines()[-1] == "file"
        dockerfile = context.dockerfile
        # Its order (35): after Python's step, before the inventory.
        assert (dockerfile.index("/bin/uv-install") < dockerfile.index("# Plain files.")
                < dockerfile.index("/bin/files-install") < dockerfile.index("inventory.py"))
        run = _run_of(dockerfile, "files-install")
        for mount in ("--mount=type=cache,id=pyrlab-files,target=/var/cache/pyrlab/files",
                      "--mount=type=bind,source=pyrlab/net/files,target=/run/pyrlab/net",
                      "--mount=type=bind,source=pyrlab/files,target=/run/pyrlab/files",
                      "--mount=type=bind,source=pyrlab/pins/files,target=/run/pyrlab/pins",
                      "--mount=type=secret,id=pyrlab-files.conf,target=/run/pyrlab/secret/files.conf",
                      "--mount=type=secret,id=pyrlab-proxy.env,target=/run/pyrlab/secret/proxy.env"):
            assert mount in run
        # An image whose part does not render has no such step, and the root image's
        # environment gains its variables after Python's.
        assert "/bin/files-install" not in render_context(full, "rlab").dockerfile
        root = render_context(full, "pyrlab-base").dockerfile
        assert root.index("UV_CACHE_DIR=") < root.index("FILES_HOME=/opt/files")
        # Podman's input keys cover its folders too.
        podman = render_context(full, "pylab", RenderOptions(run_input_keys=True)).dockerfile
        assert "# inputs " in _run_of(podman, "files-install")
        # A delta build can run its step alone; the step records the inventory.
        delta = render_context(full, "pylab", delta=Delta(("files",), 1, "h" * 64,
                                                          {"files": ("c",)}))
        assert delta.files["pyrlab/files/files.txt"][0] == b"a\nb\nc\n"
        assert "/bin/uv-install" not in delta.dockerfile
        assert f"/run/pyrlab/bin/files-install && \\\n    {INVENTORY_COMMAND}" in delta.dockerfile
        # The planner knows its list and its name.
        assert delta_lists()["files"] == ("pyrlab/files/files.txt",)
        assert part_names()["files"] == "plain files"
        # Its net file has no credentials here: no build secret for it.
        assert "files.conf" not in build_secrets(full)
    finally:
        undo()
    # Gone again with its registration: the built-in contexts are as before, byte for byte.
    assert {name: render_context(full, name) for name in full.config.images} == before
