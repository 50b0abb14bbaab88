"""The Python ecosystem: Python packages (distributions), installed with uv into /opt/venv."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from pyrlab.ecosystems.base import (
    ASK_ROOT,
    Answer,
    Checks,
    Contents,
    Context,
    Ecosystem,
    Entry,
    Found,
    Grammar,
    ImageFacts,
    Include,
    ManifestReader,
    Pins,
    Platform,
    Purl,
    Queries,
    Query,
    sign,
)
from pyrlab.errors import BuildError

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
CONTEXT = Context()

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
