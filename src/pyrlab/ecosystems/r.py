"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pyrlab import proc
from pyrlab.ecosystems import debian
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
    mark_matches,
)
from pyrlab.errors import Problem

# -- grammar --------------------------------------------------------------------------------
GRAMMAR = Grammar()

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


def _lock_problems(entries: Sequence[ListedEntry], locked: Locked, where: str,
                   compare: Callable[[str, str], int]) -> Iterator[Problem]:
    def allows(entry: ListedEntry, version: str) -> bool:
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


def r_wanted(entries: Sequence[ListedEntry], packages: Sequence[Any]) -> dict[str, Listed]:
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
    marks="r",
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
