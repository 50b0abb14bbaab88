"""`build --locked`, once the base image is there and before any image builds: can the
sources still give every version pyrlab.lock names? Each ecosystem with a preflight (Debian
asks apt what it offers) is asked in a throwaway container of the base image, with each root
image's build context (its sources and network settings) and the versions as pins. What
cannot be had is named, and the build stops: a --locked build installs exactly the lock or
nothing.

A build for several platforms asks once per platform, in that platform's base with that
platform's sections: another platform's container runs under emulation (RunRequest.platform),
with the context rendered for it (its lists, its cache ids), and its problems name it.
Python has no preflight: a locked version the index no longer has fails the uv step
(constraints), on every platform alike, before any tag moves."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from pyrlab import ecosystems
from pyrlab.config.project import Project
from pyrlab.contents.model import Inventory
from pyrlab.contents.upgradable import ask_image
from pyrlab.credentials import Redactor
from pyrlab.dockerfile.context import secret_folder, write_context
from pyrlab.dockerfile.network import build_secrets
from pyrlab.dockerfile.render import RenderOptions, render_context
from pyrlab.ecosystems.base import Locked
from pyrlab.engines.base import Engine
from pyrlab.errors import BuildError
from pyrlab.imagebuild.pins import ImagePins, held, with_pins
from pyrlab.platforms import NATIVE, Platform


def preflight_check(project: Project, engine: Engine, names: list[str],
                    lock: Mapping[str, Inventory], shown: str, *,
                    network_host: bool, platform: Platform = NATIVE,
                    host: Platform = NATIVE) -> Callable[[str], None]:
    """What checks, given the base image's ID, that every locked version of `names` (in
    dependency order) of each ecosystem with a preflight can be installed; BuildError
    naming each one that cannot. `platform`: the base's and `lock`'s, NATIVE for the
    engine's own (`host`); another one's base is asked under emulation."""
    options = RenderOptions.for_builder(engine, platform, host)
    on = f" on {platform}" if platform else ""

    def check(base_id: str) -> None:
        by_root: dict[str, list[str]] = {}
        for name in names:
            by_root.setdefault(project.order([name])[0], []).append(name)
        problems: list[str] = []
        hints: list[str] = []
        for eco in ecosystems.registered():
            preflight = eco.pins.preflight
            if preflight is None:
                continue
            found = len(problems)
            for root, members in by_root.items():
                pinned = preflight.pinned(p for name in members if name in lock
                                          for p in held(lock[name], eco))
                if not pinned:
                    continue
                context = with_pins(
                    render_context(project, root, options),
                    ImagePins("exact", Locked({eco.name: pinned})))
                with tempfile.TemporaryDirectory(prefix="pyrlab-offered-") as tmp, \
                        secret_folder(build_secrets(project)) as secrets:
                    folder = write_context(context, Path(tmp) / "context")
                    answer = ask_image(engine, base_id, folder, dict(preflight.mounts),
                                       preflight.argv, secrets, network_host,
                                       redact=Redactor(project.config.proxy.urls()),
                                       question=preflight.question, platform=platform)
                images = ", ".join(members) + on
                problems += [f"{shown} ({images}): {preflight.noun} {problem}; --locked "
                             "cannot pin it"
                             for problem in preflight.unavailable(pinned, answer)]
            if len(problems) > found:
                hints.append(preflight.hint(shown))
        if problems:
            raise BuildError("\n".join(problems), hint="; ".join(hints))

    return check
