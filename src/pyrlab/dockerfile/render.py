"""Render one image's build context: a pure function of the project and the image name.

The context is a Dockerfile plus a `pyrlab/` folder:

    pyrlab/bin/      build-time installer scripts (bind-mounted, not left in the image)
    pyrlab/base/     locale (what localedef makes, empty for C.UTF-8), sudoers (run.sudo)
    pyrlab/apt/      system.txt (pyrlab's own packages), debs.txt (the user's), sources/
    pyrlab/python/   requirements.txt, system.txt (pyrlab's own: jupyterhub, see
                     `system_requirements`), lab-overrides.json (JupyterLab setting
                     defaults); `slim` when [base] slim (see uv-install)
    pyrlab/tools/    system.txt: the build-only tools stage's Debian packages (binutils)
    pyrlab/r/        cran.txt, apt.txt, repos.txt (the build's), site-repos.txt (the lab's)
    pyrlab/net/      apt/, python/, r/: proxies, indexes, timeouts per installer (build only;
                     URLs with credentials masked: the real files are `build_secrets`)
    pyrlab/ca/       extra CA certificates
    pyrlab/runtime/  start script, health check, Jupyter server config, run-time installs'
                     layer (user_env.py), pip.conf for the lab, service defaults
                     (TensorBoard, D-Tale) (root image only)
    pyrlab/inventory/  the collector and meta.json, the facts it records with what it finds
    pyrlab/pins/     what pyrlab.lock says the image holds, per installer step:
                     python/ (prefer.txt, exact.txt or fresh.txt), apt/ and r/ (debs.txt,
                     cran.txt: `build --locked` only); outside the input hash, see
                     imagebuild/pins.py `with_pins`

The last installer step of every image runs the collector, which writes what the image
holds to MANIFEST_PATH (read by `pyrlab build` for pyrlab.lock, and by inspect/lock/diff/
sbom) without starting it.

Every RUN line is constant text; what differs between images is only which files sit in
these folders, and which build secrets (credentials, see `build_secrets`) a build passes.
Each step mounts only the folders it reads, so editing requirements.txt does not
invalidate the apt step's cache.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass
from importlib import resources
from typing import Protocol
from urllib.parse import urlsplit

import jinja2

from pyrlab import __version__
from pyrlab.config.lists import Entry
from pyrlab.config.model import ProxyConfig
from pyrlab.config.project import Project
from pyrlab.credentials import has_credentials, mask_url
from pyrlab.keys import CRAN_DEBIAN, load_key

HASH_PLACEHOLDER = "pyrlab-input-hash-placeholder"
META_FILE = "pyrlab/inventory/meta.json"
# Files that name the input hash: rendered with the placeholder, which feeds the hash, then
# given the hash itself (a file cannot feed its own hash).
HASHED_FILES = ("Dockerfile", META_FILE)
MANIFEST_PATH = "/opt/pyrlab/manifest.json"
# The install steps' versions from pyrlab.lock. They do not feed the input hash: the lock is
# written from the images a build made, so hashing it would make the next plain build of
# unchanged lists look changed (and the image already holds what the lock says). One
# subfolder per step, so that new Python pins do not invalidate the cached apt step.
PINS_FOLDER = "pyrlab/pins"
TOOLS_STAGE = "pyrlab-tools"
TOOLS_DEBS = ("binutils",)  # strip, for [base] slim
BUILD_SCRIPTS = ("apt-install", "setup-base", "uv-install", "lab_settings.py", "pyc_cache.py",
                 "test_folders.py", "heldback.py", "uv-resolve", "r-install", "r-install.R",
                 "net-env")
# Build secrets: the files of net/ (and r/repos.txt) whose URLs carry credentials, as they
# really are, plus proxy.env (HTTP(S)_PROXY, NO_PROXY). Each is mounted, when the build has
# it, at SECRET_DIR/NAME in the steps that read it; the context holds them masked (see
# net-env, which the installer scripts read them through).
SECRET_DIR = "/run/pyrlab/secret"
STEP_SECRETS = {
    "apt": ("apt-proxy.conf", "proxy.env"),
    "tools": ("apt-proxy.conf", "proxy.env"),
    "python": ("uv.toml", "pip.conf", "proxy.env"),
    "r": ("apt-proxy.conf", "repos.txt", "proxy.env"),
}
_SECRET_NAMES = frozenset(n for names in STEP_SECRETS.values() for n in names)
# tensorboard.py becomes /opt/pyrlab/bin/tensorboard; dtale.ini D-Tale's default config.
RUNTIME_FILES = ("start.sh", "healthcheck.py", "jupyter_server_config.py", "user_env.py",
                 "tensorboard.py", "dtale.ini")
RUNTIME_EXECUTABLES = ("start.sh", "tensorboard.py")
UV_VERSION = "0.13.9"  # the uv that goes into images; bumped by pyrlab releases
# The JupyterHub series of `jupyterhub-singleuser` in runnable images ([base] jupyterhub)
# and of the hub `pyrlab export jupyterhub` writes a configuration for (Zero to JupyterHub
# 4.x runs JupyterHub 5): single-user server and hub of one major.minor.
JUPYTERHUB_SERIES = "5.4"
EXECUTABLE = 0o755
REGULAR = 0o644


@dataclass(frozen=True)
class RenderOptions:
    """Engine-dependent rendering choices."""

    cache_sharing_locked: bool = True  # Podman's buildah hangs on a second locked mount
    # Podman's buildah (1.28) keeps a RUN layer cached when only its bind-mounted files
    # changed; naming a digest of those files in the RUN line makes the cache see them.
    run_input_keys: bool = False
    # Build-only tools from a stage of their own, bind-mounted into the step that uses them
    # (RUN --mount=type=bind,from=STAGE); without it, `slim` leaves debug symbols in place.
    tools_stage: bool = True

    @classmethod
    def for_builder(cls, builder: Builder) -> RenderOptions:
        """The options an engine (or its class) builds with, from what its builder does."""
        return cls(cache_sharing_locked=builder.locked_cache_sharing,
                   run_input_keys=not builder.cache_sees_bind_mounts)


class Builder(Protocol):
    """What rendering needs to know of an engine (see engines.base.Engine)."""

    @property
    def locked_cache_sharing(self) -> bool: ...

    @property
    def cache_sees_bind_mounts(self) -> bool: ...


# The inventory step's command (its own RUN, or the end of a delta's last step).
INVENTORY_COMMAND = ("/opt/venv/bin/python -I /run/pyrlab/inventory/inventory.py "
                     "/opt/pyrlab/manifest.json \\\n"
                     '        /run/pyrlab/inventory/meta.json "$PYRLAB_BASE_ID"')


@dataclass(frozen=True)
class Delta:
    """A build that adds a layer to the image's own current version instead of starting
    from its parent: only `steps` ("apt", "python", "r") run again, and each installs just
    what the previous version lacks."""

    steps: tuple[str, ...]
    depth: int  # delta layers the new image carries on its last full build
    input_hash: str  # the full context's: what the new image counts as up to date for
    # The Python lines added since the previous version: uv-install resolves just these
    # first, so that the whole list is then already satisfied (no resolution, no index).
    python_added: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildContext:
    image: str
    files: dict[str, tuple[bytes, int]]  # relative path → (content, mode), sorted keys
    input_hash: str

    @property
    def dockerfile(self) -> str:
        return self.files["Dockerfile"][0].decode()


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled template kept between runs (compiling it costs a no-op build a fifth
    of a second), keyed by the template's source and Jinja's and Python's versions. A cache
    that cannot be read or written is no cache: never an error."""

    def __init__(self) -> None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        super().__init__(os.path.join(base, "pyrlab", "templates"))

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


@functools.cache
def _environment() -> jinja2.Environment:
    """One Jinja environment a process: it keeps the compiled template (a graph renders it
    once per image and once more per ancestor), and the compiled code between runs."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pyrlab.dockerfile", "templates"),
        bytecode_cache=_TemplateCache(),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _container_file(name: str) -> bytes:
    return resources.files("pyrlab.container").joinpath(name).read_bytes()


def _lines(entries: list[str] | tuple[str, ...]) -> bytes:
    return "".join(f"{e}\n" for e in entries).encode()


def secret_id(name: str) -> str:
    """The build secret's id for the file `name` of STEP_SECRETS."""
    return f"pyrlab-{name}"


def _mounts(options: RenderOptions) -> dict[str, str]:
    lock = ",sharing=locked" if options.cache_sharing_locked else ""

    def cache(name: str, target: str, locked: bool = False) -> str:
        return f"--mount=type=cache,id=pyrlab-{name},target={target}{lock if locked else ''}"

    def bind(folder: str, target: str | None = None) -> str:
        return (f"--mount=type=bind,source=pyrlab/{folder},"
                f"target=/run/pyrlab/{target or folder}")

    def secrets(step: str) -> list[str]:
        # Not required: a build without the secret runs with the context's (masked) file.
        return [f"--mount=type=secret,id={secret_id(n)},target={SECRET_DIR}/{n}"
                for n in STEP_SECRETS[step]]

    apt = [cache("apt-archives", "/var/cache/apt", True), cache("apt-lists", "/var/lib/apt/lists", True)]
    sep = " \\\n    "
    return {
        "apt": sep.join(apt + [bind("bin"), bind("net/apt", "net"), bind("apt"),
                               bind("pins/apt", "pins")] + secrets("apt")),
        "base": sep.join([bind("bin"), bind("base")]),
        "python": sep.join([cache("uv", "/var/cache/pyrlab/uv"), bind("bin"),
                            bind("net/python", "net"), bind("python"),
                            bind("pins/python", "pins")] + secrets("python")),
        "r": sep.join(apt + [cache("r", "/var/cache/pyrlab/r"), bind("bin"),
                             bind("net/r", "net"), bind("r"), bind("pins/r", "pins")]
                      + secrets("r")),
        "inventory": bind("inventory"),
        "tools": sep.join(apt + [bind("bin"), bind("net/apt", "net"), bind("tools", "apt")]
                          + secrets("tools")),
        "tools_bind": f"--mount=type=bind,from={TOOLS_STAGE},source=/,target=/run/pyrlab/tools",
    }


def _system_debs(project: Project, name: str) -> list[str]:
    """Debian packages pyrlab itself needs in this image (before the user's lists)."""
    config = project.config
    image = config.images[name]
    debs: list[str] = []
    if image.parent is None:
        debs += ["ca-certificates", "tini", "curl"]
        if config.base.python == "debian":
            debs += ["python3", "python3-venv"]
        if _locale_line(config.base.locale):
            debs += ["locales"]
        if config.run.sudo:
            debs += ["sudo"]
        if config.base.cuda and config.base.cuda_toolkit:
            debs += ["nvidia-cuda-toolkit"]
    if image.r is not None:
        debs += ["r-base-core", "r-base-dev"]
    return debs


def system_requirements(project: Project, name: str) -> list[str]:
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


def _locale_line(locale: str) -> str:
    """What setup-base gives localedef for [base] locale: "SOURCE CHARMAP NAME", NAME as
    `locale -a` lists it (glibc's spelling of the codeset); "" for C.UTF-8, which glibc has
    built in. The schema allows only LANG_TERRITORY.UTF-8 (or .utf8)."""
    source, _, _ = locale.partition(".")
    return "" if source == "C" else f"{source} UTF-8 {source}.utf8"


# run.sudo = true: a lab runs as the host user's UID, which differs between machines, so the
# rule names no user; the start script gives that UID a passwd entry, which sudo needs.
SUDOERS = """\
# pyrlab: run.sudo = true in pyrlab.toml. The lab's user (any UID) may use sudo, no password.
ALL ALL=(ALL:ALL) NOPASSWD: ALL
"""

# JupyterLab setting defaults for every environment with JupyterLab, merged into its
# share/jupyter/lab/settings/overrides.json by lab_settings.py (after the packages, one of
# which may ship that file). fetchNews is a string in the schema: "true", "false", "none".
LAB_OVERRIDES = {
    # No "Would you like to receive official Jupyter news?" prompt on a fresh lab, and no
    # request to jupyter.org behind the user's back.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
}


def _net_files(project: Project, *, reveal: bool = False) -> dict[str, bytes]:
    """Build-time network settings, one folder per kind of installer so that a change for
    one (a new pip index) does not invalidate the cached steps of another (apt):

        net/apt/     apt-proxy.conf, https-via-proxy, timeout, retries
        net/python/  uv.toml, pip.conf, timeout, retries
        net/r/       what apt needs (r-cran-* binaries), timeout, retries

    Each step mounts its own folder at /run/pyrlab/net. URLs are masked (the context, the
    input hash) unless `reveal` (the build secrets)."""
    proxy = _shown_proxy(project, reveal)
    patience = {"timeout": _lines([str(proxy.timeout)]), "retries": _lines([str(proxy.retries)])}
    apt: dict[str, bytes] = dict(patience)
    if proxy.apt:
        # apt.conf string syntax has no escapes; the URL was validated to hold no quotes.
        apt["apt-proxy.conf"] = (
            f'Acquire::http::Proxy "{proxy.apt}";\n'
            + ("" if proxy.apt_https else f'Acquire::https::Proxy "{proxy.apt}";\n')
        ).encode()
        if proxy.apt_https:
            apt["https-via-proxy"] = b"rewrite https:// sources as http://HTTPS/// for the proxy\n"
    if project.config.base.snapshot:
        apt["snapshot.sources"] = snapshot_sources(project.config.base.snapshot)
    python: dict[str, bytes] = dict(patience)
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
    if len(uv) > 1:
        python["uv.toml"] = _lines(uv)
    python["pip.conf"] = _lines(pip)
    files = {f"apt/{k}": v for k, v in apt.items()}
    files.update({f"python/{k}": v for k, v in python.items()})
    files.update({f"r/{k}": v for k, v in apt.items()})
    return files


SNAPSHOT_ARCHIVE = "http://snapshot.debian.org/archive"


def snapshot_mirror(snapshot: str, archive: str = "debian") -> str:
    """snapshot.debian.org's URL of `archive` (debian, debian-security) as it was then."""
    return f"{SNAPSHOT_ARCHIVE}/{archive}/{snapshot}"


def snapshot_sources(snapshot: str) -> bytes:
    """[base] snapshot's apt sources (deb822): Debian's main, updates and security suites
    as snapshot.debian.org kept them then. apt-install puts them in place of the image's
    Debian sources (@VERSION_CODENAME@ = the image's release). Their Release files have
    long expired: apt must not check that."""
    stanza = ("Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main\n"
              "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
              "Check-Valid-Until: no\n")
    return (f"# pyrlab.toml [base] snapshot = \"{snapshot}\": Debian as snapshot.debian.org "
            "kept it then.\n"
            + stanza.format(uri=snapshot_mirror(snapshot),
                            suites="@VERSION_CODENAME@ @VERSION_CODENAME@-updates")
            + "\n"
            + stanza.format(uri=snapshot_mirror(snapshot, "debian-security"),
                            suites="@VERSION_CODENAME@-security")).encode()


def _shown_proxy(project: Project, reveal: bool) -> ProxyConfig:
    proxy = project.config.proxy
    if reveal:
        return proxy

    def shown(url: str | None) -> str | None:
        return mask_url(url) if url else url

    return dataclasses.replace(
        proxy, apt=shown(proxy.apt), pip_index=shown(proxy.pip_index),
        pip_extra_index=tuple(mask_url(u) for u in proxy.pip_extra_index),
        cran=shown(proxy.cran), http_proxy=shown(proxy.http_proxy),
        https_proxy=shown(proxy.https_proxy))


def proxy_env(proxy: ProxyConfig) -> dict[str, str]:
    """HTTP(S)_PROXY / NO_PROXY for the installers, in both spellings tools look for."""
    env = {}
    for key, value in (("HTTP_PROXY", proxy.http_proxy), ("HTTPS_PROXY", proxy.https_proxy),
                       ("NO_PROXY", proxy.no_proxy)):
        if value:
            env[key] = value
            env[key.lower()] = value
    return env


def build_secrets(project: Project) -> dict[str, bytes]:
    """The files of STEP_SECRETS a build of this project passes as build secrets (name →
    content): those whose real content differs from the context's masked one, and
    proxy.env. The same for every image of the project; nothing of them is in the context,
    the input hash or the Dockerfile."""
    secrets: dict[str, bytes] = {}
    masked, real = _net_files(project), _net_files(project, reveal=True)
    for path, content in real.items():
        name = path.split("/", 1)[1]
        if content != masked[path]:
            assert name in _SECRET_NAMES, f"{path} has credentials but is no build secret"
            secrets[name] = content
    if project.config.proxy.cran and has_credentials(project.config.proxy.cran):
        secrets["repos.txt"] = _lines([project.config.proxy.cran])
    env = proxy_env(project.config.proxy)
    if env:
        secrets["proxy.env"] = _lines([f"{k}={v}" for k, v in sorted(env.items())])
    return secrets


def is_loopback_url(url: str) -> bool:
    """Whether a URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def runtime_pip_conf(project: Project) -> bytes | None:
    """/etc/pip.conf for `pip install` in a lab: the build's indexes, where the lab can use
    them. Never one with credentials (they stay at build time) and never one on the build
    host's loopback (a lab on the engine's bridge network cannot reach it); without
    pip_index, none (PyPI, or what the user's ~/.config/pip/pip.conf says)."""
    proxy = project.config.proxy
    if not proxy.pip_index or has_credentials(proxy.pip_index) or is_loopback_url(proxy.pip_index):
        return None
    extra = [u for u in proxy.pip_extra_index if not has_credentials(u) and not is_loopback_url(u)]
    lines = ["# pyrlab: the build's package index ([proxy] in pyrlab.toml), for pip in the lab",
             "[global]", f"index-url = {proxy.pip_index}"]
    if extra:
        lines.append("extra-index-url = " + " ".join(extra))
    insecure = sorted({urlsplit(u).hostname or "" for u in (proxy.pip_index, *extra)
                       if u.startswith("http:")})
    if insecure:
        lines.append("trusted-host = " + " ".join(insecure))
    return _lines(lines)


def pinned_r_packages(project: Project, name: str) -> list[str]:
    """R packages pinned with `==` in the image or an ancestor: installed at exactly that
    version (from the repository's Archive when it is not the current one)."""
    return sorted({e.name for image in project.order([name])
                   for e in project.lists[image].r_packages
                   if e.version is not None and e.text.endswith(f"=={e.version}")})


def _meta_file(project: Project, name: str) -> bytes:
    """What the collector records besides what it finds (it adds the base image's ID)."""
    meta = {"image": name, "input_hash": HASH_PLACEHOLDER, "pyrlab_version": __version__,
            "pinned_r": pinned_r_packages(project, name)}
    return (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()


def _r_files(project: Project, name: str, entries: tuple[Entry, ...]) -> dict[str, bytes]:
    image = project.config.images[name]
    apt, cran = [], []
    for entry in entries:
        # A version (==, >=) can only be honoured by the CRAN-like repository.
        source = entry.source or ("cran" if entry.version else image.r_source)
        if source == "apt":
            apt.append(f"r-cran-{entry.name.lower()}")
        else:
            cran.append(entry.text)
    files = {"apt.txt": _lines(apt), "cran.txt": _lines(cran)}
    repository = project.config.proxy.cran
    if repository:
        # With credentials: masked here, the real one is a build secret (build_secrets).
        files["repos.txt"] = _lines([mask_url(repository)])
        # R's repository in the image (Rprofile.site), for install.packages() in the lab:
        # the build's, unless it has credentials (then R's default, cloud.r-project.org).
        if not has_credentials(repository):
            files["site-repos.txt"] = _lines([repository])
    return files


# CRAN's Debian repository for r = "cran"; apt-install fills in the image's release.
CRAN_DEBIAN_SOURCES = """\
# CRAN's Debian repository (the newest R), for r = "cran" in pyrlab.toml.
Types: deb
URIs: https://cloud.r-project.org/bin/linux/debian
Suites: @VERSION_CODENAME@-cran40/
Signed-By: /etc/apt/keyrings/pyrlab-cran-debian.asc
"""


def _r_apt_sources(project: Project, name: str) -> dict[str, bytes]:
    """The apt repository R comes from, when it is not Debian's own."""
    if project.config.images[name].r != "cran":
        return {}
    files = {"pyrlab-cran-debian.sources": CRAN_DEBIAN_SOURCES.encode()}
    key = load_key(CRAN_DEBIAN, f"pyrlab.toml: images.{name}.r")
    if key is None:
        # Never fetched from a key server: apt-install stops the build with this message.
        message = (f'images.{name}.r = "cran" needs the signing key of CRAN\'s Debian repository '
                   f"({CRAN_DEBIAN.owner}, fingerprint {CRAN_DEBIAN.fingerprint}), which this "
                   f"pyrlab installation lacks (pyrlab/keys/{CRAN_DEBIAN.file}); use "
                   'r = "debian" or add the key, ASCII-armoured, to the package')
        files["pyrlab-cran-debian.missing-key"] = _lines([message])
    else:
        files["pyrlab-cran-debian.asc"] = key
    return files


# The context folders each installer step bind-mounts (see `_mounts`).
_STEP_FOLDERS = {
    "tools": ("bin", "net/apt", "tools"),
    "apt": ("bin", "net/apt", "apt"),
    "base": ("bin", "base"),
    "python": ("bin", "net/python", "python"),
    "r": ("bin", "net/r", "r"),
}


def _run_keys(files: dict[str, tuple[bytes, int]], options: RenderOptions) -> dict[str, str]:
    """Per installer step: "" or, with run_input_keys, " # inputs <digest of its files>"."""
    keys = {}
    # The inventory step reads meta.json, which names the input hash: its key is that hash.
    keys["inventory"] = f" # inputs {HASH_PLACEHOLDER}" if options.run_input_keys else ""
    for step, folders in _STEP_FOLDERS.items():
        if not options.run_input_keys:
            keys[step] = ""
            continue
        digest = hashlib.sha256()
        for path in sorted(files):
            if any(path.startswith(f"pyrlab/{folder}/") for folder in folders):
                content, mode = files[path]
                digest.update(f"{path}\0{mode:o}\0{len(content)}\0".encode())
                digest.update(content)
        keys[step] = f" # inputs {digest.hexdigest()[:16]}"
    return keys


def render_context(project: Project, name: str, options: RenderOptions | None = None,
                   delta: Delta | None = None) -> BuildContext:
    """The build context of one image. With `delta`, the Dockerfile starts from the image's
    own `latest` and runs only the delta's steps; its input hash is the full context's, so
    that the result counts as up to date."""
    options = options or RenderOptions()
    config = project.config
    image = config.images[name]
    lists = project.lists[name]
    is_root = image.parent is None
    files: dict[str, tuple[bytes, int]] = {}

    def add(path: str, content: bytes, mode: int = REGULAR) -> None:
        files[path] = (content, mode)

    for script in BUILD_SCRIPTS:
        mode = REGULAR if script.endswith((".R", ".py")) else EXECUTABLE
        add(f"pyrlab/bin/{script}", _container_file(script), mode)
    add("pyrlab/bin/uv-version", _lines([UV_VERSION]))
    system_debs = _system_debs(project, name)
    has_apt = bool(system_debs or lists.debs)
    if has_apt:
        add("pyrlab/apt/system.txt", _lines(system_debs))
        add("pyrlab/apt/debs.txt", _lines([e.text for e in lists.debs]))
        add(f"{PINS_FOLDER}/apt/debs.txt", b"")  # none; `build --locked` puts the lock's in
        for fname, content in _r_apt_sources(project, name).items():
            add(f"pyrlab/apt/sources/{fname}", content)
    system_python = system_requirements(project, name)
    has_python = bool(lists.requirements or system_python)
    if has_python:
        add("pyrlab/python/requirements.txt",
            _lines([e.text for e in lists.requirement_lines]))
        if system_python:
            add("pyrlab/python/system.txt", _lines(system_python))
        add("pyrlab/python/lab-overrides.json",
            (json.dumps(LAB_OVERRIDES, indent=2, sort_keys=True) + "\n").encode())
        add(f"{PINS_FOLDER}/python/prefer.txt", b"")  # none; the build puts pyrlab.lock's in
        if delta is not None and "python" in delta.steps:
            # uv-install then compiles only the files that have no bytecode yet.
            add("pyrlab/python/delta", b"install what the image lacks; compile only that\n")
            add("pyrlab/python/added.txt", _lines(list(delta.python_added)))
        if config.base.slim:
            add("pyrlab/python/slim", b"no test suites of packages; shared libraries stripped\n")
    slim_tools = (config.base.slim and options.tools_stage and has_python
                  and (delta is None or "python" in delta.steps))
    if slim_tools:
        add("pyrlab/tools/system.txt", _lines(list(TOOLS_DEBS)))
    # The R step: in the image that installs R (site configuration, start-up check) and in
    # every image that installs R packages.
    has_r = bool(lists.r_packages) or image.r is not None
    if has_r:
        for fname, content in _r_files(project, name, lists.r_packages).items():
            add(f"pyrlab/r/{fname}", content)
        add(f"{PINS_FOLDER}/r/debs.txt", b"")
        add(f"{PINS_FOLDER}/r/cran.txt", b"")
    if is_root:
        locale_line = _locale_line(config.base.locale)
        add("pyrlab/base/locale", _lines([locale_line] if locale_line else []))
        if config.run.sudo:
            add("pyrlab/base/sudoers", SUDOERS.encode())
    net = _net_files(project)
    for fname, content in net.items():
        add(f"pyrlab/net/{fname}", content)
    add("pyrlab/inventory/inventory.py", _container_file("inventory.py"))
    add(META_FILE, _meta_file(project, name))
    if is_root:
        for ca in project.ca_files:
            add(f"pyrlab/ca/{ca.name}", ca.content)
        for runtime in RUNTIME_FILES:
            mode = EXECUTABLE if runtime in RUNTIME_EXECUTABLES else REGULAR
            add(f"pyrlab/runtime/{runtime}", _container_file(runtime), mode)
        pip_conf = runtime_pip_conf(project)
        if pip_conf is not None:
            add("pyrlab/runtime/pip.conf", pip_conf)

    ports = sorted({port for _, port in image.ports})
    # A delta records its inventory at the end of its last step rather than in a step of
    # its own: one container start less on the way to a one-package layer.
    rendered = {"apt": has_apt, "python": has_python, "r": has_r}
    inventory_with = next((step for step in ("r", "python", "apt")
                           if delta is not None and step in delta.steps and rendered[step]), "")
    values = {
        "version": __version__,
        "name": name,
        "layer": config.layer_key(name),
        "parent": image.parent or "",
        "from_ref": (config.image_ref(name) if delta is not None
                     else config.image_ref(image.parent) if image.parent else config.base.image),
        "delta": delta.steps if delta is not None else (),
        "delta_depth": delta.depth if delta is not None else 0,
        "is_root": is_root,
        "locale": config.base.locale,
        "cuda": config.base.cuda,
        "ca_files": bool(project.ca_files),
        "has_apt": has_apt,
        "has_requirements": has_python,
        "has_r": has_r,
        "slim_tools": slim_tools,
        "tools_stage": TOOLS_STAGE,
        "tools_ref": config.base.image,
        "mounts": _mounts(options),
        "keys": _run_keys(files, options),
        "lab_port": image.lab_port or "",
        "ports": [str(p) for p in ports],
        "port_label": ",".join(f"{n}={p}" for n, p in image.ports),
        "input_hash": HASH_PLACEHOLDER,
        "runtime_pip_conf": "pyrlab/runtime/pip.conf" in files,
        "inventory_with": inventory_with,
        "inventory": INVENTORY_COMMAND,
    }
    template = _environment().get_template("Dockerfile.j2")
    draft = template.render(**values)
    if delta is not None:
        input_hash = delta.input_hash
    else:
        digest = hashlib.sha256()
        for path in sorted(files):
            if is_pins_file(path):
                continue
            content, mode = files[path]
            digest.update(f"{path}\0{mode:o}\0{len(content)}\0".encode())
            digest.update(content)
        digest.update(draft.encode())
        if image.parent is not None:
            # An image is built on its parent: when the parent's inputs change, so do its own.
            digest.update(render_context(project, image.parent, options).input_hash.encode())
        input_hash = digest.hexdigest()
    add("Dockerfile", draft.encode())
    for path in HASHED_FILES:
        content, mode = files[path]
        add(path, content.replace(HASH_PLACEHOLDER.encode(), input_hash.encode()), mode)
    return BuildContext(image=name, files=dict(sorted(files.items())), input_hash=input_hash)


def is_pins_file(path: str) -> bool:
    return path.startswith(f"{PINS_FOLDER}/")
