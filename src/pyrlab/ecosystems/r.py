"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pyrlab import proc
from pyrlab.credentials import has_credentials, mask_url
from pyrlab.ecosystems import debian
from pyrlab.ecosystems.base import (
    EXECUTABLE,
    REGULAR,
    Cache,
    Checks,
    ConfigView,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
    Entry,
    Finding,
    Grammar,
    Listed,
    Locked,
    MarkKey,
    Needs,
    Part,
    PinMode,
    Pins,
    Platform,
    ProjectView,
    ProxyView,
    Queries,
    container_file,
    lines,
    mark_matches,
)
from pyrlab.ecosystems.debian import APT_CACHES, APT_PROXY_SECRET, apt_net_files
from pyrlab.errors import Problem
from pyrlab.keys import CRAN_DEBIAN, load_key

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
REPOS_SECRET = "repos.txt"  # the build's CRAN-like repository, a build secret

# CRAN's Debian repository for r = "cran"; apt-install fills in the image's release.
CRAN_DEBIAN_SOURCES = """\
# CRAN's Debian repository (the newest R), for r = "cran" in pyrlab.toml.
Types: deb
URIs: https://cloud.r-project.org/bin/linux/debian
Suites: @VERSION_CODENAME@-cran40/
Signed-By: /etc/apt/keyrings/pyrlab-cran-debian.asc
"""


def _needs(project: ProjectView, name: str) -> Needs:
    """R itself, from Debian (or CRAN's Debian repository), in the image that asks for it."""
    if project.config.images[name].value("r") is None:
        return Needs()
    return Needs(debs=("r-base-core", "r-base-dev"), deb_sources=_r_apt_sources(project, name))


def _r_apt_sources(project: ProjectView, name: str) -> dict[str, bytes]:
    """The apt repository R comes from, when it is not Debian's own."""
    if project.config.images[name].value("r") != "cran":
        return {}
    files = {"pyrlab-cran-debian.sources": CRAN_DEBIAN_SOURCES.encode()}
    key = load_key(CRAN_DEBIAN, f"pyrlab.toml: images.{name}.r")
    if key is None:
        # Never fetched from a key server: apt-install stops the build with this message.
        message = (f'images.{name}.r = "cran" needs the signing key of CRAN\'s Debian repository '
                   f"({CRAN_DEBIAN.owner}, fingerprint {CRAN_DEBIAN.fingerprint}), which this "
                   f"pyrlab installation lacks (pyrlab/keys/{CRAN_DEBIAN.file}); use "
                   'r = "debian" or add the key, ASCII-armoured, to the package')
        files["pyrlab-cran-debian.missing-key"] = lines([message])
    else:
        files["pyrlab-cran-debian.asc"] = key
    return files


def _part(project: ProjectView, name: str, needs: Needs, delta: DeltaView | None) -> Part:
    """In the image that installs R (site configuration, start-up check) and in every image
    that installs R packages: apt.txt (r-cran-* binaries), cran.txt (from the CRAN-like
    repository), repos.txt (the build's repository), site-repos.txt (the lab's)."""
    image = project.config.images[name]
    entries = project.lists[name].of(ECOSYSTEM.name)
    if not entries and image.value("r") is None:
        return Part(render=False)
    apt, cran = [], []
    for entry in entries:
        # A version (==, >=) can only be honoured by the CRAN-like repository.
        source = entry.source or ("cran" if entry.version else image.value("r_source"))
        if source == "apt":
            apt.append(f"r-cran-{entry.name.lower()}")
        else:
            cran.append(entry.text)
    files = {"apt.txt": lines(apt), "cran.txt": lines(cran)}
    repository = project.config.proxy.cran
    if repository:
        # With credentials: masked here, the real one is a build secret (`_secret_files`).
        files[REPOS_SECRET] = lines([mask_url(repository)])
        # R's repository in the image (Rprofile.site), for install.packages() in the lab:
        # the build's, unless it has credentials (then R's default, cloud.r-project.org).
        if not has_credentials(repository):
            files["site-repos.txt"] = lines([repository])
    return Part(render=True, files=files, pins={"debs.txt": b"", "cran.txt": b""})


def _secret_files(proxy: ProxyView) -> dict[str, bytes]:
    if proxy.cran and has_credentials(proxy.cran):
        return {REPOS_SECRET: lines([proxy.cran])}
    return {}


def pinned_r_packages(project: ProjectView, name: str) -> list[str]:
    """R packages pinned with `==` in the image or an ancestor: installed at exactly that
    version (from the repository's Archive when it is not the current one)."""
    return sorted({e.name for image in project.order([name])
                   for e in project.lists[image].of(ECOSYSTEM.name)
                   if e.version is not None and e.text.endswith(f"=={e.version}")})


CONTEXT = Context(
    script="r-install",
    part=_part,
    comment=lambda root: ("# R: the configured repository for every R session, then the R "
                          "packages (Debian binaries\n# through apt, the rest from the "
                          "CRAN-like repository), then IRkernel registered."),
    scripts=lambda: {"r-install": (container_file("r-install"), EXECUTABLE),
                     "r-install.R": (container_file("r-install.R"), REGULAR)},
    # R's packages from Debian come through apt: its caches, its network settings.
    caches=(*APT_CACHES, Cache("r", "/var/cache/pyrlab/r")),
    secrets=(APT_PROXY_SECRET, REPOS_SECRET),
    needs=_needs,
    net_files=apt_net_files,
    secret_files=_secret_files,
    meta=lambda project, name: {"pinned_r": pinned_r_packages(project, name)},
    delta_lists=("apt.txt", "cran.txt"),
    # R packages the lab's user installs go to the mounted home (%v: R's x.y).
    lab_env=lambda layer: (f"R_LIBS_USER=~/.local/share/pyrlab/{layer}/R/%v",),
)

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
