"""The Python ecosystem: Python packages (distributions), installed with uv into /opt/venv."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from pyrlab.credentials import has_credentials, is_loopback_url
from pyrlab.ecosystems.base import (
    EXECUTABLE,
    REGULAR,
    Cache,
    Checks,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
    Grammar,
    Needs,
    Part,
    Pins,
    ProjectView,
    ProxyView,
    Queries,
    RuntimeFile,
    container_file,
    lines,
)

# -- grammar --------------------------------------------------------------------------------
GRAMMAR = Grammar()

# -- build context ----------------------------------------------------------------------------
UV_VERSION = "0.13.9"  # the uv that goes into images; bumped by pyrlab releases
# The JupyterHub series of `jupyterhub-singleuser` in runnable images ([base] jupyterhub)
# and of the hub `pyrlab export jupyterhub` writes a configuration for (Zero to JupyterHub
# 4.x runs JupyterHub 5): single-user server and hub of one major.minor.
JUPYTERHUB_SERIES = "5.4"
SLIM_TOOLS = ("binutils",)  # strip, for [base] slim
UV_CACHE = "/var/cache/pyrlab/uv"  # uv's cache mount in the Python step
# JupyterLab setting defaults for every environment with JupyterLab, merged into its
# share/jupyter/lab/settings/overrides.json by lab_settings.py (after the packages, one of
# which may ship that file). fetchNews is a string in the schema: "true", "false", "none".
LAB_OVERRIDES = {
    # No "Would you like to receive official Jupyter news?" prompt on a fresh lab, and no
    # request to jupyter.org behind the user's back.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
}


def system_requirements(project: ProjectView, name: str) -> list[str]:
    """Python packages pyrlab itself needs in this image (beside the user's lists): the
    single-user server a JupyterHub starts ([base] jupyterhub), in the first image of the
    chain that has a lab port. Its descendants inherit /opt/venv, so one install serves
    them all; pinned to the series the exported hub configuration targets."""
    config = project.config
    if not config.base.jupyterhub or config.images[name].lab_port is None:
        return []
    parent = config.images[name].parent
    while parent is not None:
        if config.images[parent].lab_port is not None:
            return []
        parent = config.images[parent].parent
    return [f"jupyterhub=={JUPYTERHUB_SERIES}.*"]


def runtime_pip_conf(proxy: ProxyView) -> bytes | None:
    """/etc/pip.conf for `pip install` in a lab: the build's indexes, where the lab can use
    them. Never one with credentials (they stay at build time) and never one on the build
    host's loopback (a lab on the engine's bridge network cannot reach it); without
    pip_index, none (PyPI, or what the user's ~/.config/pip/pip.conf says)."""
    if not proxy.pip_index or has_credentials(proxy.pip_index) or is_loopback_url(proxy.pip_index):
        return None
    extra = [u for u in proxy.pip_extra_index if not has_credentials(u) and not is_loopback_url(u)]
    pip = ["# pyrlab: the build's package index ([proxy] in pyrlab.toml), for pip in the lab",
           "[global]", f"index-url = {proxy.pip_index}"]
    if extra:
        pip.append("extra-index-url = " + " ".join(extra))
    insecure = sorted({urlsplit(u).hostname or "" for u in (proxy.pip_index, *extra)
                       if u.startswith("http:")})
    if insecure:
        pip.append("trusted-host = " + " ".join(insecure))
    return lines(pip)


def _runtime_files(project: ProjectView) -> tuple[RuntimeFile, ...]:
    pip_conf = runtime_pip_conf(project.config.proxy)
    if pip_conf is None:
        return ()
    return (RuntimeFile("pip.conf", pip_conf, "/etc/pip.conf", "# The build's package index "
                        "for `pip install` in the lab (it has no credentials)."),)


def _needs(project: ProjectView, name: str) -> Needs:
    return Needs(build_tools=SLIM_TOOLS if project.config.base.slim else ())


def _part(project: ProjectView, name: str, needs: Needs, delta: DeltaView | None) -> Part:
    """requirements.txt: the lists' lines as written; system.txt: pyrlab's own (see
    `system_requirements`); lab-overrides.json: LAB_OVERRIDES; `slim` with [base] slim
    (see uv-install); in a delta, added.txt: the lines it adds."""
    lists = project.lists[name]
    system = system_requirements(project, name)
    if not (lists.requirements or system):
        return Part(render=False)
    files = {"requirements.txt": lines(e.text for e in lists.requirement_lines)}
    if system:
        files["system.txt"] = lines(system)
    files["lab-overrides.json"] = (json.dumps(LAB_OVERRIDES, indent=2, sort_keys=True)
                                   + "\n").encode()
    step = ECOSYSTEM.step
    if delta is not None and step in delta.steps:
        # uv-install then compiles only the files that have no bytecode yet.
        files["delta"] = b"install what the image lacks; compile only that\n"
        files["added.txt"] = lines(delta.added.get(step, ()))
    if project.config.base.slim:
        files["slim"] = b"no test suites of packages; shared libraries stripped\n"
    # None in prefer.txt; the build puts pyrlab.lock's in.
    return Part(render=True, files=files, pins={"prefer.txt": b""})


def _net_files(project: ProjectView, proxy: ProxyView) -> dict[str, bytes]:
    """uv.toml (uv's index settings, when [proxy] has any) and pip.conf."""
    uv = ["[pip]"]
    pip = ["[global]", f"timeout = {proxy.timeout}", f"retries = {proxy.retries}"]
    if proxy.pip_index:
        uv.append(f"index-url = {json.dumps(proxy.pip_index)}")
        pip.append(f"index-url = {proxy.pip_index}")
    if proxy.pip_extra_index:
        uv.append(f"extra-index-url = {json.dumps(list(proxy.pip_extra_index))}")
        pip.append("extra-index-url = " + " ".join(proxy.pip_extra_index))
    insecure = sorted({urlsplit(u).hostname or "" for u in
                       (proxy.pip_index, *proxy.pip_extra_index) if u and u.startswith("http:")})
    if insecure:
        pip.append("trusted-host = " + " ".join(insecure))
    files = {"uv.toml": lines(uv)} if len(uv) > 1 else {}
    files["pip.conf"] = lines(pip)
    return files


CONTEXT = Context(
    script="uv-install",
    part=_part,
    comment=lambda root: ("# Python packages, installed with uv (a build tool, not kept) into "
                          "/opt/venv and compiled\n# to bytecode."),
    scripts=lambda: {
        **{name: (container_file(name), EXECUTABLE) for name in ("uv-install", "uv-resolve")},
        **{name: (container_file(name), REGULAR)
           for name in ("lab_settings.py", "pyc_cache.py", "test_folders.py", "heldback.py")},
        "uv-version": (lines([UV_VERSION]), REGULAR),
    },
    caches=(Cache("uv", UV_CACHE),),
    secrets=("uv.toml", "pip.conf"),
    needs=_needs,
    net_files=_net_files,
    delta_lists=("requirements.txt", "system.txt"),
    env=("PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "UV_LINK_MODE=copy",
         "UV_PYTHON=/opt/venv/bin/python", f"UV_CACHE_DIR={UV_CACHE}"),
    runtime_files=_runtime_files,
)

# -- contents ---------------------------------------------------------------------------------
CONTENTS = Contents()

# -- outdated -----------------------------------------------------------------------------
QUERIES = Queries()

# -- pins -------------------------------------------------------------------------------------
PINS = Pins()

# -- checks -----------------------------------------------------------------------------------
CHECKS = Checks()

# -- the whole --------------------------------------------------------------------------------
ECOSYSTEM = Ecosystem(
    name="python",
    title="Python packages",
    order=30,
    step="python",
    list_key="requirements",
    lock_key="python",
    manifest_key="python_dists",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
