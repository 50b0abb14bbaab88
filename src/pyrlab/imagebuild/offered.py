"""`build --locked`, once the base image is there and before any image builds: do the
sources still offer every Debian version pyrlab.lock names? apt is asked in a throwaway
container of the base image, with each root image's sources and network settings (see
apt-install --offered). What it cannot have is named, and the build stops: a --locked build
installs exactly the lock or nothing."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from pyrlab.config.project import Project
from pyrlab.contents.model import Inventory
from pyrlab.contents.upgradable import ask_image
from pyrlab.credentials import Redactor
from pyrlab.dockerfile.context import secret_folder, write_context
from pyrlab.dockerfile.network import build_secrets
from pyrlab.dockerfile.render import RenderOptions, render_context
from pyrlab.engines.base import Engine
from pyrlab.errors import BuildError
from pyrlab.imagebuild.pins import Pins, locked_debs, unavailable_debs, with_pins

APT_OFFERED = ("/run/pyrlab/bin/apt-install", "--offered")
MOUNTS = {"bin": "bin", "net/apt": "net", "apt": "apt", "pins/apt": "pins"}


def gone_hint(shown: str) -> str:
    """What to do when the mirror has moved on from the lock's Debian versions."""
    return ("`pyrlab build` (without --locked) installs what the sources offer now and "
            f"updates {shown}; `pyrlab upgrade` also re-makes the base. To build these "
            "versions again, take Debian as it was when the lock was made: set [base] "
            'snapshot = "YYYYMMDDTHHMMSSZ" in pyrlab.toml (a time of snapshot.debian.org '
            f"when those versions were current, e.g. of the commit that last changed {shown}) "
            "and run `pyrlab build --locked` again")


def debs_check(project: Project, engine: Engine, names: list[str],
               lock: Mapping[str, Inventory], shown: str, *,
               network_host: bool) -> Callable[[str], None]:
    """What checks, given the base image's ID, that every locked Debian version of `names`
    (in dependency order) can be installed; BuildError naming each one that cannot."""

    def check(base_id: str) -> None:
        by_root: dict[str, list[str]] = {}
        for name in names:
            by_root.setdefault(project.order([name])[0], []).append(name)
        problems: list[str] = []
        for root, members in by_root.items():
            wanted = locked_debs(members, lock)
            if not wanted:
                continue
            pins = tuple(f"{n}={v}" for n in sorted(wanted) for v in sorted(wanted[n]))
            context = with_pins(render_context(project, root, RenderOptions.for_builder(engine)),
                                Pins("exact", debs=pins))
            with tempfile.TemporaryDirectory(prefix="pyrlab-offered-") as tmp, \
                    secret_folder(build_secrets(project)) as secrets:
                folder = write_context(context, Path(tmp) / "context")
                answer = ask_image(engine, base_id, folder, MOUNTS, APT_OFFERED, secrets,
                                   network_host, redact=Redactor(project.config.proxy.urls()),
                                   question="apt which locked Debian versions {ref} can have")
            images = ", ".join(members)
            problems += [f"{shown} ({images}): Debian package {problem}; --locked cannot pin it"
                         for problem in unavailable_debs(wanted, answer)]
        if problems:
            raise BuildError("\n".join(problems), hint=gone_hint(shown))

    return check
