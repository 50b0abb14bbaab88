"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

from __future__ import annotations

from pyrlab.credentials import has_credentials, mask_url
from pyrlab.ecosystems.base import (
    EXECUTABLE,
    REGULAR,
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
from pyrlab.ecosystems.debian import APT_CACHES, APT_PROXY_SECRET, apt_net_files
from pyrlab.keys import CRAN_DEBIAN, load_key

# -- grammar --------------------------------------------------------------------------------
GRAMMAR = Grammar()

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
    if project.config.images[name].r is None:
        return Needs()
    return Needs(debs=("r-base-core", "r-base-dev"), deb_sources=_r_apt_sources(project, name))


def _r_apt_sources(project: ProjectView, name: str) -> dict[str, bytes]:
    """The apt repository R comes from, when it is not Debian's own."""
    if project.config.images[name].r != "cran":
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
    entries = project.lists[name].r_packages
    if not entries and image.r is None:
        return Part(render=False)
    apt, cran = [], []
    for entry in entries:
        # A version (==, >=) can only be honoured by the CRAN-like repository.
        source = entry.source or ("cran" if entry.version else image.r_source)
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
                   for e in project.lists[image].r_packages
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
