"""The Python ecosystem: Python packages (distributions), installed with uv into /opt/venv."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from pyrlab import proc
from pyrlab.ecosystems.base import (
    Checks,
    Contents,
    Context,
    Ecosystem,
    Finding,
    Grammar,
    Listed,
    ListedEntry,
    Locked,
    MarkKey,
    PinMode,
    Pins,
    Platform,
    Queries,
    Reach,
    Retest,
    Verdict,
    json_rows,
    mark_matches,
)
from pyrlab.errors import Problem

if TYPE_CHECKING:
    from packaging.requirements import Requirement

# -- grammar --------------------------------------------------------------------------------
GRAMMAR = Grammar()

# -- build context ----------------------------------------------------------------------------
CONTEXT = Context()

# -- contents ---------------------------------------------------------------------------------
CONTENTS = Contents()

# -- outdated -----------------------------------------------------------------------------
QUERIES = Queries()

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


def _lock_problems(entries: Sequence[ListedEntry], locked: Locked, where: str,
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


def python_lines(entries: Sequence[ListedEntry], dists: Sequence[Any]) -> dict[str, Listed]:
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
    marks="python",
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
