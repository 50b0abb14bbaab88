"""The Debian ecosystem: Debian packages, installed with apt-get."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pyrlab.ecosystems.base import (
    ASK_ROOT,
    EXECUTABLE,
    Answer,
    Cache,
    Checks,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
    Entry,
    Found,
    Grammar,
    ImageFacts,
    Locked,
    ManifestReader,
    Needs,
    Part,
    PinMode,
    Pins,
    Platform,
    Preflight,
    ProjectView,
    ProxyView,
    Purl,
    Queries,
    Query,
    container_file,
    limited_to_platforms,
    lines,
    sign,
)
from pyrlab.errors import Problem

# -- grammar --------------------------------------------------------------------------------
DEB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
DEB_VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
DEB_RELEASE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_DEB_SEPARATOR_RE = re.compile(r"[=/]")
# A version relation as Debian's control files and other tools write it (`curl>=8`,
# `curl (>= 8)`, `curl==8`): apt-get takes none of them.
_DEB_RELATION_RE = re.compile(r"^([a-z0-9][a-z0-9+.:-]*)[ \t]*\(?[ \t]*(>=|<=|>>|<<|==|!=|~=|>|<)")
_DEB_ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[^=/]*)")


def _parse_deb(line: str, where: str) -> Entry | str:
    if line.startswith("-"):
        return "options are not allowed in a Debian list"
    relation = _DEB_RELATION_RE.match(line)
    if relation:
        name = relation.group(1).split(":", 1)[0]
        return (f"version operator '{relation.group(2)}' is not supported in a Debian list: "
                f"write '{name}' for the current version or '{name}=VERSION' for an exact one")
    arch = _DEB_ARCH_RE.match(line)
    if arch:
        return (f"architecture qualifiers (`{arch.group(1)}`) are not supported: "
                "list the package without one, for the image's own architecture (limit "
                "it to some with a trailing [amd64] or [!arm64])")
    if any(c in line for c in " \t"):
        return "one package per line, without spaces"
    split = _DEB_SEPARATOR_RE.search(line)
    name, separator, suffix = line, "", ""
    if split:
        name, separator, suffix = line[: split.start()], split.group(), line[split.end():]
    if not DEB_NAME_RE.match(name):
        return f"not a valid Debian package name: '{name}'"
    if name.endswith("-"):  # apt-get reads `foo-` as "remove foo"
        return f"not a valid Debian package name: '{name}' (apt reads a trailing '-' as remove)"
    eco = ECOSYSTEM.name
    if separator == "=":
        if not suffix:
            return "missing version after '='"
        if not DEB_VERSION_RE.match(suffix):
            return f"not a valid Debian version: '{suffix}'"
        return Entry(eco, name, f"{name}={suffix}", suffix, None, where)
    if separator == "/":
        if not suffix:
            return "missing release after '/'"
        if not DEB_RELEASE_RE.match(suffix):
            return f"not a valid Debian release: '{suffix}'"
        return Entry(eco, name, f"{name}/{suffix}", None, None, where)
    return Entry(eco, name, name, None, None, where)


def _merge_deb(first: Entry, other: Entry) -> Entry | str:
    """A plain name merges with a version or a release; two of those only when equal."""
    if other.text == first.text:
        return first
    plain = [e for e in (first, other) if e.text == e.name]
    if not plain:
        return "two different versions or releases"
    kept = other if plain[0] is first else first
    return replace(kept, where=first.where)


GRAMMAR = Grammar(
    parse_line=limited_to_platforms(_parse_deb),
    merge=_merge_deb,
    keys=("base.snapshot", "proxy.apt", "proxy.apt_https"),
    base_list=("base_debs.txt",),
    count_label="debs",
)

# -- build context ----------------------------------------------------------------------------
# The apt caches, shared by every step that runs apt (R's too).
APT_CACHES = (Cache("apt-archives", "/var/cache/apt", locked=True),
              Cache("apt-lists", "/var/lib/apt/lists", locked=True))
APT_PROXY_SECRET = "apt-proxy.conf"  # net/<step>/apt-proxy.conf, a build secret
SNAPSHOT_ARCHIVE = "http://snapshot.debian.org/archive"


def snapshot_mirror(snapshot: str, archive: str = "debian") -> str:
    """snapshot.debian.org's URL of `archive` (debian, debian-security) as it was then."""
    return f"{SNAPSHOT_ARCHIVE}/{archive}/{snapshot}"


def snapshot_sources(snapshot: str) -> bytes:
    """[base] snapshot's apt sources (deb822): Debian's main, updates and security suites
    as snapshot.debian.org kept them then. apt-install puts them in place of the image's
    Debian sources (@VERSION_CODENAME@ = the image's release). Their Release files have
    long expired: apt must not check that."""
    stanza = ("Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main\n"
              "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
              "Check-Valid-Until: no\n")
    return (f"# pyrlab.toml [base] snapshot = \"{snapshot}\": Debian as snapshot.debian.org "
            "kept it then.\n"
            + stanza.format(uri=snapshot_mirror(snapshot),
                            suites="@VERSION_CODENAME@ @VERSION_CODENAME@-updates")
            + "\n"
            + stanza.format(uri=snapshot_mirror(snapshot, "debian-security"),
                            suites="@VERSION_CODENAME@-security")).encode()


def apt_net_files(project: ProjectView, proxy: ProxyView) -> dict[str, bytes]:
    """What apt reads of the network settings (net/<step>/): its proxy, [base] snapshot."""
    files = {}
    if proxy.apt:
        # apt.conf string syntax has no escapes; the URL was validated to hold no quotes.
        files[APT_PROXY_SECRET] = (
            f'Acquire::http::Proxy "{proxy.apt}";\n'
            + ("" if proxy.apt_https else f'Acquire::https::Proxy "{proxy.apt}";\n')
        ).encode()
        if proxy.apt_https:
            files["https-via-proxy"] = b"rewrite https:// sources as http://HTTPS/// for the proxy\n"
    if project.config.base.snapshot:
        files["snapshot.sources"] = snapshot_sources(project.config.base.snapshot)
    return files


def _comment(root: bool) -> str:
    return "# Debian packages" + (" (pyrlab's own, then the lists)" if root else "") + "."


def _part(project: ProjectView, image: str, needs: Needs, delta: DeltaView | None) -> Part:
    """system.txt: what pyrlab and the other ecosystems need (before the user's lists);
    debs.txt: the image's list; sources/: the apt sources those needs come from."""
    own = project.lists[image].of(ECOSYSTEM.name)
    if not (needs.debs or own):
        return Part(render=False)
    files = {"system.txt": lines(needs.debs), "debs.txt": lines(e.text for e in own)}
    files.update({f"sources/{name}": content for name, content in needs.deb_sources.items()})
    return Part(render=True, files=files, pins={"debs.txt": b""})  # `build --locked` fills it


CONTEXT = Context(
    script="apt-install",
    part=_part,
    comment=_comment,
    scripts=lambda: {"apt-install": (container_file("apt-install"), EXECUTABLE)},
    caches=APT_CACHES,
    secrets=(APT_PROXY_SECRET,),
    net_files=apt_net_files,
    delta_lists=("system.txt", "debs.txt"),
    env=("DEBIAN_FRONTEND=noninteractive",),
    tools_files=lambda tools: {"system.txt": lines(tools)},
)

# -- contents ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deb:
    name: str  # a package of another architecture than dpkg's own keeps its `:ARCH`
    version: str
    arch: str

    @property
    def origin(self) -> str:
        return self.arch


def _from_manifest(top: Mapping[str, object], reader: ManifestReader, pinned: frozenset[str],
                   platform: Platform) -> Found[Deb]:
    """The collector's `debs` rows, and the OS facts of /etc/os-release."""
    os_release = reader.mapping(top.get("os_release"), "os_release") or {}
    os_version = (reader.string(os_release, "VERSION_ID", "os_release", required=False)
                  or reader.string(os_release, "VERSION_CODENAME", "os_release",
                                   required=False))
    key = ECOSYSTEM.manifest_key
    rows = reader.rows(top.get(key), key, ("name", "version", "arch"), 3)
    facts = {
        "os": reader.string(os_release, "PRETTY_NAME", "os_release", required=False),
        "os_id": reader.string(os_release, "ID", "os_release"),
        "os_version": os_version,
    }
    return Found(reader.unique([Deb(*row) for row in rows], key), facts)


_VALUE_SHAPE = '"VERSION ARCH"'


def _lock_value(deb: Deb) -> str:
    return f"{deb.version} {deb.arch}"


def _parse_lock_value(name: str, value: str) -> Deb | str | None:
    parts = value.split(" ")
    if not value.strip():
        return f"'{name}' has no version"
    if len(parts) != 2 or not all(parts):
        return None
    return Deb(name, parts[0], parts[1])


def _split_version(version: str) -> tuple[int, str, str]:
    """[epoch:]upstream[-revision]; the revision is after the last hyphen."""
    epoch, colon, rest = version.partition(":")
    if not colon or not epoch.isdigit():
        epoch, rest = "0", version
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    return int(epoch), upstream, revision


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _order(char: str) -> int:
    """dpkg's weight of a non-digit: `~` below the end of the string, letters below the rest."""
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating non-digit runs (by `_order`) and digit runs (numeric)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            # The end of a string, and a digit, weigh 0: more than `~`, less than anything else.
            ac = _order(a[i]) if i < len(a) and not _is_digit(a[i]) else 0
            bc = _order(b[j]) if j < len(b) and not _is_digit(b[j]) else 0
            if ac != bc:
                return sign(ac, bc)
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and _is_digit(a[i]):
            i += 1
        while j < len(b) and _is_digit(b[j]):
            j += 1
        difference = sign(int(a[start_i:i] or "0"), int(b[start_j:j] or "0"))
        if difference:
            return difference
    return 0


def compare_deb(a: str, b: str) -> int:
    """Debian version order: dpkg's own algorithm (deb-version(7))."""
    epoch_a, upstream_a, revision_a = _split_version(a)
    epoch_b, upstream_b, revision_b = _split_version(b)
    return (sign(epoch_a, epoch_b) or _compare_part(upstream_a, upstream_b)
            or _compare_part(revision_a, revision_b))


def _purl(deb: Deb, facts: ImageFacts) -> Purl:
    """pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-13 (a foreign-architecture
    package's `:ARCH` is in the qualifier, not the name)."""
    return Purl(type="deb", namespace=facts.os_id, name=deb.name.split(":", 1)[0],
                version=deb.version,
                qualifiers={"arch": deb.arch, "distro": f"{facts.os_id}-{facts.os_version}"})


CONTENTS = Contents[Deb](
    read_manifest=_from_manifest,
    lock_value=_lock_value,
    parse_lock_value=_parse_lock_value,
    value_shape=_VALUE_SHAPE,
    compare=compare_deb,
    origin_header="arch",
    shown=lambda version, arch: f"{version} {arch}",
    origin_in_diff=False,  # an architecture is news only where it changed
    purl=_purl,
    lock_meta=(("os", "os"), ("os-id", "os_id"), ("os-version", "os_version")),
    diff_meta=(("os", "os"),),
)

# -- outdated -----------------------------------------------------------------------------
# `apt-get update` and a simulated `dist-upgrade`, in the image (the script's --upgradable).
APT_UPGRADABLE = (f"{ASK_ROOT}/bin/apt-install", "--upgradable")


def apt_simulation_versions(output: str) -> Answer:
    """{package: version} that apt's simulated upgrade would install over an installed one."""
    versions = {}
    for line in output.splitlines():
        # Inst libc6 [2.41-11] (2.41-12 Debian:13.2/stable [amd64]) []
        parts = line.split()
        if (len(parts) >= 4 and parts[0] == "Inst" and parts[2].startswith("[")
                and parts[3].startswith("(")):
            versions[parts[1]] = parts[3][1:]
    return Answer(versions)


def _outdated(files: Collection[str], packages: tuple[Deb, ...], secret_dir: str,
              platform: Platform) -> Query | None:
    step = ECOSYSTEM.step
    if f"pyrlab/{step}/system.txt" not in files:
        return None
    return Query(APT_UPGRADABLE, {"bin": "bin", f"net/{step}": "net"}, apt_simulation_versions)


def _newer(deb: Deb, available: Mapping[str, str]) -> str | None:
    version = available.get(deb.name) or available.get(deb.name.split(":")[0])
    return version if version and compare_deb(version, deb.version) > 0 else None


QUERIES = Queries(outdated=_outdated, newer=_newer)

# -- pins -------------------------------------------------------------------------------------
# The files of apt-install's pins folder: debs.txt (NAME=VERSION: apt's candidate and the
# list entries' version) for "exact"; "fresh" (`upgrade`) also makes it update its lists
# even when they are recent. A Debian suite keeps one version of a package: nothing to
# prefer.
def deb_pin(deb: Any) -> str | None:
    """NAME=VERSION for apt, or None for a package of a foreign architecture (NAME:ARCH),
    which apt's preferences cannot name alone."""
    return None if ":" in deb.name else f"{deb.name}={deb.version}"


def pins_text(debs: Iterable[Any]) -> bytes:
    """debs.txt: the pins of these Debian packages (R's step pins its r-cran-* by it too)."""
    return "".join(f"{line}\n" for line in map(deb_pin, debs) if line).encode()


def _pin_files(mode: PinMode, locked: Locked, platform: Platform) -> dict[str, bytes]:
    fresh = {"fresh": b""} if mode == "fresh" else {}
    return {"debs.txt": pins_text(locked.of(ECOSYSTEM.name)), **fresh}


def _lock_problems(entries: Sequence[Entry], locked: Locked, where: str,
                   compare: Callable[[str, str], int]) -> Iterator[Problem]:
    return list_problems(entries, locked.of(ECOSYSTEM.name), where,
                         lambda entry, version: entry.version in (None, version))


def list_problems(entries: Iterable[Entry], packages: Iterable[Any], where: str,
                  allows: Callable[[Entry, str], bool]) -> Iterator[Problem]:
    """A list entry the lock lacks, or whose locked version it does not allow (Debian's and
    R's rule; R passes its own `allows`)."""
    locked = {p.name: p for p in packages}
    for entry in entries:
        package = locked.get(entry.name)
        if package is None:
            yield Problem(entry.where, f"{entry.name}: not in {where}")
        elif not allows(entry, package.version):
            yield Problem(entry.where, f"{entry.name}: locked at {package.version}, which "
                          f"'{entry.text}' does not allow")


# `build --locked`'s preflight: apt-install --offered, in a container of the base image.
APT_OFFERED = ("/run/pyrlab/bin/apt-install", "--offered")


def _pinned(debs: Iterable[Any]) -> tuple[Any, ...]:
    """Each locked version apt can be asked for once, by name then version (no foreign
    architecture: see deb_pin)."""
    return tuple(sorted({(d.name, d.version): d for d in debs if deb_pin(d)}.values(),
                        key=lambda d: (d.name, d.version)))


def _unavailable(debs: Sequence[Any], answer: str) -> list[str]:
    wanted: dict[str, set[str]] = {}
    for deb in debs:
        wanted.setdefault(deb.name, set()).add(deb.version)
    return unavailable_debs(wanted, answer)


def unavailable_debs(wanted: Mapping[str, set[str]], answer: str) -> list[str]:
    """Each locked Debian version a --locked build cannot have, from apt-install --offered's
    answer in a container of the base image ("installed NAME VERSION" lines from dpkg, then
    "offered NAME | VERSION | SOURCE" lines from apt-cache madison): neither installed
    there nor offered by the sources. A package the base holds at another version cannot
    be pinned either: apt does not change what it is not asked to install."""
    installed: dict[str, str] = {}
    offered: dict[str, set[str]] = {}
    for line in answer.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "installed":
            package, _, version = rest.strip().partition(" ")
            installed[package] = version.strip()
        elif kind == "offered":
            fields = [field.strip() for field in rest.split("|")]
            if len(fields) >= 3 and not fields[2].endswith("Sources"):
                offered.setdefault(fields[0], set()).add(fields[1])
    problems: list[str] = []
    for package in sorted(wanted):
        for version in sorted(wanted[package]):
            have = installed.get(package)
            if have == version:
                continue
            if have is not None:
                problems.append(f"{package} {version}: the base image has {have}")
            elif version not in offered.get(package, set()):
                others = sorted(offered.get(package, set()))
                problems.append(f"{package} {version}: the sources offer "
                                + (", ".join(others) if others else "no version of it"))
    return problems


def gone_hint(shown: str) -> str:
    """What to do when the mirror has moved on from the lock's Debian versions."""
    return ("`pyrlab build` (without --locked) installs what the sources offer now and "
            f"updates {shown}; `pyrlab upgrade` also re-makes the base. To build these "
            "versions again, take Debian as it was when the lock was made: set [base] "
            'snapshot = "YYYYMMDDTHHMMSSZ" in pyrlab.toml (a time of snapshot.debian.org '
            f"when those versions were current, e.g. of the commit that last changed {shown}) "
            "and run `pyrlab build --locked` again")


PINS = Pins(
    script="apt-install",
    files=_pin_files,
    problems=_lock_problems,
    preflight=Preflight(
        argv=APT_OFFERED,
        mounts=(("bin", "bin"), ("net/apt", "net"), ("apt", "apt"), ("pins/apt", "pins")),
        question="apt which locked Debian versions {ref} can have",
        noun="Debian package",
        pinned=_pinned,
        unavailable=_unavailable,
        hint=gone_hint,
    ),
)

# -- checks -----------------------------------------------------------------------------------
CHECKS = Checks()

# -- the whole --------------------------------------------------------------------------------
ECOSYSTEM = Ecosystem(
    name="debian",
    title="Debian packages",
    order=10,
    step="apt",
    list_key="debs",
    lock_key="debs",
    manifest_key="debs",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
