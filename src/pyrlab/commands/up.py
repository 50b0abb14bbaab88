"""`pyrlab up IMAGE`: build what is missing, start the lab, wait for it, print its URL."""

from __future__ import annotations

import argparse
import webbrowser
from dataclasses import dataclass
from typing import Any

from pyrlab.commands._args import add_image, add_platform, engine_from, project_from
from pyrlab.engines.select import add_engine_argument
from pyrlab.launch.plan import lab_image
from pyrlab.output import info
from pyrlab.platforms import NATIVE
from pyrlab.run.start import DEFAULT_TIMEOUT, Started, start_lab


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image(parser, port_help="publish JupyterLab on this port instead of the configured one")
    parser.add_argument("--open", action="store_true", help="open the URL in a web browser")
    parser.add_argument("--gpus", action="store_true",
                        help="give the lab every GPU (always on for images with cuda = true)")
    parser.add_argument("--no-build", action="store_true",
                        help="do not build: start the image as it is (an error when missing)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"how long to wait for JupyterLab (default {DEFAULT_TIMEOUT:g})")
    add_platform(parser, many=False)
    add_unsafe_argument(parser)
    add_engine_argument(parser)


def add_unsafe_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-unsafe", action="store_true",
                        help="allow what this project's config asks that widens what the lab "
                        "may do on the host (run arguments beyond resource limits, env and "
                        "labels; uid 0; mounting /, your whole home or a system folder); "
                        "only this flag grants it, never a config value")


@dataclass(frozen=True)
class UpResult:
    started: Started

    def to_data(self) -> Any:
        s = self.started
        return {"image": s.image, "container": s.name, "port": s.port, "url": s.url,
                "token_file": s.token_file or None, "seconds": round(s.seconds, 2),
                "already_running": s.already_running}

    def to_text(self) -> str:
        s = self.started
        how = "was already running" if s.already_running else f"is up ({s.seconds:.1f} s)"
        return f"{s.image} {how}: {s.url}"


def run(args: argparse.Namespace) -> UpResult:
    project = project_from(args)
    lab_image(project.config, args.image)  # a clear error for an unknown image, first
    engine = engine_from(args, project.config, announce=True)
    platform = args.platform or NATIVE
    if platform != NATIVE:
        # Another platform's lab runs under emulation: a machine without it is told so
        # (and the fix) before a lab is looked for or an image built.
        from pyrlab.imagebuild.orchestration import check_emulation

        check_emulation(engine, [platform])
    started = start_lab(project, engine, args.image, port=args.port, gpus=args.gpus,
                        build=not args.no_build, timeout=args.timeout,
                        allow_unsafe=args.allow_unsafe, platform=platform, note=info)
    if args.open and not webbrowser.open(started.url):
        info("note: no web browser could be opened here; open the URL yourself")
    return UpResult(started)
