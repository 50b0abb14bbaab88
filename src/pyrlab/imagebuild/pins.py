"""pyrlab.lock as input to a build: the Python versions each image's install step gets.

A plain build passes the lock's versions as preferences (an entry keeps its locked version
wherever its list line still allows it; new or changed entries resolve); `build --locked`
first checks every list entry against the lock, then passes the image's locked versions as
constraints, so that the result is exactly the lock. Debian and R packages are not pinned:
`--locked` says so by name (see `unpinned`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement

from pyrlab.config.project import Project
from pyrlab.dockerfile.render import PinMode, Pins
from pyrlab.errors import ConfigError, Problem
from pyrlab.inventory.model import Inventory, PyDist


def pin_line(dist: PyDist) -> str:
    return f"{dist.name} @ {dist.url}" if dist.url else f"{dist.name}=={dist.version}"


def pins_for(project: Project, name: str, lock: Mapping[str, Inventory],
             mode: PinMode) -> Pins:
    """The pins of one image. "exact": its own section. "prefer": its own section, then its
    ancestors' for what that lacks (a new image keeps what its parent holds). "fresh": none."""
    if mode == "fresh":
        return Pins(mode)
    sections = [name] if mode == "exact" else project.order([name])[::-1]
    chosen: dict[str, PyDist] = {}
    for section in sections:
        inventory = lock.get(section)
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
    """ConfigError naming FILE:LINE and the package for every Python list entry the lock
    cannot satisfy: not in the image's section, or locked at a version (or URL) the entry
    does not allow. A loosened entry the locked version satisfies is fine."""
    problems: list[Problem] = []
    for name in names:
        entries = project.lists[name].requirements
        if not entries:
            continue
        inventory = lock.get(name)
        if inventory is None:
            problems.append(Problem(shown, f"no section for the image '{name}': build it "
                                    "without --locked first"))
            continue
        locked = {d.name: d for d in inventory.python}
        for entry in entries:
            try:
                requirement = Requirement(entry.text)
            except InvalidRequirement:  # a bare URL line: its name is known only after a build
                problems.append(Problem(entry.where, f"{entry.text}: a URL without #egg=NAME "
                                        "cannot be checked against the lock"))
                continue
            if not _applies(requirement, inventory):
                continue
            dist = locked.get(entry.name)
            if dist is None:
                problems.append(Problem(entry.where, f"{entry.name}: not in {shown} [{name}]"))
            elif requirement.url and requirement.url != dist.url:
                problems.append(Problem(entry.where, f"{entry.name}: locked from "
                                        f"{dist.url or 'the index'}, not {requirement.url}"))
            elif not requirement.specifier.contains(dist.version, prereleases=True):
                problems.append(Problem(entry.where, f"{entry.name}: locked at {dist.version}, "
                                        f"which '{entry.text}' does not allow"))
    if problems:
        raise ConfigError(problems, hint="`pyrlab build` (without --locked) resolves the lists "
                          f"again and updates {shown}")


def differs_from_lock(image: Inventory, section: Inventory | None) -> str | None:
    """Why an up-to-date image does not hold what its lock section says (Python), or None."""
    if section is None:
        return None
    have = {d.name: d for d in image.python}
    want = {d.name: d for d in section.python}
    names = sorted(n for n in set(have) | set(want) if have.get(n) != want.get(n))
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"Python packages differ from the lock: {shown}"


def unpinned(project: Project, names: Iterable[str]) -> list[str]:
    """What `--locked` leaves to the mirror and repositories: Debian and R list entries."""
    out: list[str] = []
    for name in names:
        lists = project.lists[name]
        out += [f"{e.name} (Debian, {e.where})" for e in lists.debs]
        out += [f"{e.name} (R, {e.where})" for e in lists.r_packages]
    return out
