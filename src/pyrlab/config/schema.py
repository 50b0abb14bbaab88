"""pyrlab.toml → typed, frozen configuration.

Loading is: read TOML → fill in the default image graph → apply the machine settings of
the user's own file (config/user.py) → apply overrides (environment `PYRLAB_*`, then
`--set KEY=VALUE`) → validate everything, collecting every problem with
the file and key it belongs to. Values that end up in a Dockerfile line (image names,
image references, ports) are checked against strict grammars here; free text (URLs,
paths) only ever reaches the build through files in the build context.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pyrlab.config.guess import did_you_mean
from pyrlab.config.key import project_key
from pyrlab.config.tomlread import key_lines, line_of, toml_loads, toml_problem
from pyrlab.config.user import (
    USER_CONFIG_ENV,
    USER_SOURCE,
    read_user_file,
    user_config_path,
    user_source,
)
from pyrlab.credentials import mask_url
from pyrlab.errors import ConfigError, Problem

CONFIG_NAME = "pyrlab.toml"
ENV_PREFIX = "PYRLAB_"
# Environment variables that belong to pyrlab but are not config paths (docs/configuration.md
# lists them); any other one-word PYRLAB_NAME that is no top-level key is a warning.
ENV_NOT_CONFIG = frozenset({"PYRLAB_LOG_LEVEL", "PYRLAB_STATE_DIR", USER_CONFIG_ENV})
# The host setup script's own (.ci/setup-host.sh: PYRLAB_CI_MIRROR, PYRLAB_CI_SKIP_BUILDX…),
# which a user may export for the README's first command and still have set for pyrlab.
ENV_NOT_CONFIG_PREFIX = "PYRLAB_CI_"

# Grammars of values that stand in Dockerfile lines and command lines; they end in \Z, since
# `$` also matches before a final newline ("pylab\n" would pass and break the Dockerfile).
IMAGE_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?/)?"
    rf"{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[a-f0-9]{64})?\Z"
)
PREFIX_RE = re.compile(r"^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?/)?(?:" + _COMPONENT + r"/)*\Z")
SUITE_RE = re.compile(r"^[a-z][a-z0-9-]*\Z")
PORT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*\Z")
# An R package name, as lists.R_NAME_RE (not imported: commands that only read the config
# do not load the list parser).
R_PACKAGE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]\Z")
ENGINES = ("auto", "docker", "podman")
# Where a lab's notebooks are by default (its home: default_home). A project may name these
# defaults (`pyrlab init` writes them) although they lie outside its folder (launch/safety.py).
DEFAULT_NOTEBOOKS = "~/notebooks"


@dataclass(frozen=True)
class BaseConfig:
    image: str  # the image every root of the graph starts FROM
    bootstrap: str | None  # Debian suite to debootstrap `image` from when it is missing
    mirror: str | None  # Debian mirror for bootstrap; None = the host's apt sources
    python: Literal["image", "debian"]
    debs: tuple[str, ...]
    cuda: bool
    cuda_toolkit: bool
    ca_certificates: tuple[str, ...]
    locale: str
    # Leave out of Python environments what kernels never load: the test suites packages
    # ship and the debug symbols of their shared libraries.
    slim: bool = True
    # `jupyterhub-singleuser` in every runnable image (the `jupyterhub` package, see
    # pyrlab.dockerfile.render.JUPYTERHUB_SERIES), so that a JupyterHub can start it.
    jupyterhub: bool = True
    # snapshot.debian.org's state of Debian ("20250101T000000Z"): the mirror of the
    # bootstrap and the Debian sources of every apt step; None = the mirror as it is now.
    snapshot: str | None = None

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
    debs: tuple[str, ...]
    requirements: tuple[str, ...]
    r_packages: tuple[str, ...]
    r: Literal["debian", "cran"] | None  # install R itself in this image
    r_source: Literal["cran", "apt"]  # where plain entries of r_packages come from
    ports: tuple[tuple[str, int], ...]  # (name, container port); "lab" is JupyterLab's
    run_args: tuple[str, ...]

    @property
    def lab_port(self) -> int | None:
        return dict(self.ports).get("lab")


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


@dataclass(frozen=True)
class SelfTestConfig:
    # Failures the project accepts ([test.known_failures.python] / .r): top-level module
    # or R package → the expected error (an exception type, or a text the error contains).
    # The self-test reports them as known failures and lets the image through.
    known_failures_python: tuple[tuple[str, str], ...] = ()
    known_failures_r: tuple[tuple[str, str], ...] = ()


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

    def image_ref(self, name: str, tag: str = "latest") -> str:
        """The image's local reference: PROJECT/IMAGE:TAG (PREFIXIMAGE:TAG with bare names)."""
        return f"{self.name}/{name}:{tag}" if self.name else f"{self.prefix}{name}:{tag}"

    def registry_ref(self, name: str, tag: str = "latest") -> str:
        """The image's name in a registry: PREFIXIMAGE:TAG, whatever the project is called;
        without a prefix, the local reference (what a hub on this host would start)."""
        return f"{self.prefix}{name}:{tag}" if self.prefix else self.image_ref(name, tag)

    def layer_key(self, name: str) -> str:
        """Where the image's run-time installs go under the lab's home
        (~/.local/share/pyrlab/KEY/): PROJECT/IMAGE, or IMAGE with bare names."""
        return f"{self.name}/{name}" if self.name else name

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


# --------------------------------------------------------------------------- overrides


def parse_override_value(text: str) -> Any:
    """`8898` → 8898, `true` → True, `["a"]` → list; anything that is not one TOML value
    → the string. (`5\n[base]…` parses as `v = 5` and more: the string, not 5.)"""
    try:
        document = toml_loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return document["v"] if document.keys() == {"v"} else text


def _set_path(raw: dict[str, Any], path: list[str], value: Any) -> str | None:
    """Set raw[path] = value; keys match with '-' and '_' equivalent. Returns an error."""
    node: Any = raw
    for i, key in enumerate(path):
        if not isinstance(node, dict):
            return f"'{'.'.join(path[:i])}' is not a table"
        existing = next((k for k in node if k.replace("-", "_") == key.replace("-", "_")), key)
        if i == len(path) - 1:
            node[existing] = value
        else:
            node = node.setdefault(existing, {})
    return None


def env_name(key: str) -> str:
    """The environment variable that sets dotted `key` (run.bind → PYRLAB_RUN__BIND)."""
    return ENV_PREFIX + "__".join(part.upper().replace("-", "_") for part in key.split("."))


def env_overrides(environ: Mapping[str, str]) -> tuple[list[tuple[str, str, str]], list[Problem]]:
    """(dotted key, raw value, source) for every PYRLAB_* config variable, and a warning
    for each stray one.

    `PYRLAB_RUN__BIND` → run.bind; `__` separates levels, a single `_` inside a level
    also matches `-` (so `PYRLAB_IMAGES__RLAB_BASE__R` → images.rlab-base.r). A one-word
    name that is neither a top-level key nor one of pyrlab's other variables
    (`PYRLAB_LOGLEVEL`) is some other program's or a typo: a warning, and it is ignored,
    since it would otherwise stop every command. A name with `__` is meant as a key and
    stays one (an unknown key is then an error, as in the file).
    """
    found = []
    warnings = []
    for name in sorted(environ):
        if (not name.startswith(ENV_PREFIX) or name in ENV_NOT_CONFIG
                or name.startswith(ENV_NOT_CONFIG_PREFIX)):
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest and rest.lower().replace("-", "_") not in TOP_KEYS:
            guess = rest and did_you_mean(name, sorted(ENV_NOT_CONFIG | {env_name(k) for k in config_keys()}))
            warnings.append(Problem(f"environment {name}", "not a variable of pyrlab; ignored"
                                    + (f" (did you mean {guess}?)" if guess else "")))
            continue
        key = ".".join(part.lower() for part in rest.split("__"))
        found.append((key, environ[name], f"environment {name}"))
    return found, warnings


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
    keys = TOP_KEYS - _TABLES.keys() - {"images"}
    for table, known in _TABLES.items():
        keys |= {f"{table}.{k}" for k in known}
    keys |= {f"test.known_failures.{k}" for k in KNOWN_FAILURES_KEYS}
    for name, ports in images.items():
        image = f"images.{toml_key(name)}"
        keys |= {f"{image}.{k}" for k in IMAGE_KEYS}
        keys |= {f"{image}.ports.{p}" for p in ports}
        keys.add(f"run.rc.{toml_key(name)}")
    return sorted(keys)


# --------------------------------------------------------------------------- validation


class _Reader:
    """Walks one TOML table, converting values and collecting problems with their key."""

    def __init__(self, shown: str, problems: list[Problem], sources: Mapping[str, str],
                 lines: Mapping[tuple[str, ...], int]) -> None:
        self.shown = shown
        self.problems = problems
        self.sources = sources
        self.lines = lines  # where the file writes each key (tomlread.key_lines)

    def problem(self, key: str, message: str) -> None:
        """A problem at `key`: `FILE:LINE: key` where the file writes it (or the table
        it is in), `FILE: key` for a default, and naming the override that set it."""
        source = self.sources.get(key)
        suffix = f" (from {source})" if source else ""
        line = None if source else line_of(self.lines, key)
        where = f"{self.shown}:{line}: {key}" if line else f"{self.shown}: {key}"
        self.problems.append(Problem(where, message + suffix))

    def table(self, data: Any, key: str, known: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(key, f"expected a table, got {toml_kind(data)}")
            return {}
        for k in data:
            if k not in known:
                where = f"{key}.{toml_key(k)}" if key else toml_key(k)
                self.problem(where, f"unknown key{self._guess(key, k, known)} "
                             f"(known: {', '.join(sorted(known))})")
        return data

    def _guess(self, table: str, word: str, known: set[str]) -> str:
        """"; did you mean KEY?", KEY spelled as the unknown one was given: a dotted key,
        or a variable name when it came from the environment; "" without a close one."""
        guess = did_you_mean(word.replace("-", "_"), known)
        if guess is None:
            return ""
        key = f"{table}.{toml_key(guess)}" if table else guess
        where = f"{table}.{toml_key(word)}" if table else toml_key(word)
        if self.sources.get(where, "").startswith("environment "):
            return f"; did you mean {env_name(key)}?"
        return f"; did you mean {key}?"

    def get(
        self,
        data: dict[str, Any],
        key: str,
        prefix: str,
        default: Any,
        check: Callable[[Any], str | None],
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        error = check(value)
        if error:
            self.problem(f"{prefix}{key}", error)
            return default
        return value


def toml_key(part: str) -> str:
    """One part of a dotted key as TOML writes it: bare, or quoted (`images."a.b"`)."""
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part, ensure_ascii=False)


def toml_kind(value: Any) -> str:
    """What a TOML value is, in TOML's words ("an integer", "a table"), for messages."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), "a date or time")


def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else f"expected a string, got {toml_kind(v)}"


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"expected true or false, got {toml_kind(v)}"


def _is_run_path(v: Any) -> str | None:
    """A host path of [run]; "" means "not used"."""
    if not isinstance(v, str):
        return _is_str(v)
    return _is_path(v) if v.strip() else None


def _is_str_list(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return f"expected an array of strings, got {toml_kind(v)}"
    return None


def _is_path_list(v: Any) -> str | None:
    if isinstance(v, str):
        v = [v]
    error = _is_str_list(v)
    if error:
        return error
    for item in v:
        error = _is_path(item)
        if error:
            return error
    return None


def _is_path(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"expected a string, got {toml_kind(v)}"
    if not v.strip():
        return "empty file name"
    if "\0" in v:  # no system has such a file; Python refuses to try
        return f"a file name cannot hold a NUL character: {v!r}"
    return None


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v not in choices:
            shown = repr(v) if isinstance(v, str) else toml_kind(v)
            return f"expected one of {', '.join(repr(c) for c in choices)}, got {shown}"
        return None

    return check


def _is_url(*schemes: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"expected a URL string, got {toml_kind(v)}"
        try:
            parts = urlsplit(v)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return f"not a valid URL: {v!r}"
        if parts.scheme not in schemes or not parts.netloc:
            return f"expected a {'/'.join(schemes)} URL, got {mask_url(v)!r}"
        def bad(text: str) -> bool:
            return any(c.isspace() or c in "\"'\\`$<>{}|^" or not c.isprintable() for c in text)

        if bad(v):
            # Credentials are shown masked (see pyrlab.credentials), so say where it is.
            where = "" if bad(mask_url(v)) else " (in its credentials, shown as ***)"
            return f"URL contains a character that is not allowed{where}: {mask_url(v)!r}"
        return None

    return check


def _is_uid(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 2**31 - 1:
        return f"expected a numeric id, got {v!r}"
    return None


def _is_project_name(v: Any) -> str | None:
    if not isinstance(v, str) or not (v == "" or IMAGE_NAME_RE.match(v)):
        return ("expected a project name: lower-case letters, digits and . _ - such as "
                f"'my-lab' (or \"\" for bare image names), got {v!r}")
    return None


def _is_image_ref(v: Any) -> str | None:
    if not isinstance(v, str) or not IMAGE_REF_RE.match(v):
        return f"not a valid image reference: {v!r}"
    return None


def _is_int_in(low: int, high: int, unit: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            return f"expected a whole number of {unit} from {low} to {high}, got {v!r}"
        return None
    return check


def _is_port(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        return f"expected a port number 1-65535, got {v!r}"
    return None


def _is_bind(v: Any) -> str | None:
    if not isinstance(v, str) or not re.match(r"^(?:[0-9.]+|\[?[0-9a-fA-F:]+\]?|localhost)\Z", v):
        return f"expected an IP address to publish ports on, got {v!r}"
    return None


def _as_tuple(v: Any) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


BASE_KEYS = {"image", "bootstrap", "mirror", "python", "debs", "cuda", "cuda_toolkit",
             "ca_certificates", "locale", "slim", "jupyterhub", "snapshot"}
PROXY_KEYS = {"apt", "apt_https", "pip_index", "pip_extra_index", "cran", "http_proxy",
              "https_proxy", "no_proxy", "network_host", "timeout", "retries"}
IMAGE_KEYS = {"from", "debs", "requirements", "r_packages", "r", "r_source", "ports", "run_args"}
RUN_KEYS = {"notebooks", "home", "rc", "userlab", "envfile", "bind", "uid", "gid",
            "docker_args", "sudo", "allow_no_token"}
BUILD_KEYS = {"cache_from"}
TEST_KEYS = {"known_failures"}
KNOWN_FAILURES_KEYS = {"python", "r"}
TOP_KEYS = {"name", "engine", "prefix", "base", "proxy", "images", "run", "build", "test"}
# The tables of fixed keys (images.NAME's keys are IMAGE_KEYS).
_TABLES = {"base": BASE_KEYS, "proxy": PROXY_KEYS, "run": RUN_KEYS, "build": BUILD_KEYS,
           "test": TEST_KEYS}


def _read_base(r: _Reader, raw: Any) -> BaseConfig:
    d = r.table(raw, "base", BASE_KEYS)
    p = "base."
    suite = r.get(d, "bootstrap", p, None, lambda v: None if isinstance(v, str) and SUITE_RE.match(v)
                  else f"expected a Debian suite name such as 'trixie', got {v!r}")
    default_image = f"pyrlab-debian:{suite}" if suite else "python:3.14-trixie"
    if d.get("snapshot") is not None and d.get("mirror") is not None:
        r.problem("base.snapshot", "set together with base.mirror: the snapshot is the mirror "
                  "(snapshot.debian.org); remove one of them")
    return BaseConfig(
        image=r.get(d, "image", p, default_image, _is_image_ref),
        bootstrap=suite,
        mirror=r.get(d, "mirror", p, None, _is_url("http", "https")),
        python=r.get(d, "python", p, "debian" if suite else "image", _one_of("image", "debian")),
        debs=_as_tuple(r.get(d, "debs", p, ["base_debs.txt"], _is_path_list)),
        cuda=r.get(d, "cuda", p, False, _is_bool),
        cuda_toolkit=r.get(d, "cuda_toolkit", p, False, _is_bool),
        ca_certificates=_as_tuple(r.get(d, "ca_certificates", p, [], _is_path_list)),
        locale=r.get(d, "locale", p, "C.UTF-8", lambda v: None if isinstance(v, str)
                     and re.match(r"^[A-Za-z]{1,3}(?:_[A-Z]{2})?\.(?:UTF-8|utf8)\Z", v)
                     else f"expected a UTF-8 locale such as 'en_US.UTF-8', got {v!r}"),
        slim=r.get(d, "slim", p, True, _is_bool),
        jupyterhub=r.get(d, "jupyterhub", p, True, _is_bool),
        snapshot=r.get(d, "snapshot", p, None, _is_snapshot),
    )


def _is_snapshot(v: Any) -> str | None:
    """snapshot.debian.org's time stamps: YYYYMMDDTHHMMSSZ, a real UTC time."""
    if isinstance(v, str) and re.match(r"^\d{8}T\d{6}Z\Z", v):
        try:
            datetime.strptime(v, "%Y%m%dT%H%M%SZ")
            return None
        except ValueError:
            pass
    return f"expected a snapshot.debian.org time stamp such as '20250601T000000Z', got {v!r}"


def _read_proxy(r: _Reader, raw: Any) -> ProxyConfig:
    d = r.table(raw, "proxy", PROXY_KEYS)
    p = "proxy."
    url = _is_url("http", "https")
    extra = r.get(d, "pip_extra_index", p, [], _is_str_list)
    for i, item in enumerate(extra):
        error = url(item)
        if error:
            r.problem(f"proxy.pip_extra_index[{i}]", error)
    no_proxy = r.get(d, "no_proxy", p, None, lambda v: _is_str(v) or (
        None if re.match(r"^[A-Za-z0-9.,:*/\[\]_-]*\Z", v) else f"not a host list: {v!r}"))
    return ProxyConfig(
        apt=r.get(d, "apt", p, None, url),
        apt_https=r.get(d, "apt_https", p, False, _is_bool),
        pip_index=r.get(d, "pip_index", p, None, url),
        pip_extra_index=tuple(extra),
        cran=r.get(d, "cran", p, None, _is_url("http", "https", "file")),
        http_proxy=r.get(d, "http_proxy", p, None, url),
        https_proxy=r.get(d, "https_proxy", p, None, url),
        no_proxy=no_proxy,
        network_host=r.get(d, "network_host", p, None, _is_bool),
        timeout=r.get(d, "timeout", p, DEFAULT_INDEX_TIMEOUT, _is_int_in(1, 3600, "seconds")),
        retries=r.get(d, "retries", p, DEFAULT_INDEX_RETRIES, _is_int_in(0, 20, "retries")),
    )


def _read_ports(r: _Reader, raw: Any, key: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(raw, dict):
        r.problem(key, f"expected a table like {{ lab = 8888 }}, got {toml_kind(raw)}")
        return ()
    ports = []
    for name, value in raw.items():
        if not PORT_NAME_RE.match(name):
            r.problem(f"{key}.{toml_key(name)}", "port names are lower-case words")
            continue
        error = _is_port(value)
        if error:
            r.problem(f"{key}.{name}", error)
            continue
        ports.append((name, int(value)))
    seen: dict[int, str] = {}
    for name, port in ports:
        if port in seen:
            r.problem(f"{key}.{name}", f"port {port} is also used by '{seen[port]}'")
        seen[port] = name
    return tuple(ports)


def _read_image(r: _Reader, name: str, raw: Any) -> ImageConfig:
    key = f"images.{toml_key(name)}"
    if not IMAGE_NAME_RE.match(name):
        r.problem(key, "image names are lower-case letters, digits and . _ - (e.g. 'pylab-torch')")
    d = r.table(raw, key, IMAGE_KEYS)
    p = key + "."
    parent = r.get(d, "from", p, None, lambda v: None if isinstance(v, str) and IMAGE_NAME_RE.match(v)
                   else f"expected the name of another image, got {v!r}")
    ports = _read_ports(r, d["ports"], p + "ports") if "ports" in d else ()
    ports_raw = d.get("ports")
    if (isinstance(ports_raw, dict) and ports_raw and "lab" not in ports_raw
            and all(PORT_NAME_RE.match(n) for n in ports_raw)):  # else a name is refused
        r.problem(p + "ports", "no 'lab' port: an image with ports is started as a lab, which "
                  "serves JupyterLab on its lab port; add one (lab = 8888), or remove the "
                  "ports of an image that is only a base for others")
    return ImageConfig(
        name=name,
        parent=parent,
        debs=_as_tuple(r.get(d, "debs", p, [], _is_path_list)),
        requirements=_as_tuple(r.get(d, "requirements", p, [], _is_path_list)),
        r_packages=_as_tuple(r.get(d, "r_packages", p, [], _is_path_list)),
        r=r.get(d, "r", p, None, _one_of("debian", "cran")),
        r_source=r.get(d, "r_source", p, "cran", _one_of("cran", "apt")),
        ports=ports,
        run_args=tuple(r.get(d, "run_args", p, [], _is_str_list)),
    )


def _read_run(r: _Reader, raw: Any, project: str) -> RunConfig:
    d = r.table(raw, "run", RUN_KEYS)
    p = "run."
    uid, gid = default_uid_gid()
    rc_raw = r.get(d, "rc", p, {}, lambda v: None if isinstance(v, dict) and all(
        _is_run_path(x) is None for x in v.values())
        else "expected a table of image = \"script\"")
    return RunConfig(
        notebooks=r.get(d, "notebooks", p, DEFAULT_NOTEBOOKS, _is_run_path),
        home=r.get(d, "home", p, default_home(project), _is_run_path),
        rc=tuple(sorted(rc_raw.items())),
        userlab=r.get(d, "userlab", p, "userlab.sh", _is_run_path) or None,
        envfile=r.get(d, "envfile", p, ".env", _is_run_path),
        bind=r.get(d, "bind", p, "127.0.0.1", _is_bind),
        uid=r.get(d, "uid", p, uid, _is_uid),
        gid=r.get(d, "gid", p, gid, _is_uid),
        docker_args=tuple(r.get(d, "docker_args", p, [], _is_str_list)),
        sudo=r.get(d, "sudo", p, False, _is_bool),
        allow_no_token=r.get(d, "allow_no_token", p, False, _is_bool),
    )


def cache_source_problem(value: Any) -> str | None:
    """Why `value` is not a cache source (an image ref, or a prefix ending in '/')."""
    if not isinstance(value, str):
        return f"expected an image reference, got {toml_kind(value)}"
    if value.endswith("/") and PREFIX_RE.match(value):
        return None
    if IMAGE_REF_RE.match(value):
        return None
    return (f"expected a registry image such as 'registry.example.org/team/pylab:latest' "
            f"or a prefix ending in '/' such as 'registry.example.org/team/', got {value!r}")


def _read_build(r: _Reader, raw: Any) -> BuildConfig:
    d = r.table(raw, "build", BUILD_KEYS)
    sources = r.get(d, "cache_from", "build.", [], _is_str_list)
    for i, item in enumerate(sources):
        error = cache_source_problem(item)
        if error:
            r.problem(f"build.cache_from[{i}]", error)
    return BuildConfig(cache_from=tuple(sources))


def _read_marks(r: _Reader, raw: Any, key: str, name_ok: Callable[[str], bool],
                what: str) -> tuple[tuple[str, str], ...]:
    """NAME = "expected error" lines of one [test.known_failures.*] table."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        r.problem(key, f"expected a table of NAME = \"expected error\", got {toml_kind(raw)}")
        return ()
    marks = []
    for name, expected in raw.items():
        where = f"{key}.{toml_key(name)}"
        if not name_ok(name):
            r.problem(where, f"expected {what}")
        elif not isinstance(expected, str) or not expected.strip():
            r.problem(where, "expected the error it fails with: an exception type such as "
                      "\"ModuleNotFoundError\" or a text the error contains, as a string, "
                      f"got {toml_kind(expected) if not isinstance(expected, str) else 'an empty one'}")
        else:
            marks.append((name, expected))
    return tuple(marks)


def _read_test(r: _Reader, raw: Any) -> SelfTestConfig:
    d = r.table(raw, "test", TEST_KEYS)
    known = r.table(d.get("known_failures"), "test.known_failures", KNOWN_FAILURES_KEYS)
    return SelfTestConfig(
        known_failures_python=_read_marks(
            r, known.get("python"), "test.known_failures.python", str.isidentifier,
            "a top-level module name such as chartpy (what `import` takes)"),
        known_failures_r=_read_marks(
            r, known.get("r"), "test.known_failures.r", lambda n: bool(R_PACKAGE_RE.match(n)),
            "an R package name such as sf"),
    )


def _check_graph(r: _Reader, images: Mapping[str, ImageConfig]) -> None:
    roots = [i for i in images.values() if i.parent is None]
    if images and not roots:
        r.problem("images", "no image starts from [base] (every image has a 'from')")
    for image in images.values():
        if image.parent is not None and image.parent not in images:
            r.problem(f"images.{toml_key(image.name)}.from", f"unknown image '{image.parent}' "
                      f"(known: {', '.join(images)})")
    # Cycles: walk parents from each image.
    reported: set[str] = set()
    for start in images:
        path = [start]
        node = images[start].parent
        while node is not None and node in images:
            if node in path:
                cycle = path[path.index(node):] + [node]
                if not reported & set(cycle):
                    r.problem(f"images.{toml_key(node)}.from", "cycle: " + " -> ".join(cycle))
                    reported.update(cycle)
                break
            path.append(node)
            node = images[node].parent


def load_config(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    config_file: Path | None = None,
) -> Config:
    """Load, override and validate a lab project's configuration. Raises ConfigError."""
    config, problems = read_config(root, environ=environ, sets=sets, config_file=config_file)
    if problems:
        raise ConfigError(problems)
    return config


def read_config(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    config_file: Path | None = None,
) -> tuple[Config, list[Problem]]:
    """The configuration (invalid values replaced by defaults) and every problem found.

    Raises ConfigError only when the file cannot be read as TOML at all; otherwise the
    caller can go on to check the package lists and report everything at once.
    """
    environ = os.environ if environ is None else environ
    root = root.resolve()
    file = config_file or root / CONFIG_NAME
    shown = _shown(file, root)
    problems: list[Problem] = []
    raw: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    if file.exists():
        text = ""
        try:
            # utf-8-sig: a BOM (Windows editors write one) is not part of the TOML.
            text = file.read_text(encoding="utf-8-sig")
            raw = toml_loads(text)
            lines = key_lines(text)
        except UnicodeDecodeError:
            raise ConfigError(Problem(shown, "not valid UTF-8")) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(toml_problem(exc, shown, text)) from None
        except OSError as exc:
            raise ConfigError(Problem(shown, f"cannot read: {exc.strerror}")) from None
    elif config_file is not None:
        raise ConfigError(Problem(shown, "file not found"), hint="create one with `pyrlab init`")
    file_keys = frozenset(_dotted_keys(raw))
    if "images" not in raw:
        raw["images"] = copy.deepcopy(DEFAULT_IMAGES)  # overrides must not edit the defaults

    sources: dict[str, str] = {}
    # This machine's settings from the user's own file win over the project's.
    user_file = user_config_path(environ)
    if user_file is not None:
        settings, user_problems = read_user_file(user_file)
        problems += user_problems
        for key, value in settings:
            error = _set_path(raw, key.split("."), copy.deepcopy(value))
            if error:
                problems.append(Problem(user_source(user_file), error))
                continue
            sources[_canonical_key(raw, key)] = user_source(user_file)
        if not user_file.is_file():
            user_file = None
    from_env, warnings = env_overrides(environ)
    pending = from_env + [(*_split_set(s), "--set " + s.split("=", 1)[0]) for s in sets]
    for key, text, source in pending:
        if not key or any(not part for part in key.split(".")):
            problems.append(Problem(source, "expected KEY=VALUE with a dotted key like run.bind"))
            continue
        unknown_image = _unknown_image(raw, key, source)
        if unknown_image:
            problems.append(Problem(source, unknown_image))
            continue
        error = _set_path(raw, key.split("."), parse_override_value(text))
        if error:
            problems.append(Problem(source, error))
        sources[_canonical_key(raw, key)] = source

    r = _Reader(shown, problems, sources, lines)
    top = r.table(raw, "", TOP_KEYS)
    name_given = "name" in top
    project_name = r.get(top, "name", "", None, _is_project_name)
    if project_name is None:
        project_name = name_from_folder(root)
    engine = r.get(top, "engine", "", "auto", _one_of(*ENGINES))
    prefix = r.get(top, "prefix", "", "", lambda v: None if isinstance(v, str) and PREFIX_RE.match(v)
                   else f"expected a registry/namespace prefix ending in '/', got {v!r}")
    base = _read_base(r, top.get("base"))
    proxy = _read_proxy(r, top.get("proxy"))
    images_raw = top.get("images")
    images: dict[str, ImageConfig] = {}
    if not isinstance(images_raw, dict):
        r.problem("images", f"expected a table of images, got {toml_kind(images_raw)}")
    else:
        for name, image_raw in images_raw.items():
            images[name] = _read_image(r, name, image_raw)
    _check_graph(r, images)
    _check_ports(r, images)
    run = _read_run(r, top.get("run"), project_name)
    build = _read_build(r, top.get("build"))
    test = _read_test(r, top.get("test"))
    for image_name, _ in run.rc:
        if image_name not in images:
            r.problem(f"run.rc.{toml_key(image_name)}", f"unknown image {image_name!r}")
    config = Config(
        root=root,
        file=file if file.exists() else None,
        engine=engine,
        prefix=prefix,
        base=base,
        proxy=proxy,
        images=images,
        run=run,
        overrides=tuple(sorted(sources.items())),
        build=build,
        test=test,
        file_keys=file_keys,
        user_file=user_file,
        name=project_name,
        name_from_folder=not name_given,
        warnings=tuple(warnings),
        key_lines=lines,
    )
    return config, problems


def _unknown_image(raw: dict[str, Any], key: str, source: str) -> str | None:
    """Why an override of a key inside an image (`images.pylb.ports.lab`) names no image
    of the graph, or None: it would quietly add a new image. Setting a whole image table
    (`images.extra={from="pylab"}`) still adds one, as asked."""
    parts = key.split(".")
    images = raw.get("images")
    if len(parts) < 3 or parts[0] != "images" or not isinstance(images, dict):
        return None
    names = [str(n) for n in images]
    if any(n.replace("-", "_") == parts[1].replace("-", "_") for n in names):
        return None
    guess = did_you_mean(parts[1].replace("_", "-"), names)
    hint = ""
    if guess is not None:
        fixed = ".".join(["images", guess, *parts[2:]])
        hint = f"; did you mean {env_name(fixed) if source.startswith('environment ') else fixed}?"
    return f"unknown image '{parts[1]}'{hint} (known: {', '.join(names)})"


def _check_ports(r: _Reader, images: Mapping[str, ImageConfig]) -> None:
    """The labs of a project can run side by side: no lab port is another lab's port (the
    other ports may be shared: `up` leaves a busy one unpublished and says so)."""
    taken: dict[int, tuple[str, str]] = {}  # port → (image, port name) of the labs so far
    for image in images.values():
        if image.lab_port is None:  # a base for others (or no lab: _read_image said so)
            continue
        for port_name, number in image.ports:
            other = taken.get(number)
            if other is not None and "lab" in (port_name, other[1]):
                what = "lab port" if other[1] == "lab" else f"'{other[1]}' port"
                r.problem(f"images.{toml_key(image.name)}.ports.{toml_key(port_name)}",
                          f"port {number} is also the {what} of {other[0]}: the two labs "
                          "could not run at the same time; give each lab its own ports")
        for port_name, number in image.ports:
            taken.setdefault(number, (image.name, port_name))


def _dotted_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key of `table` and of the tables in it, dotted as TOML writes them."""
    out = []
    for name, value in table.items():
        key = prefix + toml_key(name)
        out.append(key)
        if isinstance(value, dict):
            out += _dotted_keys(value, key + ".")
    return out


def _split_set(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    return (key.strip(), value) if sep else ("", "")


def _canonical_key(raw: dict[str, Any], key: str) -> str:
    """The dotted key as spelled in the raw table (so `rlab_base` reports as `rlab-base`)."""
    out: list[str] = []
    node: Any = raw
    for part in key.split("."):
        match = part
        if isinstance(node, dict):
            match = next((k for k in node if k.replace("-", "_") == part.replace("-", "_")), part)
            node = node.get(match)
        out.append(toml_key(match))
    return ".".join(out)


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)
