"""`pyrlab bootstrap`: make a Debian base image from a Debian mirror (no registry), for the
engine's platform or, with --platform, another one (named as platforms.platform_ref says)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.baseimage import (
    BootstrapFailed,
    BootstrapResult,
    base_mirror,
    bootstrap,
    check_arguments,
    check_emulation,
    choose_tool,
    phases,
)
from pyrlab.commands._args import add_platform
from pyrlab.config.model import CONFIG_NAME, Config
from pyrlab.config.readers import load_config
from pyrlab.discovery import find_project
from pyrlab.engines.base import short_id
from pyrlab.engines.select import Selection, add_engine_argument, select_engine
from pyrlab.imagebuild.logs import logs_dir, new_log_path, state_logs_dir
from pyrlab.imagebuild.progress import Progress
from pyrlab.output import info
from pyrlab.platforms import NATIVE, is_native, platform_ref

DEFAULT_SUITE = "trixie"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default=None,
                        help="Debian suite (default: pyrlab.toml's [base] bootstrap, else trixie)")
    parser.add_argument("--mirror", default=None, metavar="URL",
                        help="Debian mirror (default: [base] mirror, else the mirror the "
                        "host's apt uses)")
    parser.add_argument("--tag", default=None, metavar="NAME",
                        help="image name to create (default: [base] image when the project "
                        "bootstraps its base, else pyrlab-debian:SUITE)")
    add_platform(parser, many=False,
                 help="bootstrap Debian for PLATFORM (linux/amd64, linux/arm64; another "
                 "machine's under qemu-user emulation, with mmdebstrap), named with the "
                 "platform's token: pyrlab-debian/arm64:trixie; default: the engine's own")
    add_engine_argument(parser)


@dataclass(frozen=True)
class BootstrapCommandResult:
    selection: Selection
    result: BootstrapResult
    mirror_source: str
    base_ref: str  # the name asked for; result.ref adds another platform's token

    def to_data(self) -> Any:
        r = self.result
        return {"ref": r.ref, "id": r.image_id, "suite": r.suite, "mirror": r.mirror,
                "mirror_source": self.mirror_source, "tool": r.tool,
                "seconds": round(r.seconds, 1), "log": str(r.log),
                "engine": self.selection.engine.describe(),
                "replaced": None if r.replaced is None else {
                    "id": r.replaced.image_id, "removed": r.replaced.removed,
                    "kept_because": r.replaced.kept_because or None},
                "platform": r.platform or self.selection.engine.platform()}

    def to_text(self) -> str:
        r = self.result
        done = (f"{r.ref} ({short_id(r.image_id)}): Debian {r.suite}"
                f"{f' for {r.platform}' if r.platform else ''} from {r.mirror} with "
                f"{r.tool} in {r.seconds:.0f}s\n"
                + (f"{r.replaced.describe(r.ref)}\n" if r.replaced else ""))
        if r.platform:  # the config names the base as the host's; the platform adds its token
            return (done + f"a build for {r.platform} of a project whose [base] image is "
                    f"\"{self.base_ref}\" starts from it")
        return (done + f"use it as the base in pyrlab.toml:\n"
                f"  [base]\n  image = \"{r.ref}\"\n  python = \"debian\"")


def _project_config(root: Path, sets: list[str]) -> Config | None:
    if not (root / CONFIG_NAME).exists():
        return None
    config = load_config(root, sets=sets)
    for warning in config.warnings:  # a stray PYRLAB_ variable
        info(f"pyrlab: warning: {warning}")
    return config


def run(args: argparse.Namespace) -> BootstrapCommandResult:
    # Inside a project, its [base] says what to make; anywhere else, the options do.
    root = find_project(Path(args.project)) or Path(args.project).resolve()
    config = _project_config(root, args.sets)
    base = config.base if config else None
    suite = args.suite or (base.bootstrap if base else None) or DEFAULT_SUITE
    if args.tag:
        ref = args.tag
    elif base is not None and base.bootstrap:
        ref = base.image
    else:
        ref = f"pyrlab-debian:{suite}"
    mirror, mirror_source = base_mirror(base, args.mirror)
    check_arguments(suite, mirror, ref)  # before anything runs
    choose_tool(args.platform or NATIVE)
    selection = select_engine(args.engine, config.engine if config else "auto",
                              config_source=config.source_of("engine") if config else "")
    host = selection.engine.platform() if args.platform else NATIVE
    platform = NATIVE if is_native(args.platform or NATIVE, host) else args.platform
    check_emulation(platform)
    shown = platform_ref(ref, platform, host)
    log = new_log_path(logs_dir(root) if config else state_logs_dir(), f"bootstrap-{suite}")
    progress = Progress()
    try:
        progress.note(selection.describe())
        progress.start("base", f"bootstrapping {shown}: Debian {suite}"
                       f"{f' for {platform}' if platform else ''} from {mirror} "
                       f"({mirror_source})")

        try:
            result = bootstrap(selection.engine, suite=suite, mirror=mirror, ref=ref,
                               log_path=log, platform=platform,
                               on_line=phases(lambda text: progress.step("base", text),
                                              lambda text: progress.status("base", text)))
        except BootstrapFailed as exc:
            progress.failed("base", exc.failure, exc.log)
            raise
        progress.done("base", f"done in {result.seconds:.0f}s")
    finally:
        progress.close()
    return BootstrapCommandResult(selection, result, mirror_source, ref)
