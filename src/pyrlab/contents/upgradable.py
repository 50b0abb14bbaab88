"""What an upgrade would change in a built image, asked of the indexes from inside it.

Each question runs in a throwaway container of the image, as root, with the build's
network settings (the context's net/ files, the build secrets mounted read-only at
/run/pyrlab/secret, never in its environment or command line, host networking when a proxy
is on this host); the image's own CA files are trusted there already.

Each ecosystem says what to ask (its `queries` part, see pyrlab.ecosystems): Python resolves
the image's lists again as `pyrlab upgrade` does and names the listed packages that
resolution holds back; Debian simulates an upgrade with apt; R reads the CRAN-like
repository's index. Each answer is compared with the image's manifest (its inventory).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from secrets import token_hex

from pyrlab import ecosystems
from pyrlab.config.project import Project
from pyrlab.contents.model import Inventory, Outdated
from pyrlab.credentials import Redactor
from pyrlab.dockerfile.context import secret_folder, write_context
from pyrlab.dockerfile.network import SECRET_DIR, build_secrets
from pyrlab.dockerfile.render import RenderOptions, render_context
from pyrlab.ecosystems.base import ASK_ROOT, Note
from pyrlab.engines.base import Engine, Mount, RunRequest
from pyrlab.errors import BuildError, EngineError
from pyrlab.platforms import NATIVE, Platform


def outdated_rows(image: str, inventory: Inventory,
                  available: Mapping[str, Mapping[str, str]]) -> list[Outdated]:
    """The installed packages of `inventory` for which a newer version is available
    (`available`: per ecosystem name, what its query answered)."""
    rows = []
    for eco in ecosystems.registered():
        answer = available.get(eco.name, {})
        for package in inventory.packages(eco.name):
            newer = eco.queries.newer(package, answer)
            if newer is not None:
                rows.append(Outdated(image, eco.name, package.name, package.version, newer))
    return rows


def ask_image(engine: Engine, ref: str, folder: Path, mounts: Mapping[str, str],
              command: tuple[str, ...], secrets: Path, network_host: bool, *,
              redact: Callable[[str], str], env: Mapping[str, str] | None = None,
              question: str = "what {ref} could upgrade", platform: Platform = NATIVE) -> str:
    """The output of `command`, run as root in a throwaway container of `ref` with the
    context folders `mounts` (context path under pyrlab/ → path under /run/pyrlab) and the
    folder of build secrets `secrets` at SECRET_DIR, read-only. A failure's message is
    `redact`ed (R, for one, names the repository URL it could not read). `platform`: the
    image's where it is not the engine's own (run under emulation)."""
    request = RunRequest(
        image=ref, name=f"pyrlab-ask-{token_hex(4)}", user="0:0", env=env or {},
        mounts=(*(Mount(folder / "pyrlab" / src, f"{ASK_ROOT}/{dst}", True)
                  for src, dst in mounts.items()), Mount(secrets, SECRET_DIR, True)),
        network_host=network_host, command=command, detach=False, remove=True,
        platform=platform,
    )
    try:
        return engine.run(request)
    except EngineError as exc:
        raise BuildError(f"cannot ask {question.format(ref=ref)}: {redact(exc.message)}") \
            from None
    except KeyboardInterrupt:  # its client was stopped, the container may still run
        engine.remove_container(request.name)
        raise


def upgradable(project: Project, engine: Engine, name: str, ref: str, inventory: Inventory,
               *, network_host: bool, platform: Platform = NATIVE,
               host: Platform = NATIVE) -> tuple[list[Outdated], list[Note]]:
    """What an upgrade would change in the built image `ref` of `name`, and what the answers
    say beside (the listed Python packages its resolution would hold back). `platform`: the
    image's where it is not the engine's own (`host`): its containers run under emulation,
    with the context rendered for it (`project`: as that platform sees it)."""
    context = render_context(project, name, RenderOptions.for_builder(engine, platform, host))
    secrets = build_secrets(project)
    redact = Redactor(project.config.proxy.urls())
    available: dict[str, Mapping[str, str]] = {}
    notes: list[Note] = []
    with tempfile.TemporaryDirectory(prefix="pyrlab-outdated-") as tmp, \
            secret_folder(secrets) as secret_files:
        folder = write_context(context, Path(tmp) / "context")
        for eco in ecosystems.registered():
            query = eco.queries.outdated(context.files.keys(), inventory.packages(eco.name),
                                         SECRET_DIR, inventory.platform)
            if query is None:
                continue
            answer = query.parse(ask_image(engine, ref, folder, query.mounts, query.argv,
                                           secret_files, network_host, redact=redact,
                                           platform=platform))
            available[eco.name] = answer.available
            notes += answer.notes
    return outdated_rows(name, inventory, available), notes
