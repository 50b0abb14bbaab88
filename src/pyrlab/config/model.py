"""The configuration's model: the frozen dataclasses a pyrlab.toml is read into, its
defaults, and the keys each table takes (what did-you-mean and completion know).

Reading and checking a file is config/readers.py; overrides are config/overrides.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pyrlab.config.key import project_key
from pyrlab.config.tomlread import line_of, toml_key
from pyrlab.config.user import USER_SOURCE
from pyrlab.errors import Problem
from pyrlab.platforms import NATIVE, Platform, is_native, platform_ref, token

CONFIG_NAME = "pyrlab.toml"
# Where a lab's notebooks are by default (its home: default_home). A project may name these
# defaults (`pyrlab init` writes them) although they lie outside its folder (launch/safety.py).
DEFAULT_NOTEBOOKS = "~/notebooks"


@dataclass(frozen=True)
class BaseConfig:
    image: str  # the image every root of the graph starts FROM
    bootstrap: str | None  # Debian suite to debootstrap `image` from when it is missing
    mirror: str | None  # Debian mirror for bootstrap; None = the host's apt sources
    python: Literal["image", "debian"]
    # base.<KEY>: the list files every root image reads before its own, by list key (the
    # ecosystems whose Grammar has a base_list: Debian's base.debs).
    lists: Mapping[str, tuple[str, ...]]
    cuda: bool
    cuda_toolkit: bool
    ca_certificates: tuple[str, ...]
    locale: str
    # Leave out of Python environments what kernels never load: the test suites packages
    # ship and the debug symbols of their shared libraries.
    slim: bool = True
    # `jupyterhub-singleuser` in every runnable image (the `jupyterhub` package, see
    # pyrlab.ecosystems.python.JUPYTERHUB_SERIES), so that a JupyterHub can start it.
    jupyterhub: bool = True
    # snapshot.debian.org's state of Debian ("20250101T000000Z"): the mirror of the
    # bootstrap and the Debian sources of every apt step; None = the mirror as it is now.
    snapshot: str | None = None

    def list_files(self, list_key: str) -> tuple[str, ...]:
        """The files of base.<list_key>, a list every root image reads first (Debian's)."""
        return self.lists.get(list_key, ())

    @property
    def tag(self) -> str:
        """The base tag images are also tagged with (`python:3.14-trixie` → `3.14-trixie`)."""
        ref = self.image.split("@", 1)[0]
        last = ref.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"


DEFAULT_INDEX_TIMEOUT = 120
DEFAULT_INDEX_RETRIES = 3


@dataclass(frozen=True)
class ProxyConfig:
    apt: str | None
    apt_https: bool  # rewrite https:// sources as http://HTTPS/// (apt-cacher-ng style)
    pip_index: str | None
    pip_extra_index: tuple[str, ...]
    cran: str | None  # CRAN-like repository for install.packages
    http_proxy: str | None
    https_proxy: str | None
    no_proxy: str | None
    network_host: bool | None = None  # build with host networking; None: when a proxy is local
    # Seconds an installer waits for one answer from an index or proxy, and how often it
    # retries: a cold caching proxy (devpi) can take 20 s for a large project page, more
    # than pip's default 15 s.
    timeout: int = DEFAULT_INDEX_TIMEOUT
    retries: int = DEFAULT_INDEX_RETRIES

    def urls(self) -> list[str]:
        """Every URL of [proxy] (what pyrlab.credentials masks)."""
        urls = [self.apt, self.pip_index, *self.pip_extra_index, self.cran, self.http_proxy,
                self.https_proxy]
        return [u for u in urls if u]


@dataclass(frozen=True)
class ImageConfig:
    name: str
    parent: str | None  # another image of the graph; None = FROM [base].image
    # images.NAME.<KEY>: each registered ecosystem's list files, by its list key ("debs",
    # "requirements", "r_packages"), in install order.
    lists: Mapping[str, tuple[str, ...]]
    r: Literal["debian", "cran"] | None  # install R itself in this image
    r_source: Literal["cran", "apt"]  # where plain entries of r_packages come from
    ports: tuple[tuple[str, int], ...]  # (name, container port); "lab" is JupyterLab's
    run_args: tuple[str, ...]

    @property
    def lab_port(self) -> int | None:
        return dict(self.ports).get("lab")

    def value(self, key: str) -> object:
        """The value of images.NAME.<key>, the key as pyrlab.toml spells it (the attributes
        mirror the keys; `from` is `parent`): what the ecosystems read (base.ImageView)."""
        if key in self.lists:
            return self.lists[key]
        return getattr(self, "parent" if key == "from" else key)

    def list_files(self, list_key: str) -> tuple[str, ...]:
        """The files of images.NAME.<list_key>, an ecosystem's list."""
        return self.lists.get(list_key, ())


@dataclass(frozen=True)
class RunConfig:
    notebooks: str
    home: str
    rc: tuple[tuple[str, str], ...]  # image name → rc script (host path)
    userlab: str | None
    envfile: str
    bind: str
    uid: int
    gid: int
    docker_args: tuple[str, ...]
    sudo: bool
    allow_no_token: bool

    def rc_for(self, image: str) -> str | None:
        return dict(self.rc).get(image)


@dataclass(frozen=True)
class BuildConfig:
    # Registry images (REF) or image prefixes (REGISTRY/NAMESPACE/, one ref per image of the
    # graph) whose layer cache builds may reuse: a teammate's or CI's `pyrlab push`.
    cache_from: tuple[str, ...] = ()
    # The platforms a build is for ("linux/arm64", as platforms.parse writes them), in the
    # order given; () is the engine's own (orchestration.target_platforms decides).
    platforms: tuple[Platform, ...] = ()


class Mark(NamedTuple):
    """One accepted failure of [test.known_failures.*]: a top-level module or R package,
    the error it is expected to fail with (an exception type, or a text the error
    contains) and the platforms it is accepted on (`{ error = ..., platforms = [...] }`;
    () is every platform)."""

    name: str
    expected: str
    platforms: tuple[Platform, ...] = ()

    def holds_on(self, platform: Platform) -> bool:
        """Whether it is accepted on `platform` (a concrete one, as Engine.platform() and
        Inventory.platform say)."""
        return not self.platforms or platform in self.platforms


@dataclass(frozen=True)
class SelfTestConfig:
    # Failures the project accepts ([test.known_failures.python] / .r). The self-test
    # reports them as known failures and lets the image through.
    known_failures_python: tuple[Mark, ...] = ()
    known_failures_r: tuple[Mark, ...] = ()


@dataclass(frozen=True)
class Config:
    root: Path  # the lab project folder
    file: Path | None  # pyrlab.toml, or None when running on pure defaults
    engine: str
    prefix: str  # prepended to every image name in a registry ("registry/namespace/")
    base: BaseConfig
    proxy: ProxyConfig
    images: Mapping[str, ImageConfig]  # in file order
    run: RunConfig
    overrides: tuple[tuple[str, str], ...] = field(default=())  # (key, source) applied
    build: BuildConfig = field(default_factory=BuildConfig)
    test: SelfTestConfig = field(default_factory=SelfTestConfig)
    # Every dotted key (and table) the project file itself sets, and the user's own file
    # that was read, if any: where each value came from (`pyrlab config`, the refusals).
    file_keys: frozenset[str] = frozenset()
    user_file: Path | None = None
    # Harmless things the user should hear of (a stray PYRLAB_* variable), shown by the
    # commands as `pyrlab: warning: …`.
    warnings: tuple[Problem, ...] = ()
    # The line the project file writes each key on (tomlread.key_lines): see where().
    key_lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def source_of(self, key: str) -> str:
        """Where the value of dotted `key` came from: an override ("environment
        PYRLAB_RUN__BIND", "--set run.bind", "user file ~/…"), the project file or
        "default". An element (`base.debs[0]`) is its list's."""
        key = key.split("[", 1)[0]
        found = dict(self.overrides).get(key)
        if found:
            return found
        if key in self.file_keys:
            return self.file.name if self.file else CONFIG_NAME
        return "default"

    def where(self, key: str) -> str:
        """How a problem names dotted `key`: `pyrlab.toml:LINE: key` when the project file
        writes it (or the table it is in) and no override replaced it, else
        `pyrlab.toml: key`."""
        shown = self.file.name if self.file else CONFIG_NAME
        overridden = dict(self.overrides).get(key.split("[", 1)[0]) is not None
        line = None if overridden else line_of(self.key_lines, key)
        return f"{shown}:{line}: {key}" if line else f"{shown}: {key}"

    def from_user_file(self, key: str) -> bool:
        """Whether `key` was set by the user's own file (and no environment or --set
        replaced it): the user's grant, which a project cannot give itself."""
        return self.source_of(key).startswith(USER_SOURCE + " ")
    # The project's name (top-level `name`): its images are NAME/IMAGE on this machine, its
    # labs NAME__IMAGE-PORT. "" asks for the bare names of before (PREFIXIMAGE, shared home).
    name: str = ""
    name_from_folder: bool = False  # pyrlab.toml has no `name`: it is the folder's

    def image_ref(self, name: str, tag: str = "latest", platform: Platform = NATIVE,
                  host: Platform = NATIVE) -> str:
        """The image's local reference: PROJECT/IMAGE:TAG (PREFIXIMAGE:TAG with bare names)
        for the engine's own platform (NATIVE, or `host`: Engine.platform()); another
        platform's adds its token as a path component, PROJECT/IMAGE/arm64:TAG (see
        platforms.platform_ref), so that each platform keeps every tag of its own."""
        ref = f"{self.name}/{name}:{tag}" if self.name else f"{self.prefix}{name}:{tag}"
        return platform_ref(ref, platform, host)

    def registry_ref(self, name: str, tag: str = "latest") -> str:
        """The image's name in a registry: PREFIXIMAGE:TAG, whatever the project is called;
        without a prefix, the local reference (what a hub on this host would start)."""
        return f"{self.prefix}{name}:{tag}" if self.prefix else self.image_ref(name, tag)

    def layer_key(self, name: str, platform: Platform = NATIVE, host: Platform = NATIVE) -> str:
        """Where the image's run-time installs go under the lab's home
        (~/.local/share/pyrlab/KEY/): PROJECT/IMAGE, or IMAGE with bare names; another
        platform's lab gets KEY/arm64 (what a user pip-installs may hold compiled code)."""
        key = f"{self.name}/{name}" if self.name else name
        return key if is_native(platform, host) else f"{key}/{token(platform)}"

    @property
    def project_id(self) -> str:
        """What the org.pyrlab.project label of its images and labs holds: the name, so
        that a clone in another folder has the same images; with bare names, a hash of the
        folder, as before projects had names."""
        return self.name or project_key(self.root)

    def path(self, value: str) -> Path:
        """A path from the config: `~` expanded, relative to the project folder."""
        # os.path's expanduser leaves `~nosuchuser/x` as it is (pathlib's raises): it is
        # then a relative path that is not found, which the caller reports.
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.root / p


# --------------------------------------------------------------------------- defaults

DEFAULT_IMAGES: dict[str, dict[str, Any]] = {
    "pyrlab-base": {},
    "pylab": {
        "from": "pyrlab-base",
        "requirements": ["requirements.txt"],
        "ports": {"lab": 8888, "dtale": 40000, "tensorboard": 6006},
    },
    "rlab-base": {"from": "pyrlab-base", "debs": ["r_debs.txt"], "r": "debian"},
    "rlab": {
        "from": "rlab-base",
        "requirements": ["r_requirements.txt"],
        "r_packages": ["r_packages.txt"],
        "ports": {"lab": 9999},
    },
}


def name_from_folder(root: Path) -> str:
    """A project name from a folder's name: lower case, runs of other characters as one
    '-' ("My Lab 2" → "my-lab-2"); "lab" when nothing is left."""
    words = re.findall(r"[a-z0-9]+", root.name.lower())
    return "-".join(words) or "lab"


def default_home(name: str) -> str:
    """run.home's default: one folder per project under ~/docker (all share ~/docker with
    bare names)."""
    return f"~/docker/{name}" if name else "~/docker"


def default_uid_gid() -> tuple[int, int]:
    """The calling user's UID/GID; behind sudo the real user's; plain root → 1000."""
    sudo_uid, sudo_gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if sudo_uid and sudo_gid and sudo_uid.isdigit() and sudo_gid.isdigit() and sudo_uid != "0":
        return int(sudo_uid), int(sudo_gid)
    uid, gid = os.getuid(), os.getgid()
    return (1000, 1000) if uid == 0 else (uid, gid)


# The keys of each table that are pyrlab's own; each ecosystem adds the ones it owns
# (its Grammar.keys, and its list key to every image): see the *_keys() functions.
_CORE_BASE_KEYS = frozenset({"image", "bootstrap", "mirror", "cuda", "cuda_toolkit",
                             "ca_certificates", "locale", "slim", "jupyterhub"})
_CORE_PROXY_KEYS = frozenset({"http_proxy", "https_proxy", "no_proxy", "network_host",
                              "timeout", "retries"})
_CORE_IMAGE_KEYS = frozenset({"from", "ports", "run_args"})
RUN_KEYS = {"notebooks", "home", "rc", "userlab", "envfile", "bind", "uid", "gid",
            "docker_args", "sudo", "allow_no_token"}
BUILD_KEYS = {"cache_from", "platforms"}
TEST_KEYS = {"known_failures"}
TOP_KEYS = {"name", "engine", "prefix", "base", "proxy", "images", "run", "build", "test"}


def _owned(table: str) -> set[str]:
    """The keys of `table` ("base", "proxy", "images.*", "test.known_failures") that the
    registered ecosystems own."""
    from pyrlab import ecosystems  # loaded by the first question about keys, not at start

    prefix = table + "."
    keys = {key.removeprefix(prefix) for eco in ecosystems.registered()
            for key in eco.grammar.keys if key.startswith(prefix)}
    if table == "images.*":
        keys |= {eco.list_key for eco in ecosystems.registered()}
    if table == "base":
        keys |= {eco.list_key for eco in ecosystems.registered()
                 if eco.grammar.base_list is not None}
    return {key for key in keys if "." not in key}


def base_keys() -> set[str]:
    return _owned("base") | _CORE_BASE_KEYS


def proxy_keys() -> set[str]:
    return _owned("proxy") | _CORE_PROXY_KEYS


def image_keys() -> set[str]:
    """The keys of images.NAME."""
    return _owned("images.*") | _CORE_IMAGE_KEYS


def known_failures_keys() -> set[str]:
    """The tables of [test.known_failures]: one per ecosystem with self-test checks."""
    return _owned("test.known_failures")


def _tables() -> dict[str, set[str]]:
    """The tables of fixed keys (images.NAME's keys are image_keys())."""
    return {"base": base_keys(), "proxy": proxy_keys(), "run": RUN_KEYS, "build": BUILD_KEYS,
            "test": TEST_KEYS}


def config_keys(config: Config | None = None) -> list[str]:
    """Every dotted key a value can be given at (pyrlab.toml, `--set`, `PYRLAB_…`),
    sorted: the fixed ones and, for each image of `config` (of the default graph without
    one), its keys, its ports (`lab` always) and its `run.rc` entry. For completion and
    did-you-mean; a table (`images.NAME.ports`, `run.rc`) is a key too."""
    images: dict[str, tuple[str, ...]] = (
        {name: tuple(dict.fromkeys(["lab", *(p for p, _ in image.ports)]))
         for name, image in config.images.items()} if config is not None
        else {name: tuple(dict.fromkeys(["lab", *spec.get("ports", {})]))
              for name, spec in DEFAULT_IMAGES.items()})
    tables = _tables()
    keys = TOP_KEYS - tables.keys() - {"images"}
    for table, known in tables.items():
        keys |= {f"{table}.{k}" for k in known}
    keys |= {f"test.known_failures.{k}" for k in known_failures_keys()}
    per_image = image_keys()
    for name, ports in images.items():
        image = f"images.{toml_key(name)}"
        keys |= {f"{image}.{k}" for k in per_image}
        keys |= {f"{image}.ports.{p}" for p in ports}
        keys.add(f"run.rc.{toml_key(name)}")
    return sorted(keys)
