"""The platforms pyrlab builds images for, and what each tool calls them.

A platform is written as the engines write it, OS/ARCH: "linux/amd64", "linux/arm64".
`parse` takes what a user may write (`linux/arm64/v8`, `aarch64`, `x86_64`) and answers that
one spelling, which config, lock and names use; `SUPPORTED` are the ones pyrlab builds.
Each has a token (its place in names and cache ids), a Debian architecture (dpkg's), a
qemu name (binfmt_misc's `qemu-NAME` handler, `uname -m` inside) and Go's GOARCH (what an
image's configuration says).

At the bottom of the layers: it imports nothing of pyrlab, so that the config, the
ecosystems, the engines and rootfs.py can all speak of platforms.
"""

from __future__ import annotations

import platform as _host
from typing import NamedTuple

# A target platform as the engines write it ("linux/amd64"). NATIVE is the engine's own,
# unresolved: what every caller means when it names none (today's builds, the host's
# names and hashes); a platform in data (an inventory, a lock section) is a concrete one.
Platform = str
NATIVE: Platform = ""

OS = "linux"  # pyrlab's images are Linux images, on a Mac too (Docker Desktop's VM)


class Arch(NamedTuple):
    """What one supported platform is called by each tool."""

    token: str  # in local names and cache ids (`pylab/arm64`); the engines' Architecture
    debian: str  # dpkg --print-architecture
    qemu: str  # uname -m inside; binfmt_misc's handler is qemu-<qemu>


ARCHES: dict[Platform, Arch] = {
    "linux/amd64": Arch(token="amd64", debian="amd64", qemu="x86_64"),
    "linux/arm64": Arch(token="arm64", debian="arm64", qemu="aarch64"),
}
SUPPORTED: tuple[Platform, ...] = tuple(ARCHES)
ALL = "all"  # `build --platform all`: every platform of [build] platforms

# `uname -m` (Python's platform.machine()) → Go's GOARCH, which the engines and image
# configurations use. More than SUPPORTED: the host may be one pyrlab only builds natively.
GOARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv7l": "arm",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}
# Variants that name the architecture's baseline, which the engines leave out.
_BASELINE_VARIANTS = {"amd64": {"v1"}, "arm64": {"v8", "8", "v8.0"}}
_KNOWN_ARCHES = frozenset(GOARCH.values())
_KNOWN_OSES = frozenset({OS, "darwin", "windows", "freebsd"})


class UnknownPlatform(ValueError):
    """Text that is no platform pyrlab builds for; str() says why. `misspelt`: it names no
    platform at all (the caller may guess, with config.guess, which one was meant)."""

    def __init__(self, message: str, *, misspelt: bool = False) -> None:
        super().__init__(message)
        self.misspelt = misspelt


def goarch(machine: str) -> str:
    """Go's name of a machine (`uname -m`): x86_64 → amd64, aarch64 → arm64; a name it
    does not know as it is (lower case)."""
    machine = machine.lower()
    return GOARCH.get(machine, machine)


def host_platform() -> Platform:
    """This machine's platform, from Python's platform.machine() (on a Mac, the platform
    of the Linux VM that Docker Desktop runs: arm64 on Apple silicon)."""
    return f"{OS}/{goarch(_host.machine())}"


def normalize(text: str) -> Platform:
    """One spelling of any platform: lower case, `linux/` added to a bare architecture,
    Go's architecture names, the baseline variant left out (`linux/arm64/v8` →
    `linux/arm64`, `aarch64` → `linux/arm64`). Not checked against SUPPORTED (an engine's
    own may be any); UnknownPlatform only for text that is no OS/ARCH[/VARIANT]."""
    parts = text.strip().lower().split("/")
    if len(parts) == 1:
        parts.insert(0, OS)
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise UnknownPlatform(f"expected a platform such as {SUPPORTED[-1]} (OS/ARCH), "
                              f"got {text!r}", misspelt=True)
    os_name, arch, *variant = parts
    arch = GOARCH.get(arch, arch)
    if variant and variant[0] in _BASELINE_VARIANTS.get(arch, ()):
        variant = []
    return "/".join([os_name, arch, *variant])


def parse(text: str) -> Platform:
    """A platform pyrlab builds for, as normalize writes it; UnknownPlatform saying why
    otherwise. The caller may add a guess (config.guess) for a misspelt one."""
    found = normalize(text)
    if found in ARCHES:
        return found
    os_name, arch = found.split("/")[:2]
    if os_name not in _KNOWN_OSES:
        raise UnknownPlatform(f"unknown platform {text!r}: {_listed()}", misspelt=True)
    if os_name != OS:
        raise UnknownPlatform(f"{found} is not a Linux platform: pyrlab's images are Linux "
                              "images, on a Mac too (Docker Desktop runs them in its Linux "
                              f"VM); {_listed()}")
    if arch in _KNOWN_ARCHES:
        raise UnknownPlatform(f"{found} is not supported: {_listed()}")
    raise UnknownPlatform(f"unknown platform {text!r}: {_listed()}", misspelt=True)


def known_spellings() -> dict[str, Platform]:
    """What a guess at a misspelt platform may match: each supported platform, its bare
    architecture and its `uname -m` name → the platform."""
    spellings: dict[str, Platform] = {}
    for name, arch in ARCHES.items():
        spellings.update({name: name, arch.token: name, arch.qemu: name})
    return spellings


def token(platform: Platform) -> str:
    """Its word in local names and cache ids: linux/arm64 → arm64 (KeyError for a
    platform not in SUPPORTED)."""
    return ARCHES[platform].token


def debian_arch(platform: Platform) -> str:
    """Debian's architecture: linux/arm64 → arm64."""
    return ARCHES[platform].debian


def qemu_name(platform: Platform) -> str:
    """qemu-user's name, and `uname -m` inside: linux/arm64 → aarch64."""
    return ARCHES[platform].qemu


def is_native(platform: Platform, host: Platform) -> bool:
    """Whether images for `platform` are named, rendered and hashed as today's: NATIVE
    (none named) or the engine's own (`host`, from Engine.platform())."""
    return platform in (NATIVE, host)


def platform_ref(ref: str, platform: Platform, host: Platform) -> str:
    """The local name of `ref`'s image for `platform`: the host's (or NATIVE) is `ref` as
    it is; another platform's adds its token as the repository's last path component,
    before any tag or digest (`pyrlab/debian:trixie` → `pyrlab/debian/arm64:trixie`). A
    path component, not a tag suffix: tags (`latest`, `previous`, base tags) keep their
    meaning on every platform, and no image name can hold a `/` to clash with it."""
    if is_native(platform, host):
        return ref
    name, sep, pinned = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:  # a tag, not a registry's port
        name, tag = name[:colon], name[colon:]
    else:
        tag = ""
    return f"{name}/{token(platform)}{tag}{sep}{pinned}"


def platform_tag(ref: str, platform: Platform) -> str:
    """The registry tag of `ref`'s image for `platform` in a push of several platforms:
    REPOSITORY:TAG-ARCH (`team/pylab:latest` → `team/pylab:latest-arm64`), while
    REPOSITORY:TAG names the index of them all; `:latest` where `ref` has no tag. A ref
    pinned by digest has no such tag: it is returned as it is."""
    if "@" in ref:
        return ref
    slash, colon = ref.rfind("/"), ref.rfind(":")
    tagged = ref if colon > slash else f"{ref}:latest"
    return f"{tagged}-{token(platform)}"


def cache_id(name: str, platform: Platform, host: Platform) -> str:
    """A BuildKit cache mount's id for `platform`: BuildKit keys cache mounts by id alone,
    not by platform, so another platform's (wheels, compiled R packages, the uv binary,
    apt's lists) get their own; the host's keeps `name`, so native renders do not move."""
    return name if is_native(platform, host) else f"{name}-{token(platform)}"


def _listed() -> str:
    return "pyrlab builds for " + " and ".join(SUPPORTED)
