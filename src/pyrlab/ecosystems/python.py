"""The Python ecosystem: Python packages (distributions), installed with uv into /opt/venv."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pyrlab import proc
from pyrlab.credentials import has_credentials, is_loopback_url
from pyrlab.ecosystems.base import (
    ASK_ROOT,
    EXECUTABLE,
    REGULAR,
    Answer,
    Cache,
    Checks,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
    Entry,
    Finding,
    Found,
    Grammar,
    ImageFacts,
    Include,
    Listed,
    Locked,
    ManifestReader,
    MarkKey,
    Needs,
    Part,
    PinMode,
    Pins,
    Platform,
    ProjectView,
    ProxyView,
    Purl,
    Queries,
    Query,
    Reach,
    Retest,
    RuntimeFile,
    Verdict,
    container_file,
    json_rows,
    lines,
    mark_matches,
    sign,
)
from pyrlab.errors import BuildError, Problem

if TYPE_CHECKING:
    from packaging.requirements import Requirement

# -- grammar --------------------------------------------------------------------------------
URL_SCHEMES = ("https", "http", "git+https", "git+ssh", "git+http")
EGG_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_URL_START_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_OPTION_RE = re.compile(r"^(--[^=\s]+|-[^=\s])(.*)$")
_INLINE_OPTION_RE = re.compile(r"[ \t](--[A-Za-z][A-Za-z0-9-]*)")
_INCLUDE_OPTIONS = ("-r", "--requirement")
_INDEX_OPTIONS = frozenset(
    {"-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links",
     "--trusted-host"}
)
# Why `--hash` is refused: the lists are normalised entries, and a hash-checking install
# needs a hash for every package, dependencies too, which pyrlab's lock does instead.
_HASH_REFUSAL = ("option '--hash' is not supported: a hash-checking install needs a hash "
                 "for every dependency too; pin versions here and let pyrlab.lock record "
                 "exactly what was installed")


def _option(line: str) -> Include | str:
    """pip's options: `-r FILE` includes a list; the others are refused, with the reason."""
    match = _OPTION_RE.match(line)
    if match is None:
        return f"option '{line.split()[0]}' is not allowed in a list"
    option, rest = match.group(1), match.group(2)
    if option in _INCLUDE_OPTIONS:
        target = rest.strip().removeprefix("=").strip()
        if not target:
            return f"option '{option}' needs a file name"
        return Include(target)
    if option == "--hash":
        return _HASH_REFUSAL
    if option in ("-e", "--editable"):
        hint = " (editable installs are not supported)"
    elif option in _INDEX_OPTIONS:
        hint = " (set indexes in pyrlab.toml [proxy])"
    elif option in ("-c", "--constraint"):
        hint = " (constraint files are not supported)"
    else:
        hint = ""
    return f"option '{option}' is not allowed in a list{hint}"


def _semicolon(line: str) -> bool:
    """One `;` may separate a requirement from its marker (never in a URL or option)."""
    return (line.count(";") == 1 and not line.startswith((";", "-"))
            and not _URL_START_RE.match(line))


def _marker(entry: Entry) -> str | None:
    return entry.text.split(";", 1)[1].strip() if ";" in entry.text else None


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return f"not a valid URL: '{url}'"
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        allowed = ", ".join(URL_SCHEMES)
        if not scheme:
            return f"a direct reference must be a URL ({allowed})"
        return f"scheme '{scheme}' is not allowed (use {allowed})"
    if not parts.netloc:
        return f"not a valid URL: '{url}'"
    return None


def _parse_python(line: str, where: str) -> Entry | str:
    # packaging is loaded here, not at pyrlab's start: only a list read needs it.
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if line.startswith((".", "/", "~")):
        return "local paths are not supported (use a package name or URL)"
    if _URL_START_RE.match(line):
        return _parse_bare_url(line, where)
    inline = _INLINE_OPTION_RE.search(line)
    if inline:
        if inline.group(1) == "--hash":
            return _HASH_REFUSAL
        return f"option '{inline.group(1)}' is not allowed in a list"
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unreadable"
        return f"not a valid Python requirement: {reason[:1].lower()}{reason[1:]}"
    if requirement.url is not None:
        problem = _url_problem(requirement.url)
        if problem:
            return problem
    pins = [
        s.version for s in requirement.specifier
        if s.operator in ("==", "===") and not s.version.endswith(".*")
    ]
    return Entry(
        ECOSYSTEM.name,
        canonicalize_name(requirement.name),
        str(requirement),
        pins[0] if pins else None,
        None,
        where,
    )


def _parse_bare_url(url: str, where: str) -> Entry | str:
    """A line that is only a URL (pip's `git+https://host/repo@ref#egg=name` form)."""
    from packaging.utils import canonicalize_name

    if any(c in url for c in " \t\"'"):
        return f"not a valid URL: '{url}'"
    problem = _url_problem(url)
    if problem:
        return problem
    name = url
    fragment = urlsplit(url).fragment
    for part in fragment.split("&") if fragment else ():
        key, _, value = part.partition("=")
        if key == "egg":
            if not EGG_NAME_RE.match(value):
                return f"not a valid egg name: '{value}'"
            name = canonicalize_name(value)
    return Entry(ECOSYSTEM.name, name, url, None, None, where)


def _merge_python(first: Entry, other: Entry) -> Entry | str:
    """As pip and uv read two lines for one package: extras add up, specifiers intersect,
    two different pins or direct references cannot both hold."""
    from packaging.requirements import InvalidRequirement, Requirement

    if other.text == first.text:
        return first
    try:
        a, b = Requirement(first.text), Requirement(other.text)
    except InvalidRequirement:  # a bare URL line (#egg=): only an exact duplicate merges
        return "two different direct references"
    if a.url != b.url:
        return "two different direct references"
    specifier = a.specifier & b.specifier
    pins = {s.version for s in specifier
            if s.operator in ("==", "===") and not s.version.endswith(".*")}
    if len(pins) > 1:
        return "two different pinned versions"
    if pins and not specifier.contains(next(iter(pins)), prereleases=True):
        return f"{next(iter(pins))} does not satisfy '{specifier}'"
    a.extras |= b.extras
    a.specifier = specifier
    return replace(first, text=str(a), version=next(iter(pins), None))


GRAMMAR = Grammar(
    parse_line=_parse_python,
    merge=_merge_python,
    marker=_marker,
    option=_option,
    continuation=True,
    semicolon=_semicolon,
    keys=("base.python", "proxy.pip_index", "proxy.pip_extra_index",
          "test.known_failures.python"),
    count_label="python",
)

# -- build context ----------------------------------------------------------------------------
UV_VERSION = "0.13.9"  # the uv that goes into images; bumped by pyrlab releases
# The JupyterHub series of `jupyterhub-singleuser` in runnable images ([base] jupyterhub)
# and of the hub `pyrlab export jupyterhub` writes a configuration for (Zero to JupyterHub
# 4.x runs JupyterHub 5): single-user server and hub of one major.minor.
JUPYTERHUB_SERIES = "5.4"
SLIM_TOOLS = ("binutils",)  # strip, for [base] slim
UV_CACHE = "/var/cache/pyrlab/uv"  # uv's cache mount in the Python step
# The bytecode cache (pyc_cache.py), one for every platform: its entries are the same bytes
# on each (marshal's format does not depend on the machine; test_platforms_lab.py compares).
PYC_CACHE = "/var/cache/pyrlab/pyc"
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
    if not (lists.of(ECOSYSTEM.name) or system):
        return Part(render=False)
    files = {"requirements.txt": lines(e.text for e in lists.lines_of(ECOSYSTEM.name))}
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
    caches=(Cache("uv", UV_CACHE), Cache("pyc", PYC_CACHE, every_platform=True)),
    secrets=("uv.toml", "pip.conf"),
    needs=_needs,
    net_files=_net_files,
    delta_lists=("requirements.txt", "system.txt"),
    env=("PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "UV_LINK_MODE=copy",
         "UV_PYTHON=/opt/venv/bin/python", f"UV_CACHE_DIR={UV_CACHE}",
         f"PYRLAB_PYC_CACHE={PYC_CACHE}"),
    runtime_files=_runtime_files,
)

# -- contents ---------------------------------------------------------------------------------
_PEP503_RE = re.compile(r"[-_.]+")


def normalize_python_name(name: str) -> str:
    """PEP 503: `Foo.Bar_baz` and `foo-bar-baz` are one project."""
    return _PEP503_RE.sub("-", name).lower()


@dataclass(frozen=True)
class PyDist:
    name: str
    version: str
    url: str = ""  # the direct reference (PEP 610) it was installed from; "" from an index

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_python_name(self.name))

    @property
    def origin(self) -> str:
        return self.url


def _from_manifest(top: Mapping[str, object], reader: ManifestReader, pinned: frozenset[str],
                   platform: Platform) -> Found[PyDist]:
    """The collector's `python_dists` rows, and the version of /opt/venv's Python."""
    key = ECOSYSTEM.manifest_key
    rows = reader.rows(top.get(key), key, ("name", "version", "url"), 2)
    return Found(reader.unique([PyDist(*row) for row in rows], key),
                 {"python": reader.string(top, "python", "")})


def _lock_value(dist: PyDist) -> str:
    return f"{dist.version} @ {dist.url}" if dist.url else dist.version


def _parse_lock_value(name: str, value: str) -> PyDist | str | None:
    version, at, url = value.partition(" @ ")
    if not version.strip():
        return f"'{name}' has no version"
    if " " in version or (at and not url.strip()):
        return None
    return PyDist(name, version, url)


def compare_python(a: str, b: str) -> int:
    """PEP 440 order; a version that is not PEP 440 (a very old sdist) by its text."""
    from packaging.version import InvalidVersion, Version

    try:
        return sign(Version(a), Version(b))
    except InvalidVersion:
        return sign(a, b)


def _purl(dist: PyDist, facts: ImageFacts) -> Purl:
    """pkg:pypi/NAME@VERSION; a direct reference keeps its URL as `download_url`."""
    return Purl(type="pypi", name=dist.name, version=dist.version,
                qualifiers={"download_url": dist.url} if dist.url else {})


CONTENTS = Contents[PyDist](
    read_manifest=_from_manifest,
    lock_value=_lock_value,
    parse_lock_value=_parse_lock_value,
    value_shape='"VERSION" or "VERSION @ URL"',
    compare=compare_python,
    origin_header="from",
    shown=lambda version, url: f"{version} @ {url}" if url else version,
    purl=_purl,
    lock_meta=(("python-version", "python"),),
    diff_meta=(("python", "python"),),
    canonical_name=normalize_python_name,
)

# -- outdated -----------------------------------------------------------------------------
# The image's lists resolved again by the uv builds use, for its interpreter and platform,
# with an empty cache, as `pyrlab upgrade` resolves them; heldback.py then names the listed
# packages that resolution holds back (see the module doc of contents/upgradable.py).
UV_RESOLVE = (f"{ASK_ROOT}/bin/uv-resolve",)


@dataclass(frozen=True)
class HeldBack:
    """A listed package that a resolution holds back, as the container's heldback.py says."""

    kind: str  # "held": left behind; "raised": the resolution now takes it newer; "note"
    name: str = ""
    resolved: str = ""  # the version uv's first resolution picked
    newest: str = ""  # the newest release installable for the image's Python
    why: str = ""  # a major version ahead, or uploaded more than 12 months later
    holder: str = ""  # the requirement that holds it back (kind "held")
    to: str = ""  # the version installed instead (kind "raised")
    text: str = ""  # kind "note"

    def describe(self) -> str:
        if self.kind == "note":
            return f"held-back check: {self.text}"
        if self.kind == "raised":
            return (f"{self.name} {self.resolved} -> {self.to}: uv's first resolution held it "
                    f"back ({self.why}); one that keeps it newer exists and was taken")
        # A holder is a requirement uv named, or what the probe found instead (a newer one
        # lowers other listed packages, or there was no time or probe left for it).
        said = self.holder.startswith(("not ", "the resolution with it"))
        return (f"held back: {self.name} {self.resolved}, newest {self.newest} ({self.why}); "
                f"{self.holder if said else f'held by {self.holder}'}")

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


# What heldback.py (run by uv-install after a fresh resolution) prints before each finding:
# a build finds its lines in the engine's output.
HELD_BACK_MARKER = "pyrlab-held-back: "


def held_back_in(line: str) -> HeldBack | None:
    """The finding a line of a build's output carries (the engine may prefix it), or None."""
    at = line.find(HELD_BACK_MARKER)
    if at < 0:
        return None
    try:
        data = json.loads(line[at + len(HELD_BACK_MARKER):])
        return HeldBack(**{k: str(v) for k, v in data.items()
                           if k in HeldBack.__dataclass_fields__})
    except (ValueError, TypeError):
        return None


def python_resolution(answer: str) -> Answer:
    """{normalised name: version} of the resolution heldback.py printed, and its findings."""
    try:
        data = json.loads(answer.strip().splitlines()[-1])
        versions = {normalize_python_name(k): str(v) for k, v in data["resolution"].items()}
        held = [HeldBack(kind=kind, **{k: str(v) for k, v in row.items()
                                       if k in HeldBack.__dataclass_fields__})
                for kind in ("held", "raised") for row in data[kind]]
        held += [HeldBack(kind="note", text=str(note)) for note in data["notes"]]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise BuildError(f"the resolution's answer cannot be read ({exc!r}): "
                         f"{answer[-200:]}") from None
    return Answer(versions, tuple(held))


def _outdated(files: Collection[str], packages: tuple[PyDist, ...], secret_dir: str,
              platform: Platform) -> Query | None:
    step = ECOSYSTEM.step
    if f"pyrlab/{step}/requirements.txt" not in files:
        return None
    return Query(UV_RESOLVE, {"bin": "bin", step: "python", f"net/{step}": "net"},
                 python_resolution)


def _newer(dist: PyDist, available: Mapping[str, str]) -> str | None:
    version = available.get(dist.name)
    if version and not dist.url and compare_python(version, dist.version) > 0:
        return version
    return None


QUERIES = Queries(outdated=_outdated, newer=_newer)

# -- pins -------------------------------------------------------------------------------------
# uv-install's pins folder holds one file, named by the mode: prefer.txt, a plain build
# keeps these versions where the lists still allow them (uv's preferences for an existing
# output file); exact.txt, `build --locked`, used as constraints, so the result is exactly
# these; fresh.txt, `upgrade`, empty, and uv revalidates what its cache knows of the indexes.
def pin_line(dist: Any) -> str:
    return f"{dist.name} @ {dist.url}" if dist.url else f"{dist.name}=={dist.version}"


def _pin_files(mode: PinMode, locked: Locked, platform: Platform) -> dict[str, bytes]:
    return {f"{mode}.txt": "".join(f"{pin_line(d)}\n"
                                   for d in locked.of(ECOSYSTEM.name)).encode()}


def _applies(requirement: Requirement, python: str) -> bool:
    if requirement.marker is None:
        return True
    short = ".".join(python.split(".")[:2])
    return requirement.marker.evaluate({"python_version": short, "python_full_version": python})


def _lock_problems(entries: Sequence[Entry], locked: Locked, where: str,
                   compare: Callable[[str, str], int]) -> Iterator[Problem]:
    from packaging.requirements import InvalidRequirement, Requirement

    dists = {d.name: d for d in locked.of(ECOSYSTEM.name)}
    for entry in entries:
        try:
            requirement = Requirement(entry.text)
        except InvalidRequirement:  # a bare URL line: its name is known only after a build
            yield Problem(entry.where, f"{entry.text}: a URL without #egg=NAME cannot be "
                          "checked against the lock")
            continue
        if not _applies(requirement, locked.facts.get("python", "")):
            continue
        dist = dists.get(entry.name)
        if dist is None:
            yield Problem(entry.where, f"{entry.name}: not in {where}")
        elif requirement.url and requirement.url != dist.url:
            yield Problem(entry.where, f"{entry.name}: locked from "
                          f"{dist.url or 'the index'}, not {requirement.url}")
        elif not requirement.specifier.contains(dist.version, prereleases=True):
            yield Problem(entry.where, f"{entry.name}: locked at {dist.version}, which "
                          f"'{entry.text}' does not allow")


def _described(dist: Any) -> str:
    return f"{dist.version}" + (f" ({dist.url})" if dist.url else "")


PINS = Pins(
    script="uv-install",
    files=_pin_files,
    prefers=True,
    problems=_lock_problems,
    described=_described,
)

# -- checks -----------------------------------------------------------------------------------
# Every public top-level module of every listed distribution is imported, each in a process
# of its own, by container/selftest.py in the lab's Python. A distribution's primary modules
# are those named as the distribution is (`mlflow` for mlflow); where none is, all its
# public top-level modules (`yaml` for PyYAML). A primary module that fails blocks the
# image; another top-level module the distribution ships (mlflow 1.27's `pylint_plugins`)
# only warns. Marks (test.known_failures.python) name modules.
VENV_PYTHON = "/opt/venv/bin/python"  # the lab's Python: what the lists were installed into


def import_key(name: str) -> str:
    """A distribution's or module's name as compared for "named as the distribution is":
    lower case, `-` and `.` as `_` (mlflow, jupyterlab-widgets → jupyterlab_widgets)."""
    return name.lower().replace("-", "_").replace(".", "_")


def primary_modules(dist: str, modules: Iterable[str]) -> frozenset[str]:
    """The modules whose failure blocks: the one named as the distribution is; where
    none is, every one (PyYAML ships `yaml`, scikit-learn `sklearn`)."""
    modules = frozenset(modules)
    named = frozenset(m for m in modules if import_key(m) == import_key(dist))
    return named or modules


def _normalized(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name, validate=False))


def python_lines(entries: Sequence[Entry], dists: Sequence[Any]) -> dict[str, Listed]:
    """Distribution → its (first) line. A bare URL entry is matched to the distribution the
    image's manifest says it installed from that URL."""
    from packaging.requirements import InvalidRequirement, Requirement

    by_url = {d.url: d.name for d in dists if d.url}
    found: dict[str, Listed] = {}
    for entry in entries:
        if "://" in entry.name:
            found.setdefault(_normalized(by_url.get(entry.name, entry.name)),
                             Listed(entry.where))
            continue
        try:
            requirement = Requirement(entry.text)
            line = Listed(entry.where, str(requirement.marker or ""),
                          frozenset(requirement.extras))
        except InvalidRequirement:  # a line with pip options or a direct reference
            line = Listed(entry.where)
        found.setdefault(_normalized(entry.name), line)
    return found


def _selftest_script() -> str:
    return resources.files("pyrlab.container").joinpath("selftest.py").read_text()


def _imports_command(pairs: Sequence[tuple[str, str]]) -> list[str]:
    data = [[dist, [module] if module else None] for dist, module in pairs]
    return [VENV_PYTHON, "-I", "-c", _selftest_script(), "imports", json.dumps(data)]


def _judge(answer: proc.Completed, lines: Mapping[str, Listed], marks: Mapping[str, str],
           key: MarkKey) -> list[Finding]:
    rows = json_rows(answer)
    if isinstance(rows, str):  # the interpreter died before it could answer
        return [Finding(dist, "", 0.0, rows, lines[dist].where) for dist in lines]
    return judge_imports(rows, lines, marks, key)


def judge_imports(rows: Sequence[Sequence[Any]], lines: Mapping[str, Listed],
                  marks: Mapping[str, str], key: MarkKey) -> list[Finding]:
    """Findings from container/selftest.py's import rows ([dist, module, seconds, error,
    types]): primary modules block, others warn, marks accept what they name."""
    modules: dict[str, list[str]] = {}
    for row in rows:
        if row[1]:
            modules.setdefault(str(row[0]), []).append(str(row[1]))
    primary = {dist: primary_modules(dist, found) for dist, found in modules.items()}
    findings = []
    for row in rows:
        dist, module, seconds, error = str(row[0]), str(row[1]), float(row[2]), str(row[3])
        types = [str(t) for t in row[4]] if len(row) > 4 else []
        line = lines.get(dist, Listed(""))
        verdict: Verdict = "failed" if error else "ok"
        note = ""
        mark = marks.get(module) if module else None
        if not module and error == "not installed" and line.marker:
            verdict, note = "skipped", f"not installed: its marker ({line.marker}) leaves it out"
        elif error and mark is not None and mark_matches(mark, error, types):
            verdict, note = "known", f"a known failure ({key(module)})"
        elif not error and mark is not None:
            verdict, note = "fixed", f"imports now, though {key(module)} marks it as known to fail"
        elif error and module not in primary.get(dist, frozenset({module})):
            verdict, note = "warning", f"not {dist}'s own module: a warning, not a failure"
        elif error and mark is not None:
            note = f"fails otherwise than {key(module)} expects ({mark!r})"
        findings.append(Finding(dist, module, seconds, error, line.where, verdict, note))
    return findings


def _target(dist: str, module: str) -> str:
    return f"{module} ({dist})" if module else dist


def _accepts(finding: Finding) -> tuple[str, str] | None:
    """A mark names the module, and expects the error without its type."""
    if not finding.what:
        return None
    head, sep, rest = finding.error.partition(": ")
    if sep and rest.strip() and " " not in head:
        return finding.what, rest.strip()
    return finding.what, finding.error.strip()


def retest_after_delta(lines: Mapping[str, Listed], moved: frozenset[str],
                       reach: Reach) -> frozenset[str]:
    """The listed distributions a delta may have changed: `moved` themselves (new, of
    another version, or gone), or depending on one of them, directly or not."""
    return frozenset(dist for dist, line in lines.items()
                     if dist in moved or reach(dist, frozenset(
                         _normalized(e) for e in line.extras)) & moved)


def _listed_name(text: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return _normalized(Requirement(text).name)
    except InvalidRequirement:
        return text  # a bare URL: its own name, as in the lists


CHECKS = Checks(
    label="import",
    counted="imports",
    passed="imported",
    wanted=python_lines,
    command=_imports_command,
    judge=_judge,
    target=_target,
    brief=lambda dist, module: module or dist,
    accepts=_accepts,
    retest=Retest(affected=retest_after_delta, listed_name=_listed_name),
)

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
