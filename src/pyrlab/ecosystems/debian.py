"""The Debian ecosystem: Debian packages, installed with apt-get."""

from __future__ import annotations

import re
from dataclasses import replace

from pyrlab.ecosystems.base import (
    EXECUTABLE,
    Cache,
    Checks,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
    Entry,
    Grammar,
    Needs,
    Part,
    Pins,
    ProjectView,
    ProxyView,
    Queries,
    container_file,
    lines,
)

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
                "list the package without one, for the image's own architecture")
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
    parse_line=_parse_deb,
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
CONTENTS = Contents()

# -- outdated -----------------------------------------------------------------------------
QUERIES = Queries()

# -- pins -------------------------------------------------------------------------------------
PINS = Pins()

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
