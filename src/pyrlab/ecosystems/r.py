"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from pyrlab.ecosystems.base import (
    NET_ENV,
    Answer,
    Checks,
    Contents,
    Context,
    Ecosystem,
    Found,
    Grammar,
    ManifestReader,
    Pins,
    Platform,
    Purl,
    Queries,
    Query,
    sign,
)

# -- grammar --------------------------------------------------------------------------------
GRAMMAR = Grammar()

# -- build context ----------------------------------------------------------------------------
CONTEXT = Context()

# -- contents ---------------------------------------------------------------------------------
# Where an R package came from: Debian's r-cran-* packages (and R's recommended ones), a
# CRAN-like repository, or a version pinned with `==` (served from the repository's Archive
# when it is not the current one).
RSource = Literal["debian", "cran", "archive"]
R_SOURCES: tuple[RSource, ...] = get_args(RSource)
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
    if source not in R_SOURCES:
        return f"'{name}': unknown source '{source}' (expected {', '.join(R_SOURCES)})"
    return RPkg(name, parts[0], source)


_R_VERSION_RE = re.compile(r"^[0-9]+([.-][0-9]+)*$")


def compare_r(a: str, b: str) -> int:
    """R's order: integer components, as package_version() reads them."""
    if not (_R_VERSION_RE.match(a) and _R_VERSION_RE.match(b)):
        return sign(a, b)
    return sign([int(x) for x in re.split(r"[.-]", a)], [int(x) for x in re.split(r"[.-]", b)])


CONTENTS = Contents[RPkg](
    read_manifest=_from_manifest,
    lock_value=lambda package: f"{package.version} {package.source}",
    parse_lock_value=_parse_lock_value,
    value_shape=f'"VERSION SOURCE" (SOURCE: {", ".join(R_SOURCES)})',
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
PINS = Pins()

# -- checks -----------------------------------------------------------------------------------
CHECKS = Checks()

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
