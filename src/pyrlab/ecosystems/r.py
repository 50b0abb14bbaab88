"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from pyrlab import proc
from pyrlab.credentials import has_credentials, mask_url
from pyrlab.ecosystems import debian
from pyrlab.ecosystems.base import (
    EXECUTABLE,
    NET_ENV,
    REGULAR,
    Answer,
    Cache,
    Checks,
    ConfigView,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
    Entry,
    Finding,
    Found,
    Grammar,
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
    container_file,
    limited_to_platforms,
    lines,
    mark_matches,
    sign,
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
    parse_line=limited_to_platforms(_parse_r),
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
# Where an R package came from: Debian's r-cran-* packages (and R's recommended ones), a
# CRAN-like repository, or a version pinned with `==` (served from the repository's Archive
# when it is not the current one).
RSource = Literal["debian", "cran", "archive"]
RPKG_SOURCES: tuple[RSource, ...] = get_args(RSource)
# Library folders of R as Debian packages it; everything else is what pyrlab installed.
DEBIAN_R_LIBRARIES = ("/usr/lib/R/site-library", "/usr/lib/R/library")


@dataclass(frozen=True)
class RPkg:
    name: str  # as R spells it: R package names are case-sensitive
    version: str
    source: RSource

    @property
    def origin(self) -> str:
        return self.source


def _from_manifest(top: Mapping[str, object], reader: ManifestReader, pinned: frozenset[str],
                   platform: Platform) -> Found[RPkg]:
    """The collector's `r` object: R's version and its packages; those in pyrlab's own
    library that the host installed as `name==version` pins (`pinned`) get the source
    "archive"."""
    key = ECOSYSTEM.manifest_key
    value = top.get(key)
    if value is None:
        return Found((), {"r": ""})
    r = reader.mapping(value, key)
    if r is None:
        return Found((), {"r": ""})
    version = reader.string(r, "version", key)
    if not version:
        reader.problem(f"{key}.version", "empty")
    packages = []
    fields = ("name", "version", "libpath", "repository")
    for name, pkg_version, lib_path, _repository in reader.rows(
            r.get("packages"), f"{key}.packages", fields, 2):
        source: RSource
        if lib_path.rstrip("/") in DEBIAN_R_LIBRARIES:
            source = "debian"
        else:
            source = "archive" if name in pinned else "cran"
        packages.append(RPkg(name, pkg_version, source))
    return Found(reader.unique(packages, f"{key}.packages"), {"r": version})


def _parse_lock_value(name: str, value: str) -> RPkg | str | None:
    parts = value.split(" ")
    if not value.strip():
        return f"'{name}' has no version"
    if len(parts) != 2 or not parts[0]:
        return None
    source = parts[1]
    if source not in RPKG_SOURCES:
        return f"'{name}': unknown source '{source}' (expected {', '.join(RPKG_SOURCES)})"
    return RPkg(name, parts[0], source)


_COMPARABLE_VERSION_RE = re.compile(r"^[0-9]+([.-][0-9]+)*$")


def compare_r(a: str, b: str) -> int:
    """R's order: integer components, as package_version() reads them."""
    if not (_COMPARABLE_VERSION_RE.match(a) and _COMPARABLE_VERSION_RE.match(b)):
        return sign(a, b)
    return sign([int(x) for x in re.split(r"[.-]", a)], [int(x) for x in re.split(r"[.-]", b)])


CONTENTS = Contents[RPkg](
    read_manifest=_from_manifest,
    lock_value=lambda package: f"{package.version} {package.source}",
    parse_lock_value=_parse_lock_value,
    value_shape=f'"VERSION SOURCE" (SOURCE: {", ".join(RPKG_SOURCES)})',
    compare=compare_r,
    origin_header="source",
    shown=lambda version, source: f"{version} {source}",
    purl=lambda package, facts: Purl(type="cran", name=package.name, version=package.version),
    lock_meta=(("r-version", "r"),),
    diff_meta=(("r", "r"),),
    pinned_meta="pinned_r",
)

# -- outdated -----------------------------------------------------------------------------
def r_available(secret_dir: str) -> tuple[str, ...]:
    """`available.packages()` in an R session of the image, whose Rprofile.site names the
    configured repository; one with credentials is not there: it is a build secret. R only
    warns when the index cannot be read: that is an error here."""
    return (NET_ENV, "Rscript",
            "-e", f'f <- "{secret_dir}/repos.txt"',
            "-e", "if (file.exists(f)) options(repos = c(CRAN = readLines(f)[[1L]]))",
            "-e", "a <- available.packages()",
            "-e", ('if (!nrow(a)) stop("cannot read the index of ", '
                   'sub("//[^/@]*@", "//***@", getOption("repos")))'),
            "-e", 'writeLines(paste(a[, "Package"], a[, "Version"]))')


def r_available_versions(output: str) -> Answer:
    """{package: version} of the repository's index, as r_available prints it."""
    versions = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2:
            versions[parts[0]] = parts[1]
    return Answer(versions)


def _outdated(files: Collection[str], packages: tuple[RPkg, ...], secret_dir: str,
              platform: Platform) -> Query | None:
    # r-cran-* packages are Debian's; those pinned with `==` stay where they are.
    if not any(package.source == "cran" for package in packages):
        return None
    return Query(r_available(secret_dir), {"bin": "bin"}, r_available_versions)


def _newer(package: RPkg, available: Mapping[str, str]) -> str | None:
    version = available.get(package.name)
    if version and package.source == "cran" and compare_r(version, package.version) > 0:
        return version
    return None


# For `pyrlab why` (contents/dependencies.py): one line per package R would load (the first
# of each name in .libPaths() order): NAME, VERSION, Depends, Imports, LinkingTo,
# tab-separated, a field's line breaks as spaces.
R_DEPENDENCIES = (
    "Rscript", "--vanilla", "-e",
    ('ip <- installed.packages(noCache = TRUE); ip <- ip[!duplicated(ip[, "Package"]), , '
     'drop = FALSE]; f <- function(x) gsub("[[:space:]]+", " ", ifelse(is.na(x), "", x)); '
     'cat(paste(ip[, "Package"], ip[, "Version"], f(ip[, "Depends"]), f(ip[, "Imports"]), '
     'f(ip[, "LinkingTo"]), sep = "\\t"), sep = "\\n")'))

QUERIES = Queries(outdated=_outdated, newer=_newer)

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
            judged.append(finding._replace(verdict="known",
                                                 note=f"a known failure ({key(finding.name)})"))
        elif finding.error:
            judged.append(finding._replace(
                note=f"fails otherwise than {key(finding.name)} expects ({mark!r})"))
        else:
            judged.append(finding._replace(
                verdict="fixed",
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
