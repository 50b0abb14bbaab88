"""The Debian ecosystem: Debian packages, installed with apt-get."""

from __future__ import annotations

from pyrlab.ecosystems.base import (
    EXECUTABLE,
    Cache,
    Checks,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
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
GRAMMAR = Grammar()

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
    own = project.lists[image].debs
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
