"""Why a Python distribution is in an image: which list lines pull it in, and what bounds
its version. The facts come out of the image (container/requires.py prints every
distribution's Requires-Dist lines and the marker environment); everything else happens
here, with `packaging`.

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
import secrets
import subprocess
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pyrlab.engines.base import Engine, RunRequest, short_id
from pyrlab.errors import EngineError

PYTHON = "/opt/venv/bin/python"  # the lab's Python: what the lists were installed into
READ_TIMEOUT = 120.0  # seconds for the script: it reads metadata files, nothing more


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

    @classmethod
    def of(cls, environment: Mapping[str, str], dists: Iterable[InstalledDist]) -> Installed:
        by_key: dict[str, InstalledDist] = {}
        for dist in dists:
            by_key.setdefault(dist.key, dist)
        return cls(dict(environment), by_key)


class DumpError(ValueError):
    """The output of container/requires.py is not what it prints."""


def read_installed(engine: Engine, image_id: str, user: str) -> Installed:
    """What container/requires.py reports, run in a throwaway container of the image: no
    network, as `user` (UID:GID), no capabilities; it only sleeps while the script runs
    in it, and is removed by its ID."""
    script = resources.files("pyrlab.container").joinpath("requires.py").read_text()
    request = RunRequest(image=image_id, name=f"pyrlab-why-{secrets.token_hex(4)}", user=user,
                         env={"HOME": "/tmp"}, network_none=True, cap_drop=("ALL",),
                         command=("sleep", "infinity"))
    try:
        container = engine.run(request).split()[-1]
    except EngineError as exc:
        raise EngineError(f"cannot start a container of {short_id(image_id)}: {exc.message}",
                          hint=exc.hint) from None
    try:
        done = engine.exec(container, [PYTHON, "-I", "-c", script], timeout=READ_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise EngineError(f"{short_id(image_id)}: reading its distributions took more than "
                          f"{READ_TIMEOUT:g} s") from None
    finally:
        engine.remove_container(container)
    if not done.ok:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise EngineError(f"cannot read the Python distributions of {short_id(image_id)}: "
                          f"{detail[-1] if detail else f'exit code {done.returncode}'}")
    try:
        return parse_dump(done.stdout)
    except DumpError as exc:
        raise EngineError(f"{short_id(image_id)}: what {PYTHON} reported is {exc}") from None


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
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DumpError(f"unreadable ({type(exc).__name__}: {exc}): {text[-200:]!r}") from None
    return Installed.of(environment, dists)


@dataclass(frozen=True)
class Edge:
    """One Requires-Dist line of `source` that holds in the image."""

    source: str  # canonical name of the distribution that requires
    target: str  # canonical name of the one it requires
    requirement: Requirement
    extra: str  # the extra of `source` that switches it on; "" when it always holds

    @property
    def target_extras(self) -> frozenset[str]:
        return frozenset(canonicalize_name(e) for e in self.requirement.extras)

    @property
    def text(self) -> str:
        """The requirement without its marker: `sqlalchemy<3,>=1.4.0`."""
        extras = f"[{','.join(sorted(self.requirement.extras))}]" if self.requirement.extras \
            else ""
        tail = f" @ {self.requirement.url}" if self.requirement.url else \
            str(self.requirement.specifier)
        return f"{self.requirement.name}{extras}{tail}"


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
    """One distribution along a chain, with the extras asked of it on the way."""

    name: str
    version: str
    extras: tuple[str, ...] = ()

    def __str__(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.name}{extras} {self.version}"


@dataclass
class DependencyGraph:
    installed: Installed
    _edges: dict[tuple[str, frozenset[str]], tuple[Edge, ...]] = field(default_factory=dict)

    def edges(self, source: str, extras: frozenset[str] = frozenset()) -> tuple[Edge, ...]:
        """The Requires-Dist lines of `source` that hold in the image when `extras` of it are
        asked for, towards installed distributions only (one whose marker holds but which
        is not installed is no edge: nothing of the image's can be bounded by it)."""
        known = self._edges.get((source, extras))
        if known is not None:
            return known
        dist = self.installed.dists.get(source)
        found: list[Edge] = []
        for line in dist.requires if dist else ():
            requirement = _requirement(line)
            if requirement is None:
                continue
            target = canonicalize_name(requirement.name)
            if target not in self.installed.dists:
                continue
            extra = next((e for e in ("", *sorted(extras))
                          if marker_holds(requirement.marker, self.installed.environment, e)),
                         None)
            if extra is not None:
                found.append(Edge(source, target, requirement, extra))
        self._edges[(source, extras)] = edges = tuple(found)
        return edges

    def extras_in_use(self, asked: Iterable[tuple[str, frozenset[str]]] = ()
                      ) -> dict[str, frozenset[str]]:
        """Every installed distribution's extras that something asks for: the `asked`
        (list lines), and then every edge of what that switches on, to a fixed point."""
        extras: dict[str, set[str]] = {key: set() for key in self.installed.dists}
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
        """The shortest chain of installed distributions from `start` (asked with `extras`)
        to `target`, each step with the extras the step before asked of it; None when
        `target` cannot be reached from `start`. Cycles end where a state repeats."""
        if start not in self.installed.dists:
            return None
        first = (start, extras)
        before: dict[tuple[str, frozenset[str]], tuple[str, frozenset[str]] | None] = {
            first: None}
        todo = deque([first])
        while todo:
            state = todo.popleft()
            if state[0] == target:
                return self._steps(state, before)
            for edge in self.edges(*state):
                following = (edge.target, edge.target_extras)
                if following not in before:
                    before[following] = state
                    todo.append(following)
        return None

    def _steps(self, last: tuple[str, frozenset[str]],
               before: Mapping[tuple[str, frozenset[str]], tuple[str, frozenset[str]] | None],
               ) -> tuple[Step, ...]:
        steps: list[Step] = []
        state: tuple[str, frozenset[str]] | None = last
        while state is not None:
            dist = self.installed.dists[state[0]]
            steps.append(Step(dist.name, dist.version, tuple(sorted(state[1]))))
            state = before[state]
        return tuple(reversed(steps))

    def required(self, extras: Mapping[str, frozenset[str]]) -> frozenset[str]:
        """The installed distributions that another one requires, with `extras` in use."""
        return frozenset(edge.target for key in self.installed.dists
                         for edge in self.edges(key, extras.get(key, frozenset())))


@dataclass(frozen=True)
class ListLine:
    """A Python line of the image's lists (or its ancestors')."""

    where: str  # FILE:LINE
    text: str  # the requirement as the list gives it, or a bare URL


@dataclass(frozen=True)
class Pull:
    """A way the distribution gets into the image: a list line and the chain from the
    distribution it names (one step: the line names it itself)."""

    where: str  # FILE:LINE, or "" for a distribution no list names (pyrlab's own, pip…)
    line: str
    chain: tuple[Step, ...]

    @property
    def direct(self) -> bool:
        return len(self.chain) == 1


# A list line that names the distribution, another's Requires-Dist line, pyrlab.lock.
BoundKind = Literal["list", "requires", "lock"]


@dataclass(frozen=True)
class Bound:
    """Something that limits which versions of the distribution the image may hold."""

    kind: BoundKind
    by: str  # "requirements.txt:3", "mlflow 3.17.2", "pyrlab.lock [pylab]"
    requirement: str  # "sqlalchemy<3,>=1.4.0"
    specifier: str  # "<3,>=1.4.0"; "" when any version does
    extra: str = ""  # the extra of `by` that brings the requirement in
    satisfied: bool = True  # whether the installed version meets it

    @property
    def bounds(self) -> bool:
        return bool(self.specifier)


@dataclass(frozen=True)
class Why:
    name: str
    version: str
    pulls: tuple[Pull, ...]  # by list lines, in list order; else from unrequired ones
    from_lists: bool  # whether `pulls` are list lines
    bounds: tuple[Bound, ...]  # list lines naming it first, then Requires-Dist edges


def list_target(line: ListLine, installed: Installed) -> tuple[str, frozenset[str]] | None:
    """The distribution a list line names, with its extras; None when its marker does not
    hold in the image (or the line cannot be read). A bare URL is the distribution
    installed from it."""
    if "://" in line.text and not _requirement(line.text):
        by_url = {d.url: d.key for d in installed.dists.values() if d.url}
        key = by_url.get(line.text)
        return (key, frozenset()) if key else None
    requirement = _requirement(line.text)
    if requirement is None or not marker_holds(requirement.marker, installed.environment, ""):
        return None
    return (canonicalize_name(requirement.name),
            frozenset(canonicalize_name(e) for e in requirement.extras))


def _contains(specifier: str, version: str) -> bool:
    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True  # a legacy version no specifier can judge: not shown as a conflict


def why(installed: Installed, package: str, lines: Iterable[ListLine]) -> Why:
    """Which `lines` pull `package` into the image and what bounds its version. KeyError
    when it is not installed."""
    target = canonicalize_name(package)
    dist = installed.dists[target]
    graph = DependencyGraph(installed)
    listed = [(line, list_target(line, installed)) for line in lines]
    extras = graph.extras_in_use(start for _, start in listed if start is not None)
    pulls: list[Pull] = []
    bounds: list[Bound] = []
    for line, start in listed:
        if start is None:
            continue
        chain = graph.chain(start[0], start[1], target)
        if chain is not None:
            pulls.append(Pull(line.where, line.text, chain))
        if start[0] == target:
            requirement = _requirement(line.text)
            specifier = str(requirement.specifier) if requirement else ""
            bounds.append(Bound("list", line.where, line.text.split(";")[0].strip(), specifier,
                                satisfied=_contains(specifier, dist.version)))
    from_lists = bool(pulls)
    if not from_lists:
        # No list line reaches it: what does? Installed distributions nothing requires
        # (pyrlab's own, pip…), each with its chain.
        required = graph.required(extras)
        for key in sorted(installed.dists):
            if key != target and key not in required:
                chain = graph.chain(key, extras[key], target)
                if chain is not None:
                    pulls.append(Pull("", installed.dists[key].name, chain))
    for key in sorted(installed.dists):
        for edge in graph.edges(key, extras[key]):
            if edge.target == target:
                source = installed.dists[key]
                specifier = str(edge.requirement.specifier)
                bounds.append(Bound("requires", f"{source.name} {source.version}", edge.text,
                                    specifier, edge.extra, _contains(specifier, dist.version)))
    return Why(dist.name, dist.version, tuple(pulls), from_lists, tuple(bounds))
