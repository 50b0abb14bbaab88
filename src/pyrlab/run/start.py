"""Starting and stopping labs: what `up`, `restart` and `down` do, step by step."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyrlab.config.model import Config
from pyrlab.engines.base import Engine
from pyrlab.errors import EngineError, PyrlabError, RunError
from pyrlab.launch.plan import LabPlan, connect_host, container_name, lab_image, lab_url, plan_lab
from pyrlab.launch.ready import NotReady, Spinner, wait_ready
from pyrlab.launch.safety import check_plan
from pyrlab.launch.state import (
    ensure_token,
    invoking_user,
    port_in_use,
    prepare_folders,
    token_path,
)
from pyrlab.platforms import NATIVE, Platform
from pyrlab.run.labs import Lab, find_labs, lab_from_inspect

if TYPE_CHECKING:  # lists, planning and building are imported where an image is checked or
    # built: `down` never parses a list nor renders a context
    from pyrlab.config.project import Project
    from pyrlab.imagebuild.planner import Target

Note = Callable[[str], None]
LOG_LINES = 20  # how much of the lab's log a failure shows
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Started:
    image: str
    name: str
    port: int
    url: str  # with the token
    token_file: str
    seconds: float  # from `up` to JupyterLab answering
    already_running: bool


# --------------------------------------------------------------------------- the image


def ensure_image(project: Project, engine: Engine, image: str, *,
                 rendered: list[Target] | None = None, platform: Platform = NATIVE) -> None:
    """Build the image and its ancestors when missing or out of date, as `pyrlab build
    IMAGE` does (compose's `up`); nothing is said when they are up to date. `rendered`:
    the image's and its ancestors' contexts, when rendered already (see render_targets).
    `platform`: the one `up` starts (NATIVE: the engine's own, whatever [build] platforms
    lists); the build refuses another one so far."""
    from pyrlab.imagebuild.orchestration import BuildOptions, run_build

    run_build(project, engine, BuildOptions(names=[image], quiet_when_current=True,
                                            platforms=(platform,)), rendered=rendered)


def host_of(engine: Engine, platform: Platform) -> Platform:
    """What names `platform`'s images and labs need of the engine: its own platform, asked
    only when another one than NATIVE is named (see platforms.is_native)."""
    return NATIVE if platform == NATIVE else engine.platform()


def render_targets(project: Project, engine: Engine, image: str,
                   platform: Platform = NATIVE) -> list[Target]:
    """The contexts `ensure_image` plans with: they do not depend on what is built, so they
    may be rendered before the build lock is held."""
    from pyrlab.dockerfile.render import RenderOptions
    from pyrlab.imagebuild.planner import on_engine, targets

    return targets(on_engine(project, engine, platform), [image],
                   RenderOptions.for_builder(engine), platform=platform,
                   host=host_of(engine, platform))


def check_built(project: Project, engine: Engine, image: str,
                platform: Platform = NATIVE) -> str | None:
    """`up --no-build`: the image must be there (RunError); out of date is only a note,
    returned."""
    from pyrlab.imagebuild.planner import make_plan

    plan = make_plan(project, engine, [image], platform=platform,
                     host=host_of(engine, platform))
    planned = next(p for p in plan.images if p.target.name == image)
    named = f"{image} --platform {platform}" if platform != NATIVE else image
    if planned.current is None:
        raise RunError(f"image {planned.target.ref} is not built",
                       hint=f"build it with `pyrlab build {named}`, or run "
                       f"`pyrlab up {named}` without --no-build")
    if planned.decision.build:
        return (f"note: {planned.target.ref} is out of date ({planned.decision.reason}); "
                f"starting it anyway (--no-build); `pyrlab build {named}` updates it")
    return None


# --------------------------------------------------------------------------- starting


def _stopped_reason(engine: Engine, name: str) -> str | None:
    data = engine.inspect_container(name)
    if data is None:
        return "the container disappeared"
    lab = lab_from_inspect(data)
    if lab.running:
        return None
    if lab.exit_code is not None:
        return f"the container exited with code {lab.exit_code}"
    return f"the container is {lab.state}"


def _log_tail(engine: Engine, name: str) -> str:
    lines = [line for line in engine.logs(name, tail=LOG_LINES).splitlines() if line.strip()]
    if not lines:
        return f"{name} wrote nothing to its log"
    return "\n".join([f"the last lines of {name}'s log:", *(f"  | {line}" for line in lines)])


def _wait(engine: Engine, config: Config, lab_name: str, image: str, port: int, token: str,
          timeout: float, note: Note) -> float:
    status_url = f"http://{connect_host(config.run.bind)}:{port}/api/status"
    try:
        seconds = wait_ready(status_url, token, timeout=timeout, label=image,
                             spinner=Spinner(), stopped=lambda: _stopped_reason(engine, lab_name))
    except NotReady as exc:
        note(_log_tail(engine, lab_name))
        raise RunError(f"{image} did not start: {exc.reason}",
                       hint=f"`pyrlab logs {image}` shows the whole log; "
                       f"`pyrlab down {image}` removes the lab") from None
    # JupyterLab answers: record it as the lab's health now, where the engine would
    # otherwise leave it "starting" (Podman without systemd; see Engine.check_health).
    engine.check_health(lab_name)
    return seconds


def _check_ports(engine: Engine, config: Config, plan: LabPlan) -> list[str]:
    """Names of the extra ports (dtale…) that are busy; raises when the lab port is."""
    busy_names = []
    image = config.images[plan.image]
    names = {number: name for name, number in image.ports if name != "lab"}
    for port in plan.request.ports:
        if not port_in_use(port.host_ip, port.host_port):
            continue
        if port.host_port != plan.port:
            busy_names.append(names[port.host_port])
            continue
        holder = next((lab for lab in find_labs(engine, config)
                       if any(p.split("->")[0].endswith(f":{port.host_port}")
                              for p in lab.published)), None)
        if holder is not None:
            raise RunError(f"port {port.host_port} is in use by {holder.name}, a lab of "
                           f"{holder.image} in this project",
                           hint=f"stop it (`pyrlab down {holder.image}`) or choose another port "
                           f"(`pyrlab up {plan.image} --port N`)")
        raise RunError(f"port {port.host_port} on {port.host_ip} is already in use by another "
                       "program", hint=f"choose another: `pyrlab up {plan.image} --port N`, or "
                       f"set images.{plan.image}.ports.lab in pyrlab.toml")
    return busy_names


def draft_plan(config: Config, image: str, *, port: int | None, gpus: bool,
               platform: Platform = NATIVE, host: Platform = NATIVE) -> LabPlan:
    """The lab's plan before its token exists and its ports are checked (see
    LabPlan.finished)."""
    return plan_lab(config, image, port=port, gpus=gpus,
                    token="" if config.run.allow_no_token else "-",
                    platform=platform, host=host)


def start_lab(project: Project, engine: Engine, image: str, *, port: int | None = None,
              gpus: bool = False, build: bool = True, timeout: float = DEFAULT_TIMEOUT,
              allow_unsafe: bool = False, draft: LabPlan | None = None,
              platform: Platform = NATIVE, note: Note) -> Started:
    """`up`: start the lab (or find it running) and wait until JupyterLab answers. `draft`:
    the lab's plan when the caller made it already (see draft_plan), with the same port
    and platform. `platform`: which of the image's platforms to start (NATIVE: the
    engine's own; another one is its own lab, PROJECT__IMAGE-PORT__arm64)."""
    began = time.monotonic()
    config = project.config
    spec = lab_image(config, image)
    lab_port = port if port is not None else spec.lab_port
    assert lab_port is not None
    host = host_of(engine, platform)
    name = container_name(config, image, lab_port, platform, host)
    # The lab's one plan: refused here when it needs --allow-unsafe, before anything is
    # built, started or stopped; finished with its token and busy ports below.
    if draft is None:
        draft = draft_plan(config, image, port=lab_port, gpus=gpus, platform=platform,
                           host=host)
    assert draft.port == lab_port and draft.name == name
    for text in check_plan(config, draft, allow_unsafe=allow_unsafe, command="pyrlab up"):
        note(f"pyrlab: warning: {text}")

    # Whether a lab runs on this port does not depend on the image's contexts, nor (with
    # --no-build) on whether the image is built: the engine answers about the container
    # while they render. What the image side finds (a note, an error) is told where it
    # always was, after the container's and the ports' verdicts.
    rendered: list[Target] | None = None
    built_note: str | None = None
    image_error: PyrlabError | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyrlab-inspect") as pool:
        found = pool.submit(engine.inspect_container, name)
        try:
            if build:
                rendered = render_targets(project, engine, image, platform)
            else:
                built_note = check_built(project, engine, image, platform)
        except PyrlabError as exc:
            image_error = exc
        existing = found.result()
    if existing is not None:
        lab = lab_from_inspect(existing)
        if lab.project != config.project_id:
            where = lab.project_dir or "outside any pyrlab project"
            raise RunError(f"port {lab_port} is in use by {name}, a lab of the project {where}",
                           hint=f"stop it there (`pyrlab -C {where} down {image}`) or choose "
                           f"another port (`pyrlab up {image} --port N`)")
        if lab.running:
            return _already_running(project, engine, lab, timeout, began, note)
        engine.remove_container(name)  # stopped or crashed: start afresh, same token

    # Everything that can be refused is checked before a build that may take minutes.
    busy = _check_ports(engine, config, draft)
    if image_error is not None:
        raise image_error
    if build:
        ensure_image(project, engine, image, rendered=rendered, platform=platform)
    elif built_note is not None:
        note(built_note)
    token = "" if config.run.allow_no_token else ensure_token(token_path(config, name),
                                                               owner=invoking_user())
    plan = draft.finished(token, unpublished=busy)
    for text in plan.notes:
        note(f"note: {text}")
    for busy_name in busy:
        number = dict(spec.ports)[busy_name]
        note(f"note: the {busy_name} port {number} is in use; this lab does not publish it "
             f"(--set images.{image}.ports.{busy_name}=N picks another)")
    for text in prepare_folders(plan.folders, config.run.uid, config.run.gid):
        note(f"note: {text}")
    try:
        try:
            engine.run(plan.request)
        except EngineError as exc:
            text = exc.message
            if "already allocated" in text or "address already in use" in text:
                raise RunError(f"a port of {image} is already in use: {text}",
                               hint=f"choose another: `pyrlab up {image} --port N`") from None
            raise RunError(f"cannot start {image}: {text}") from None
        _wait(engine, config, name, image, lab_port, token, timeout, note)
    except KeyboardInterrupt:
        engine.remove_container(name)  # an interrupted `up` leaves no half-started lab
        raise
    return Started(image=image, name=name, port=lab_port,
                   url=lab_url(config.run.bind, lab_port, token),
                   token_file="" if not token else str(token_path(config, name)),
                   seconds=time.monotonic() - began, already_running=False)


def _already_running(project: Project, engine: Engine, lab: Lab, timeout: float, began: float,
                     note: Note) -> Started:
    config = project.config
    assert lab.port is not None
    current = engine.inspect_image(config.image_ref(lab.image, "latest", lab.platform,
                                                    host_of(engine, lab.platform)))
    if current is not None and current.get("Id") not in (None, lab.image_id):
        note(f"note: {lab.name} runs an older build of {lab.image}; "
             f"`pyrlab restart {lab.image}` starts it from the new one")
    _wait(engine, config, lab.name, lab.image, lab.port, lab.token, timeout, note)
    return Started(image=lab.image, name=lab.name, port=lab.port,
                   url=lab_url(config.run.bind, lab.port, lab.token),
                   token_file=str(token_path(config, lab.name)) if lab.token else "",
                   seconds=time.monotonic() - began, already_running=True)


# --------------------------------------------------------------------------- stopping


def stop_lab(engine: Engine, lab: Lab) -> None:
    """Stop (JupyterLab shuts its kernels down) and remove the container; the notebooks,
    the home folder and the token file stay on the host."""
    if lab.running:
        engine.stop(lab.name)
    engine.remove_container(lab.name)
    if engine.inspect_container(lab.name) is not None:
        raise RunError(f"could not remove {lab.name}",
                       hint=f"try `{engine.binary} rm --force {lab.name}`")

