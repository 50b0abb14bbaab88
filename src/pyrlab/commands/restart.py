"""`pyrlab restart IMAGE`: recreate the lab from the image as built now; same port, same token."""

from __future__ import annotations

import argparse

from pyrlab.commands._args import add_image, engine_from, project_from
from pyrlab.commands.up import UpResult, add_unsafe_argument
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import RunError
from pyrlab.launch.plan import lab_image
from pyrlab.launch.safety import check_plan
from pyrlab.output import info
from pyrlab.platforms import NATIVE
from pyrlab.run.labs import find_labs
from pyrlab.run.start import DEFAULT_TIMEOUT, draft_plan, host_of, start_lab, stop_lab


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image(parser)
    parser.add_argument("--gpus", action="store_true",
                        help="give the lab every GPU (always on for images with cuda = true)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"how long to wait for JupyterLab (default {DEFAULT_TIMEOUT:g})")
    add_unsafe_argument(parser)
    add_engine_argument(parser)


def run(args: argparse.Namespace) -> UpResult:
    project = project_from(args)
    config = project.config
    lab_image(config, args.image)  # a clear error for an unknown image, before the engine
    engine = engine_from(args, config, announce=True)
    labs = [lab for lab in find_labs(engine, config, args.image)
            if args.port is None or lab.port == args.port]
    if len(labs) > 1:
        ports = ", ".join(str(lab.port) for lab in labs)
        raise RunError(f"{len(labs)} labs of {args.image} exist (ports {ports})",
                       hint="choose one with --port")
    port = labs[0].port if labs else args.port
    # The same platform's image: a lab of another one than the engine's own stays one.
    platform = labs[0].platform if labs else NATIVE
    # Refused before the running lab is stopped; start_lab shows the warnings and starts
    # the lab from this plan.
    draft = draft_plan(config, args.image, port=port, gpus=args.gpus, platform=platform,
                       host=host_of(engine, platform))
    check_plan(config, draft, allow_unsafe=args.allow_unsafe, command="pyrlab restart")
    if labs:
        stop_lab(engine, labs[0])
    else:
        info(f"note: no lab of {args.image} was running; starting one")
    # Not built here: restart picks up a new build or config, `up` is what builds.
    started = start_lab(project, engine, args.image, port=port, gpus=args.gpus, build=False,
                        timeout=args.timeout, allow_unsafe=args.allow_unsafe, draft=draft,
                        platform=platform, note=info)
    return UpResult(started)
