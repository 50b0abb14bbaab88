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

from collections.abc import Callable, Iterable, Iterator, Mapping

from packaging.requirements import InvalidRequirement, Requirement

from pyrlab.config.lists import Entry
from pyrlab.config.project import Project
from pyrlab.contents.model import ECOSYSTEMS, Deb, Inventory, Package, PyDist, RPkg, sort_key
from pyrlab.contents.versions import compare
from pyrlab.dockerfile.render import PinMode, Pins
from pyrlab.errors import ConfigError, Problem


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
