"""pyrlab.lock as input to a build: the versions each image's install steps get.

A plain build passes the lock's Python versions as preferences (an entry keeps its locked
version wherever its list line still allows it; new or changed entries resolve). `build
--locked` first checks every list entry against the lock (`check_locked`) and that the
sources still offer every locked Debian version (`unavailable_debs`, asked of apt before
anything is built), then passes the image's whole section: Python versions as constraints,
Debian versions as apt's candidates, R versions as exact wants (r-install.R fetches an
older one from the repository's Archive, and fails before installing anything when the
repository has it nowhere). What a --locked build made is compared with the lock before
any tag moves (`lock_mismatch`): it installs exactly the lock or fails, never drifts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement

from pyrlab.config.lists import Entry
from pyrlab.config.project import Project
from pyrlab.contents.model import ECOSYSTEMS, Deb, Inventory, Package, PyDist, RPkg, sort_key
from pyrlab.contents.versions import compare
from pyrlab.dockerfile.render import PINS_FOLDER, BuildContext
from pyrlab.ecosystems.base import REGULAR
from pyrlab.errors import ConfigError, Problem

# How a build's install steps use pyrlab.lock: "prefer" (a plain build), "exact" (`build
# --locked`), "fresh" (`upgrade`). Each mode's meaning is given here: `Pins` (what each
# step's pins folder holds) and `pins_for` (which of the lock's versions go in it).
PinMode = Literal["prefer", "exact", "fresh"]
# The step script whose RUN line carries the pins' digest on Podman (see `with_pins`).
_PIN_STEP_SCRIPTS = {"python": "uv-install", "apt": "apt-install", "r": "r-install"}


@dataclass(frozen=True)
class Pins:
    """pyrlab.lock's versions for the install steps. Python (uv-install): "prefer", a plain
    build keeps these versions where the lists still allow them (uv's preferences for an
    existing output file); "exact", `build --locked`, used as constraints, so the result is
    exactly these; "fresh", `upgrade`, no versions, and uv revalidates what its cache knows
    of the indexes. Debian and R packages are pinned for "exact" only (a Debian suite keeps
    one version of a package, so there is nothing to prefer)."""

    mode: PinMode
    lines: tuple[str, ...] = ()  # Python: NAME==VERSION or NAME @ URL
    debs: tuple[str, ...] = ()  # NAME=VERSION: apt's candidate and list entries' version
    cran: tuple[str, ...] = ()  # NAME==VERSION: R packages from the CRAN-like repository

    def step_files(self) -> dict[str, dict[str, bytes]]:
        """The files of each step's pins folder."""
        debs = _lines(self.debs)
        # `upgrade`: apt-install updates its lists even when they are recent.
        fresh = {"fresh": b""} if self.mode == "fresh" else {}
        return {"python": {f"{self.mode}.txt": _lines(self.lines)},
                "apt": {"debs.txt": debs, **fresh},
                "r": {"debs.txt": debs, "cran.txt": _lines(self.cran), **fresh}}


def _lines(entries: tuple[str, ...]) -> bytes:
    return "".join(f"{e}\n" for e in entries).encode()


def with_pins(context: BuildContext, pins: Pins) -> BuildContext:
    """The context with `pins` in the pins folder of each install step it has: the same
    input hash, since the pins are outside it."""
    files = dict(context.files)
    dockerfile, mode = files["Dockerfile"]
    for step, step_files in pins.step_files().items():
        folder = f"{PINS_FOLDER}/{step}/"
        if not any(path.startswith(folder) for path in files):
            continue  # the image has no such step
        for path in [p for p in files if p.startswith(folder)]:
            del files[path]
        digest = hashlib.sha256(f"{pins.mode}\0".encode())
        for fname, content in sorted(step_files.items()):
            files[folder + fname] = (content, REGULAR)
            digest.update(f"{fname}\0{len(content)}\0".encode() + content)
        line = f"/run/pyrlab/bin/{_PIN_STEP_SCRIPTS[step]} # inputs ".encode()
        if line in dockerfile:
            # RenderOptions.run_input_keys (Podman): the step's key must see the pins too,
            # or a cached layer with other versions would be reused.
            dockerfile = dockerfile.replace(line, line + f"pins {digest.hexdigest()[:16]} ".encode())
    files["Dockerfile"] = (dockerfile, mode)
    return BuildContext(context.image, dict(sorted(files.items())), context.input_hash)


def pin_line(dist: PyDist) -> str:
    return f"{dist.name} @ {dist.url}" if dist.url else f"{dist.name}=={dist.version}"


def deb_pin(deb: Deb) -> str | None:
    """NAME=VERSION for apt, or None for a package of a foreign architecture (NAME:ARCH),
    which apt's preferences cannot name alone."""
    return None if ":" in deb.name else f"{deb.name}={deb.version}"


def pins_for(project: Project, name: str, lock: Mapping[str, Inventory],
             mode: PinMode) -> Pins:
    """The pins of one image. "exact": its own section, every ecosystem. "prefer": Python
    from its own section, then its ancestors' for what that lacks (a new image keeps what
    its parent holds). "fresh": none."""
    if mode == "fresh":
        return Pins(mode)
    if mode == "exact":
        section = lock.get(name)
        if section is None:
            return Pins(mode)
        debs = tuple(line for line in map(deb_pin, section.debs) if line)
        cran = tuple(f"{p.name}=={p.version}" for p in section.r if p.source != "debian")
        return Pins(mode, tuple(pin_line(d) for d in section.python), debs, cran)
    chosen: dict[str, PyDist] = {}
    for ancestor in project.order([name])[::-1]:
        inventory = lock.get(ancestor)
        for dist in inventory.python if inventory else ():
            chosen.setdefault(dist.name, dist)
    return Pins(mode, tuple(pin_line(d) for _, d in sorted(chosen.items())))


def _applies(requirement: Requirement, inventory: Inventory) -> bool:
    if requirement.marker is None:
        return True
    python = inventory.meta.python
    short = ".".join(python.split(".")[:2])
    return requirement.marker.evaluate({"python_version": short, "python_full_version": python})


def check_locked(project: Project, names: Iterable[str], lock: Mapping[str, Inventory],
                 shown: str) -> None:
    """ConfigError naming FILE:LINE and the package for every list entry (Python, Debian,
    R) the lock cannot satisfy: not in the image's section, or locked at a version (or URL)
    the entry does not allow. A loosened entry the locked version satisfies is fine."""
    problems: list[Problem] = []
    for name in names:
        lists = project.lists[name]
        if not (lists.requirements or lists.debs or lists.r_packages):
            continue
        inventory = lock.get(name)
        if inventory is None:
            problems.append(Problem(shown, f"no section for the image '{name}': build it "
                                    "without --locked first"))
            continue
        where = f"{shown} [images.{name}]"
        problems += _python_problems(lists.requirements, inventory, where)
        problems += _deb_problems(lists.debs, inventory, where)
        problems += _r_problems(lists.r_packages, inventory, where)
    if problems:
        raise ConfigError(problems, hint="`pyrlab build` (without --locked) resolves the lists "
                          f"again and updates {shown}")


def _python_problems(entries: Iterable[Entry], inventory: Inventory,
                     where: str) -> Iterator[Problem]:
    locked = {d.name: d for d in inventory.python}
    for entry in entries:
        try:
            requirement = Requirement(entry.text)
        except InvalidRequirement:  # a bare URL line: its name is known only after a build
            yield Problem(entry.where, f"{entry.text}: a URL without #egg=NAME cannot be "
                          "checked against the lock")
            continue
        if not _applies(requirement, inventory):
            continue
        dist = locked.get(entry.name)
        if dist is None:
            yield Problem(entry.where, f"{entry.name}: not in {where}")
        elif requirement.url and requirement.url != dist.url:
            yield Problem(entry.where, f"{entry.name}: locked from "
                          f"{dist.url or 'the index'}, not {requirement.url}")
        elif not requirement.specifier.contains(dist.version, prereleases=True):
            yield Problem(entry.where, f"{entry.name}: locked at {dist.version}, which "
                          f"'{entry.text}' does not allow")


def _deb_problems(entries: Iterable[Entry], inventory: Inventory,
                  where: str) -> Iterator[Problem]:
    return _list_problems(entries, inventory.debs, where,
                          lambda entry, version: entry.version in (None, version))


def _r_problems(entries: Iterable[Entry], inventory: Inventory,
                where: str) -> Iterator[Problem]:
    def allows(entry: Entry, version: str) -> bool:
        if entry.version is None:
            return True
        order = compare("r", version, entry.version)
        return order >= 0 and (order == 0 or not entry.text.endswith(f"=={entry.version}"))

    return _list_problems(entries, inventory.r, where, allows)


def _list_problems(entries: Iterable[Entry], packages: Iterable[Deb | RPkg], where: str,
                   allows: Callable[[Entry, str], bool]) -> Iterator[Problem]:
    """A Debian or R list entry the lock lacks, or whose locked version it does not allow."""
    locked = {p.name: p for p in packages}
    for entry in entries:
        package = locked.get(entry.name)
        if package is None:
            yield Problem(entry.where, f"{entry.name}: not in {where}")
        elif not allows(entry, package.version):
            yield Problem(entry.where, f"{entry.name}: locked at {package.version}, which "
                          f"'{entry.text}' does not allow")


def differs_from_lock(image: Inventory, section: Inventory | None) -> str | None:
    """What an image holds that its lock section does not say (every ecosystem, with both
    versions), or None when they agree or there is no section."""
    if section is None:
        return None
    parts: list[str] = []
    for ecosystem in ECOSYSTEMS:
        have = {p.name: p for p in image.packages(ecosystem)}
        want = {p.name: p for p in section.packages(ecosystem)}
        names = sorted((n for n in set(have) | set(want)
                        if _same(have.get(n)) != _same(want.get(n))), key=sort_key)
        if not names:
            continue
        shown = [f"{n} {_described(want.get(n))} in the lock, {_described(have.get(n))} "
                 "in the image" for n in names[:5]]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        parts.append(f"{ecosystem}: {'; '.join(shown)}{more}")
    return " | ".join(parts) or None


def _same(package: Package | None) -> object:
    """What must agree between an image and its lock. An R package's "cran" and "archive"
    are the same repository (the version is current there, or in its Archive: which one
    depends on the day and on whether the list pins it), so only Debian's differs."""
    if isinstance(package, RPkg):
        return (package.name, package.version, package.source == "debian")
    return package


def _described(package: Package | None) -> str:
    if package is None:
        return "absent"
    return f"{package.version}" + (f" ({package.origin})" if isinstance(package, RPkg)
                                   or (isinstance(package, PyDist) and package.url) else "")


def locked_debs(names: Iterable[str], lock: Mapping[str, Inventory]) -> dict[str, set[str]]:
    """The Debian versions a --locked build of these images pins: {name: versions}."""
    wanted: dict[str, set[str]] = {}
    for name in names:
        section = lock.get(name)
        for deb in section.debs if section else ():
            if deb_pin(deb):
                wanted.setdefault(deb.name, set()).add(deb.version)
    return wanted


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


def locked_base_ref(project: Project, lock: Mapping[str, Inventory]) -> str | None:
    """The registry base (REPOSITORY@sha256:…) pyrlab.lock's root images were built on, for
    `build --locked` to use; None for a bootstrapped base (its ID is the same everywhere)
    or when the lock names no digest. Root images on two digests: the first by name (a
    --locked build of both starts from one base)."""
    if project.config.base.bootstrap:
        return None
    found = sorted({lock[name].meta.base_id for name in project.config.images
                    if project.config.images[name].parent is None and name in lock
                    and "@sha256:" in lock[name].meta.base_id})
    return found[0] if found else None
