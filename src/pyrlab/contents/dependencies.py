"""Why a package is in an image: which list lines pull it in, and what bounds its version.
The facts come out of the image (container/requires.py prints every Python distribution's
Requires-Dist lines and the marker environment; R prints every R package's Depends,
Imports and LinkingTo); everything else happens here, Python's with `packaging`.

An edge `A → B` is a Requires-Dist line of A that names B and whose marker holds in the
image's environment, for the extras of A that are asked for. Which extras those are
depends on the way A is reached: `dvc[s3]` asks for dvc's s3 extra, a plain `dvc` does not.
So a chain from a list line is searched over (distribution, extras) states, each step's
extras being the ones the step before asked for; the bounds on a distribution's version
are the edges into it from every installed distribution, for the extras that anything in
the image asks of that distribution (the union: one environment installs a distribution
once, with every extra any of its dependants wanted).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, Self

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pyrlab.ecosystems.r import R_DEPENDENCIES, R_NAME_RE, compare_r
from pyrlab.engines.base import Engine, RunRequest, short_id
from pyrlab.errors import EngineError

PYTHON = "/opt/venv/bin/python"  # the lab's Python: what the lists were installed into
READ_TIMEOUT = 120.0  # seconds for the script: it reads metadata files, nothing more
EMULATED_READ_TIMEOUT = 360.0  # the same under emulation (qemu: several times slower)


@dataclass(frozen=True)
class InstalledDist:
    name: str  # as its metadata spells it
    version: str
    requires: tuple[str, ...]  # its Requires-Dist lines
    url: str = ""  # the direct reference (PEP 610) it was installed from

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


@dataclass(frozen=True)
class Installed:
    """What container/requires.py reports of one image."""

    environment: Mapping[str, str]  # PEP 508 marker variables, without `extra`
    dists: Mapping[str, InstalledDist]  # by canonical name
    has_r: bool = False  # whether the image has Rscript

    @classmethod
    def of(cls, environment: Mapping[str, str], dists: Iterable[InstalledDist],
           has_r: bool = False) -> Installed:
        by_key: dict[str, InstalledDist] = {}
        for dist in dists:
            by_key.setdefault(dist.key, dist)
        return cls(dict(environment), by_key, has_r)


@dataclass(frozen=True)
class RPackage:
    name: str  # R package names are case-sensitive: the key as well
    version: str
    depends: str = ""  # the DESCRIPTION fields as they are: "R (>= 4.1), methods"
    imports: str = ""
    linking_to: str = ""

    @property
    def key(self) -> str:
        return self.name


class DumpError(ValueError):
    """What the image reported is not what the script prints."""


class Throwaway:
    """A container of the image that only sleeps while scripts run in it: no network, as
    `user` (UID:GID), no capabilities; removed by its ID when the `with` ends. `platform`:
    the image's, where it is another than the engine's own (run under emulation)."""

    def __init__(self, engine: Engine, image_id: str, user: str, platform: str = "") -> None:
        self.engine, self.image_id, self.user = engine, image_id, user
        self.platform = platform
        self.timeout = EMULATED_READ_TIMEOUT if platform else READ_TIMEOUT
        self.container = ""

    def __enter__(self) -> Self:
        request = RunRequest(image=self.image_id, name=f"pyrlab-why-{secrets.token_hex(4)}",
                             user=self.user, env={"HOME": "/tmp"}, network_none=True,
                             cap_drop=("ALL",), command=("sleep", "infinity"),
                             platform=self.platform)
        try:
            self.container = self.engine.run(request).split()[-1]
        except EngineError as exc:
            raise EngineError(f"cannot start a container of {short_id(self.image_id)}: "
                              f"{exc.message}", hint=exc.hint) from None
        return self

    def __exit__(self, *_: object) -> None:
        self.engine.remove_container(self.container)

    def output(self, command: list[str], what: str) -> str:
        try:
            done = self.engine.exec(self.container, command, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise EngineError(f"{short_id(self.image_id)}: reading its {what} took more "
                              f"than {self.timeout:g} s") from None
        if not done.ok:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise EngineError(f"cannot read the {what} of {short_id(self.image_id)}: "
                              f"{detail[-1] if detail else f'exit code {done.returncode}'}")
        return done.stdout

    def python(self) -> Installed:
        """What container/requires.py reports."""
        out = self.output(list(requires_command()), "Python distributions")
        try:
            return parse_dump(out)
        except DumpError as exc:
            raise EngineError(f"{short_id(self.image_id)}: what {PYTHON} reported is "
                              f"{exc}") from None

    def r(self) -> dict[str, RPackage]:
        """Every R package R would load (the first of each name in .libPaths() order)."""
        return parse_r_dump(self.output(list(R_DEPENDENCIES), "R packages"))


def requires_command() -> tuple[str, ...]:
    """The command that runs container/requires.py in a container of the image."""
    script = resources.files("pyrlab.container").joinpath("requires.py").read_text()
    return (PYTHON, "-I", "-c", script)


def parse_dump(text: str) -> Installed:
    """The last line of container/requires.py's output, checked like any input that comes
    out of an image."""
    lines = text.strip().splitlines()
    try:
        data: Any = json.loads(lines[-1]) if lines else None
        environment = {str(k): str(v) for k, v in data["environment"].items()}
        dists = [InstalledDist(str(d["name"]), str(d["version"]),
                               tuple(str(r) for r in d["requires"]), str(d.get("url", "")))
                 for d in data["dists"]]
        has_r = bool(data.get("rscript"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DumpError(f"unreadable ({type(exc).__name__}: {exc}): {text[-200:]!r}") from None
    return Installed.of(environment, dists, has_r)


def parse_r_dump(text: str) -> dict[str, RPackage]:
    """R_DEPENDENCIES' lines: NAME, VERSION, Depends, Imports, LinkingTo, tab-separated."""
    packages: dict[str, RPackage] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 5 or not R_NAME_RE.fullmatch(fields[0]):
            continue  # a message R printed, not a row
        name, version, depends, imports, linking_to = (f.strip() for f in fields)
        packages.setdefault(name, RPackage(name, version, depends, imports, linking_to))
    if not packages:
        raise DumpError(f"no R package in what R reported: {text[-200:]!r}")
    return packages


@dataclass(frozen=True)
class Edge:
    """One dependency of `source` on `target` that holds in the image."""

    source: str  # key of the package that depends
    target: str  # key of the one it depends on
    text: str  # as `source` states it, without a marker: "sqlalchemy<3,>=1.4.0"
    specifier: str  # "<3,>=1.4.0"; "" when any version does
    verb: str = "requires"  # R: "depends on", "imports", "links to"
    extra: str = ""  # Python: the extra of `source` that switches it on
    target_extras: frozenset[str] = frozenset()  # Python: the extras it asks of `target`


def marker_holds(marker: Marker | None, environment: Mapping[str, str], extra: str) -> bool:
    if marker is None:
        return True
    try:
        return marker.evaluate({**environment, "extra": extra})
    except (UndefinedComparison, UndefinedEnvironmentName, InvalidVersion):
        return False


def _requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except (InvalidRequirement, InvalidMarker):
        return None


@dataclass(frozen=True)
class Step:
    """One package along a chain, with the extras asked of it on the way."""

    name: str
    version: str
    extras: tuple[str, ...] = ()

    def __str__(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.name}{extras} {self.version}"


@dataclass(frozen=True)
class ListLine:
    """A line of the image's lists (or its ancestors')."""

    where: str  # FILE:LINE
    text: str  # the entry as the list gives it: a requirement, a bare URL, `name>=1.0`


@dataclass(frozen=True)
class Start:
    """What a list line asks for."""

    key: str
    extras: frozenset[str]
    requirement: str  # the line without a marker
    specifier: str  # "" when any version does


@dataclass(frozen=True)
class Node:
    name: str
    version: str


class DependencyGraph(ABC):
    """The installed packages of one ecosystem and the dependencies between them that hold
    in the image. Keys are what list lines and dependencies resolve to (Python: canonical
    names; R: names)."""

    ecosystem: str

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self.nodes = nodes
        self._edges: dict[tuple[str, frozenset[str]], tuple[Edge, ...]] = {}

    @abstractmethod
    def key(self, name: str) -> str:
        """The key of a package name as a user or a list writes it."""

    @abstractmethod
    def start(self, line: ListLine) -> Start | None:
        """What `line` asks for; None when it does not apply here (a marker that does not
        hold, a URL that installed nothing)."""

    @abstractmethod
    def satisfies(self, specifier: str, version: str) -> bool: ...

    @abstractmethod
    def _dependencies(self, source: str, extras: frozenset[str]) -> list[Edge]: ...

    def edges(self, source: str, extras: frozenset[str] = frozenset()) -> tuple[Edge, ...]:
        """The dependencies of `source` that hold in the image when `extras` of it are
        asked for, on installed packages only (one that is not installed bounds nothing)."""
        known = self._edges.get((source, extras))
        if known is None:
            known = tuple(e for e in self._dependencies(source, extras) if e.target in self.nodes)
            self._edges[(source, extras)] = known
        return known

    def extras_in_use(self, asked: Iterable[tuple[str, frozenset[str]]] = ()
                      ) -> dict[str, frozenset[str]]:
        """Every installed package's extras that something asks for: the `asked` (list
        lines), and then every edge of what that switches on, to a fixed point."""
        extras: dict[str, set[str]] = {key: set() for key in self.nodes}
        for key, wanted in asked:
            if key in extras:
                extras[key] |= wanted
        todo = deque(extras)
        while todo:
            source = todo.popleft()
            for edge in self.edges(source, frozenset(extras[source])):
                if not edge.target_extras <= extras[edge.target]:
                    extras[edge.target] |= edge.target_extras
                    todo.append(edge.target)
        return {key: frozenset(value) for key, value in extras.items()}

    def chain(self, start: str, extras: frozenset[str], target: str) -> tuple[Step, ...] | None:
        """The shortest chain of installed packages from `start` (asked with `extras`) to
        `target`, each step with the extras the step before asked of it; None when `target`
        cannot be reached from `start`. Cycles end where a state repeats."""
        if start not in self.nodes:
            return None
        first = (start, extras)
        before: dict[tuple[str, frozenset[str]], tuple[str, frozenset[str]] | None] = {
            first: None}
        todo = deque([first])
        while todo:
            state = todo.popleft()
            if state[0] == target:
                steps: list[Step] = []
                at: tuple[str, frozenset[str]] | None = state
                while at is not None:
                    node = self.nodes[at[0]]
                    steps.append(Step(node.name, node.version, tuple(sorted(at[1]))))
                    at = before[at]
                return tuple(reversed(steps))
            for edge in self.edges(*state):
                following = (edge.target, edge.target_extras)
                if following not in before:
                    before[following] = state
                    todo.append(following)
        return None

    def reachable(self, start: str, extras: frozenset[str] = frozenset()) -> frozenset[str]:
        """Every package `start` (asked with `extras`) needs, directly or not, each with the
        extras asked of it along the way; a required package that is not installed is in
        it too (a delta that removed it moved it), but leads nowhere."""
        seen = {(start, extras)}
        todo = deque(seen)
        found: set[str] = set()
        while todo:
            source, asked = todo.popleft()
            if source not in self.nodes:
                continue
            for edge in self._dependencies(source, asked):
                found.add(edge.target)
                following = (edge.target, edge.target_extras)
                if following not in seen:
                    seen.add(following)
                    todo.append(following)
        return frozenset(found - {start})

    def required(self, extras: Mapping[str, frozenset[str]]) -> frozenset[str]:
        """The installed packages that another one requires, with `extras` in use."""
        return frozenset(edge.target for key in self.nodes
                         for edge in self.edges(key, extras.get(key, frozenset())))


class PythonGraph(DependencyGraph):
    """Edges: Requires-Dist lines whose markers hold in the image's environment."""

    ecosystem = "python"

    def __init__(self, installed: Installed) -> None:
        super().__init__({k: Node(d.name, d.version) for k, d in installed.dists.items()})
        self.installed = installed

    def key(self, name: str) -> str:
        return canonicalize_name(name)

    def start(self, line: ListLine) -> Start | None:
        """A bare URL is the distribution installed from it."""
        requirement = _requirement(line.text)
        if requirement is None:
            by_url = {d.url: d.key for d in self.installed.dists.values() if d.url}
            key = by_url.get(line.text) if "://" in line.text else None
            return Start(key, frozenset(), line.text, "") if key else None
        if not marker_holds(requirement.marker, self.installed.environment, ""):
            return None
        return Start(canonicalize_name(requirement.name),
                     frozenset(canonicalize_name(e) for e in requirement.extras),
                     line.text.split(";")[0].strip(), str(requirement.specifier))

    def satisfies(self, specifier: str, version: str) -> bool:
        try:
            return SpecifierSet(specifier).contains(Version(version), prereleases=True)
        except (InvalidSpecifier, InvalidVersion):
            return True  # a legacy version no specifier can judge: not shown as a conflict

    def _dependencies(self, source: str, extras: frozenset[str]) -> list[Edge]:
        found: list[Edge] = []
        dist = self.installed.dists.get(source)
        for line in dist.requires if dist else ():
            requirement = _requirement(line)
            if requirement is None:
                continue
            extra = next((e for e in ("", *sorted(extras))
                          if marker_holds(requirement.marker, self.installed.environment, e)),
                         None)
            if extra is None:
                continue
            asked = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
            specifier = str(requirement.specifier)
            tail = f" @ {requirement.url}" if requirement.url else specifier
            found.append(Edge(source, canonicalize_name(requirement.name),
                              f"{requirement.name}{asked}{tail}", specifier, extra=extra,
                              target_extras=frozenset(canonicalize_name(e)
                                                      for e in requirement.extras)))
        return found


_R_ITEM = re.compile(r"\s*([A-Za-z][A-Za-z0-9.]*)\s*(?:\(\s*([<>=!]+)\s*([^)\s]+)\s*\))?\s*")
_R_LINE = re.compile(r"([A-Za-z][A-Za-z0-9.]*)\s*(?:(==|>=)\s*(\S+))?")
_R_FIELDS = (("depends", "depends on"), ("imports", "imports"), ("linking_to", "links to"))


class RGraph(DependencyGraph):
    """Edges: the Depends, Imports and LinkingTo fields of each package's DESCRIPTION (what
    install.packages installs with a package); R itself is no package."""

    ecosystem = "r"

    def __init__(self, packages: Mapping[str, RPackage]) -> None:
        super().__init__({k: Node(p.name, p.version) for k, p in packages.items()})
        self.packages = packages

    def key(self, name: str) -> str:
        if name in self.nodes:
            return name
        folded = [k for k in self.nodes if k.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else name

    def start(self, line: ListLine) -> Start | None:
        match = _R_LINE.fullmatch(line.text.strip())
        if match is None:
            return None
        name, operator, version = match.groups()
        return Start(name, frozenset(), line.text, f"{operator} {version}" if operator else "")

    def satisfies(self, specifier: str, version: str) -> bool:
        operator, _, wanted = specifier.partition(" ")
        order = compare_r(version, wanted)
        return {">=": order >= 0, ">": order > 0, "<=": order <= 0, "<": order < 0,
                "==": order == 0, "!=": order != 0}.get(operator, True)

    def _dependencies(self, source: str, extras: frozenset[str]) -> list[Edge]:
        package = self.packages.get(source)
        found: list[Edge] = []
        for field_name, verb in _R_FIELDS if package else ():
            for item in str(getattr(package, field_name)).split(","):
                match = _R_ITEM.fullmatch(item)
                if match is None or match.group(1) == "R":
                    continue
                name, operator, version = match.groups()
                specifier = f"{operator} {version}" if operator else ""
                found.append(Edge(source, name, f"{name} ({specifier})" if specifier else name,
                                  specifier, verb=verb))
        return found


# A list line that names the package, another's dependency on it, pyrlab.lock.
BoundKind = Literal["list", "requires", "lock"]


@dataclass(frozen=True)
class Pull:
    """A way the package gets into the image: a list line and the chain from the package it
    names (one step: the line names it itself)."""

    where: str  # FILE:LINE, or "" for a package no list names (pyrlab's own, pip…)
    line: str
    chain: tuple[Step, ...]

    @property
    def direct(self) -> bool:
        return len(self.chain) == 1


@dataclass(frozen=True)
class Bound:
    """Something that limits which versions of the package the image may hold."""

    kind: BoundKind
    by: str  # "requirements.txt:3", "mlflow 3.17.2", "pyrlab.lock [pylab]"
    requirement: str  # "sqlalchemy<3,>=1.4.0"
    specifier: str  # "<3,>=1.4.0"; "" when any version does
    extra: str = ""  # the extra of `by` that brings the requirement in
    satisfied: bool = True  # whether the installed version meets it
    verb: str = ""  # "requires", "imports"…: how `by` states it

    @property
    def bounds(self) -> bool:
        return bool(self.specifier)


@dataclass(frozen=True)
class Why:
    ecosystem: str
    name: str
    version: str
    pulls: tuple[Pull, ...]  # by list lines, in list order; else from unrequired ones
    from_lists: bool  # whether `pulls` are list lines
    bounds: tuple[Bound, ...]  # list lines naming it first, then dependencies


def why(graph: DependencyGraph, package: str, lines: Iterable[ListLine]) -> Why:
    """Which `lines` pull `package` into the image and what bounds its version. KeyError
    when it is not installed."""
    target = graph.key(package)
    node = graph.nodes[target]
    listed = [(line, graph.start(line)) for line in lines]
    extras = graph.extras_in_use((s.key, s.extras) for _, s in listed if s is not None)
    pulls: list[Pull] = []
    bounds: list[Bound] = []
    for line, start in listed:
        if start is None:
            continue
        chain = graph.chain(start.key, start.extras, target)
        if chain is not None:
            pulls.append(Pull(line.where, line.text, chain))
        if start.key == target:
            bounds.append(Bound("list", line.where, start.requirement, start.specifier,
                                satisfied=not start.specifier
                                or graph.satisfies(start.specifier, node.version)))
    from_lists = bool(pulls)
    if not from_lists:
        # No list line reaches it: what does? Installed packages nothing requires
        # (pyrlab's own, pip…), each with its chain.
        required = graph.required(extras)
        for key in sorted(graph.nodes):
            if key != target and key not in required:
                chain = graph.chain(key, extras[key], target)
                if chain is not None:
                    pulls.append(Pull("", graph.nodes[key].name, chain))
    for key in sorted(graph.nodes):
        for edge in graph.edges(key, extras[key]):
            if edge.target == target:
                source = graph.nodes[key]
                bounds.append(Bound("requires", f"{source.name} {source.version}", edge.text,
                                    edge.specifier, edge.extra,
                                    not edge.specifier
                                    or graph.satisfies(edge.specifier, node.version),
                                    edge.verb))
    return Why(graph.ecosystem, node.name, node.version, tuple(pulls), from_lists,
               tuple(bounds))
