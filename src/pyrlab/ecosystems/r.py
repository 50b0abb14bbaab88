"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pyrlab import proc
from pyrlab.ecosystems import debian
from pyrlab.ecosystems.base import (
    Checks,
    ConfigView,
    Contents,
    Context,
    Ecosystem,
    Entry,
    Finding,
    Grammar,
    Listed,
    Locked,
    MarkKey,
    PinMode,
    Pins,
    Platform,
    Queries,
    mark_matches,
)
from pyrlab.errors import Problem

# -- grammar --------------------------------------------------------------------------------
# An R package name (also what [test.known_failures.r] takes).
R_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]\Z")
R_VERSION_RE = re.compile(r"^[0-9]+([.-][0-9]+)+$")
R_SOURCES = ("apt", "cran")
_R_OPERATOR_RE = re.compile(r"^(==|>=|<=|!=|~=|=|<|>)\s*(.*)$")
_R_NAME_END_RE = re.compile(r"[=<>!~ \t]")


def _parse_r(line: str, where: str) -> Entry | str:
    if line.startswith("-"):
        return "options are not allowed in an R list"
    source = None
    if ":" in line:
        prefix, line = line.split(":", 1)
        if prefix not in R_SOURCES:
            return f"unknown source '{prefix}:' (use apt: or cran:)"
        source = prefix
        line = line.strip(" \t")
    name = _R_NAME_END_RE.split(line, maxsplit=1)[0]
    rest = line[len(name):].strip(" \t")
    if not R_NAME_RE.match(name):
        return f"not a valid R package name: '{name}'" if name else "missing R package name"
    if not rest:
        return Entry(ECOSYSTEM.name, name, name, None, source, where)
    operator = _R_OPERATOR_RE.match(rest)
    if operator is None:
        return f"unexpected text after the package name: '{rest}'"
    op, version = operator.group(1), operator.group(2)
    if op not in ("==", ">="):
        return f"unsupported version operator '{op}' (use == or >=)"
    if not version:
        return f"missing version after '{op}'"
    if not R_VERSION_RE.match(version):
        return f"not a valid R version: '{version}'"
    if source == "apt":
        return "version pins are only supported for CRAN packages"
    return Entry(ECOSYSTEM.name, name, f"{name}{op}{version}", version, source, where)


def _r_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[.-]", text))


def _merge_r(first: Entry, other: Entry) -> Entry | str:
    """One source at most; an exact version must meet every minimum; minimums keep the
    highest."""
    if first.source != other.source and first.source and other.source:
        return f"one package from two sources ({first.source}: and {other.source}:)"
    if first.source == other.source and other.text == first.text:
        return first
    source = first.source or other.source
    exact = [e for e in (first, other) if e.version and "==" in e.text]
    if len({e.version for e in exact}) > 1:
        return "two different pinned versions"
    minimums = [e for e in (first, other) if e.version and ">=" in e.text]
    if exact:
        kept = exact[0]
        assert kept.version is not None
        if any(_r_version(kept.version) < _r_version(m.version or "0") for m in minimums):
            return f"{kept.version} is older than the minimum asked for"
    elif minimums:
        kept = max(minimums, key=lambda e: _r_version(e.version or "0"))
    else:
        kept = first
    return replace(kept, source=source, where=first.where)


def _has_r(config: ConfigView, name: str) -> bool:
    """Whether the image or an ancestor installs R (images.NAME.r)."""
    node: str | None = name
    seen: set[str] = set()  # the graph may still hold a cycle or an unknown parent here
    while node is not None and node in config.images and node not in seen:
        if config.images[node].value("r") is not None:
            return True
        seen.add(node)
        node = config.images[node].parent
    return node is not None  # a broken chain is reported as such, not as "no R"


def _needs_r(config: ConfigView, image: str) -> str | None:
    if _has_r(config, image):
        return None
    return "this image has no R: set r = \"debian\" on it or an ancestor"


GRAMMAR = Grammar(
    parse_line=_parse_r,
    merge=_merge_r,
    image_problem=_needs_r,
    keys=("images.*.r", "images.*.r_source", "proxy.cran", "test.known_failures.r"),
    count_label="R",
)

# -- build context ----------------------------------------------------------------------------
CONTEXT = Context()

# -- contents ---------------------------------------------------------------------------------
CONTENTS = Contents()

# -- outdated -----------------------------------------------------------------------------
QUERIES = Queries()

# -- pins -------------------------------------------------------------------------------------
# r-install's pins folder, for "exact": cran.txt (NAME==VERSION, the packages from the
# CRAN-like repository: r-install.R fetches an older one from its Archive, and fails before
# installing anything when the repository has it nowhere) and debs.txt, Debian's pins (its
# r-cran-* packages come from apt); "fresh" as Debian's.
def _pin_files(mode: PinMode, locked: Locked, platform: Platform) -> dict[str, bytes]:
    cran = "".join(f"{p.name}=={p.version}\n" for p in locked.of(ECOSYSTEM.name)
                   if p.source != "debian")
    fresh = {"fresh": b""} if mode == "fresh" else {}
    return {"debs.txt": debian.pins_text(locked.of(debian.ECOSYSTEM.name)),
            "cran.txt": cran.encode(), **fresh}


def _lock_problems(entries: Sequence[Entry], locked: Locked, where: str,
                   compare: Callable[[str, str], int]) -> Iterator[Problem]:
    def allows(entry: Entry, version: str) -> bool:
        """NAME>=V (a minimum) allows a newer locked version; NAME==V only V."""
        if entry.version is None:
            return True
        order = compare(version, entry.version)
        return order >= 0 and (order == 0 or not entry.text.endswith(f"=={entry.version}"))

    return debian.list_problems(entries, locked.of(ECOSYSTEM.name), where, allows)


def _agrees(package: Any) -> object:
    """An R package's "cran" and "archive" are the same repository (the version is current
    there, or in its Archive: which one depends on the day and on whether the list pins
    it), so only Debian's differs."""
    return (package.name, package.version, package.source == "debian")


def _described(package: Any) -> str:
    return f"{package.version} ({package.origin})"


PINS = Pins(
    script="r-install",
    files=_pin_files,
    problems=_lock_problems,
    agrees=_agrees,
    described=_described,
)

# -- checks -----------------------------------------------------------------------------------
# Every listed R package is attached with library(), all in one Rscript; marks
# (test.known_failures.r) name packages.
RSCRIPT = "Rscript"
# Attaches each package named on the command line; one line per package:
# NAME<TAB>SECONDS<TAB>ERROR (an error's newlines and tabs become spaces).
R_LIBRARY = (
    "for (p in commandArgs(TRUE)) { t <- proc.time()[[3]]; "
    "e <- tryCatch({ suppressPackageStartupMessages(library(p, character.only = TRUE)); '' }, "
    "error = function(e) gsub('[\\t\\r\\n]+', ' ', conditionMessage(e))); "
    "cat(p, '\\t', sprintf('%.3f', proc.time()[[3]] - t), '\\t', e, '\\n', sep = '') }"
)


def r_wanted(entries: Sequence[Entry], packages: Sequence[Any]) -> dict[str, Listed]:
    wanted: dict[str, Listed] = {}
    for entry in entries:
        wanted.setdefault(entry.name, Listed(entry.where))
    return wanted


def _library_command(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [RSCRIPT, "-e", R_LIBRARY, *sorted({name for name, _ in pairs})]


def _judge(answer: proc.Completed, wanted: Mapping[str, Listed], marks: Mapping[str, str],
           key: MarkKey) -> list[Finding]:
    findings = []
    seen = set()
    for line in answer.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] in wanted:
            seen.add(parts[0])
            findings.append(Finding(parts[0], f"library({parts[0]})", float(parts[1]),
                                    parts[2].strip(), wanted[parts[0]].where))
    if len(seen) < len(wanted):
        detail = (answer.stderr or answer.stdout).strip().splitlines()
        why = detail[-1] if detail else f"Rscript exited with code {answer.returncode}"
        findings += [Finding(n, f"library({n})", 0.0, why, wanted[n].where)
                     for n in sorted(wanted) if n not in seen]
    return judge_libraries(findings, marks, key)


def judge_libraries(findings: Iterable[Finding], marks: Mapping[str, str],
                    key: MarkKey) -> list[Finding]:
    """library() findings with the project's marks applied."""
    judged = []
    for finding in findings:
        mark = marks.get(finding.name)
        if mark is None:
            judged.append(finding)
        elif finding.error and mark_matches(mark, finding.error):
            judged.append(dataclasses.replace(finding, verdict="known",
                                              note=f"a known failure ({key(finding.name)})"))
        elif finding.error:
            judged.append(dataclasses.replace(
                finding, note=f"fails otherwise than {key(finding.name)} expects ({mark!r})"))
        else:
            judged.append(dataclasses.replace(
                finding, verdict="fixed",
                note=f"attaches now, though {key(finding.name)} marks it as known to fail"))
    return judged


def _accepts(finding: Finding) -> tuple[str, str] | None:
    return (finding.name, finding.error.strip()) if finding.error else None


CHECKS = Checks(
    label="library",
    counted="R packages",
    passed="attached",
    wanted=r_wanted,
    command=_library_command,
    judge=_judge,
    accepts=_accepts,
    kernel=("IRkernel", "ir"),
)

# -- the whole --------------------------------------------------------------------------------
ECOSYSTEM = Ecosystem(
    name="r",
    title="R packages",
    order=40,
    step="r",
    list_key="r_packages",
    lock_key="r",
    manifest_key="r",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
