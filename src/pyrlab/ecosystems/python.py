"""The Python ecosystem: Python packages (distributions), installed with uv into /opt/venv."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pyrlab.ecosystems.base import (
    ASK_ROOT,
    Answer,
    Checks,
    Contents,
    Context,
    Ecosystem,
    Found,
    Grammar,
    ImageFacts,
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
GRAMMAR = Grammar()

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
