"""Whether this machine can run another platform's programs: what building or running an
image for it needs (its RUN steps, its self-test, its lab run that platform's binaries).

Linux runs a foreign binary through binfmt_misc: a handler `qemu-<uname -m>` (Debian's
qemu-user-static registers them) hands it to qemu. Containers need the handler's flag F
("fix binary"): the kernel opens the interpreter when the handler is registered, so it
works in a container whose file system has no qemu. A handler without F (Debian's
qemu-user-binfmt, for the dynamically linked qemu-user) runs foreign programs on the host
but fails in every container with "exec format error".

Checked only where the engine's containers run on this machine's kernel (Engine.runs_here):
Docker Desktop and Podman machine run them in a VM of their own, with emulation built in,
and a remote daemon's host is not this one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pyrlab.engines.base import Engine
from pyrlab.errors import EngineError
from pyrlab.platforms import Platform, is_native, qemu_name

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Where to read binfmt_misc instead (tests: a folder written as the kernel shows it).
BINFMT_DIR_ENV = "PYRLAB_BINFMT_DIR"
SETUP_COMMAND = "bash .ci/setup-host.sh --emulation"


def binfmt_dir() -> Path:
    return Path(os.environ.get(BINFMT_DIR_ENV) or BINFMT_DIR)


def host_problem(platform: Platform, host: Platform) -> str | None:
    """Why this machine's kernel cannot run `platform`'s programs in a container, or None
    when it can (or `platform` is the engine's own, `host`). Reads binfmt_misc: mounted,
    on, and a handler for the platform's machine that is enabled and has flag F."""
    if is_native(platform, host):
        return None
    folder = binfmt_dir()
    machine = qemu_name(platform)
    needs = f"{platform} needs emulation of {machine} on this {host} machine"
    status = _read(folder / "status")
    if status is None:
        return f"{needs}, and binfmt_misc is not mounted ({folder}/status is missing)"
    if status.strip() == "disabled":
        return f"{needs}, and binfmt_misc is switched off ({folder}/status says disabled)"
    # Debian's handler is qemu-aarch64; others name theirs otherwise (qemu-aarch64-static).
    names = sorted(p.name for p in _entries(folder) if machine in p.name)
    names.sort(key=lambda name: name != f"qemu-{machine}")
    if not names:
        return f"{needs}: {folder}/qemu-{machine} is missing (no handler for {machine})"
    problems = []
    for name in names:
        lines = (_read(folder / name) or "").splitlines()
        flags = next((line.split(":", 1)[1].strip() for line in lines
                      if line.startswith("flags:")), "")
        if not lines or lines[0].strip() != "enabled":
            problems.append(f"{folder}/{name} is disabled")
        elif "F" not in flags:
            problems.append(f"{folder}/{name} lacks flag F (flags: {flags or 'none'}), so "
                            "containers, which do not hold its interpreter, cannot use it")
        else:
            return None
    return f"{needs}: " + "; ".join(problems)


def fix(platform: Platform, engine_name: str = "docker") -> str:
    """What to do about a host_problem, and how to see that it worked."""
    machine = qemu_name(platform)
    return (f"install emulation: sudo apt-get install qemu-user-static binfmt-support "
            f"(Debian, Ubuntu; or `{SETUP_COMMAND}` in pyrlab's source tree, which also "
            f"mounts binfmt_misc and enables qemu-{machine}); check: `{engine_name} run --rm "
            f"--platform {platform} IMAGE uname -m` with any {platform} IMAGE says {machine}")


def check(engine: Engine, platforms: Sequence[Platform], doing: str = "building for") -> None:
    """EngineError naming the first of `platforms` this machine cannot emulate, and the fix
    ("building for linux/arm64 needs emulation…"); nothing where the engine's containers do
    not run here (Engine.runs_here)."""
    if not engine.runs_here():
        return
    host = engine.platform()
    for platform in platforms:
        problem = host_problem(platform, host)
        if problem is not None:
            raise EngineError(f"{doing} {problem}", hint=fix(platform, engine.name))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _entries(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.name not in ("status", "register")]
    except OSError:
        return []
