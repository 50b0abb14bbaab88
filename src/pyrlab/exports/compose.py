"""`pyrlab export compose`: a compose file that starts the labs the way `pyrlab up` does.

Each service is made from the run plan `up` starts the lab with (launch/plan.py): the same
image, container name, UID:GID, ports on run.bind, mounts, environment, labels (so `pyrlab
ps`, `url`, `logs` and `down` see a lab compose started), security options and health-check
interval. The image's own ENTRYPOINT (tini) and HEALTHCHECK stay as they are, as with `up`.

The token never goes into the compose file: each lab's service reads it from an `env_file`
pyrlab writes beside the lab's token file (mode 0600, `JUPYTER_TOKEN=…`), the same token
`pyrlab up` and `pyrlab url` use. The run arguments of the config (run.docker_args,
images.X.run_args) are translated to compose keys where compose has one; any other is an
error that names it, never silently dropped.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab import __version__
from pyrlab.config.model import Config
from pyrlab.errors import ConfigError, Problem, RunError
from pyrlab.exports import Exported
from pyrlab.exports.yamltext import Value, dump, quote
from pyrlab.launch.plan import DEFAULT_LAB_PORT, LabPlan, lab_image, plan_lab
from pyrlab.launch.safety import check_plan
from pyrlab.launch.state import ensure_token, invoking_user, prepare_folders, token_path

HELP = "a compose file that starts the labs as `pyrlab up` does (token in an env file)"
TOKEN_VARIABLE = "JUPYTER_TOKEN"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^[0-9]+(?:\.[0-9]+)?[bkmgBKMG]?$")
_INT = re.compile(r"^-?[0-9]+$")
_NETWORK_MODES = ("host", "none", "bridge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="the labs to include (default: every image with a lab port)")
    parser.add_argument("--gpus", action="store_true",
                        help="reserve every GPU for the labs (always for cuda = true projects)")
    parser.add_argument("--allow-unsafe", action="store_true",
                        help="accept run arguments that widen what a lab may do, as "
                        "`pyrlab up --allow-unsafe` does")


# --------------------------------------------------------------------------- run arguments


class UntranslatableArgument(Exception):
    """A run argument compose cannot express (or pyrlab does not translate)."""

    def __init__(self, index: int, argument: str, reason: str) -> None:
        super().__init__(reason)
        self.index = index  # of the argument in the list it came from
        self.argument = argument
        self.reason = reason


def _size(value: str) -> str:
    if not _SIZE.match(value):
        raise ValueError("expected a size such as 512m or 2g")
    return value


def _integer(value: str) -> int:
    if not _INT.match(value):
        raise ValueError("expected a whole number")
    return int(value)


def _cpus(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a number of CPUs such as 1.5") from None
    if not number > 0:
        raise ValueError("expected a number of CPUs above 0")
    return number


def _swap(value: str) -> str | int:
    return -1 if value == "-1" else _size(value)


def _key_value(value: str) -> tuple[str, str | None]:
    key, sep, rest = value.partition("=")
    return key, rest if sep else None


def _add_env(service: dict[str, Any], value: str) -> None:
    key, rest = _key_value(value)
    if not _ENV_NAME.match(key):
        raise ValueError("expected NAME=VALUE with a variable name of letters, digits and _")
    if key == TOKEN_VARIABLE:
        raise ValueError("the lab's token comes from its token file, never from run arguments")
    # No value: compose takes it from its own environment at `up`, as `docker run -e NAME`.
    service.setdefault("environment", {})[key] = rest


def _add_label(service: dict[str, Any], value: str) -> None:
    key, rest = _key_value(value)
    if not key:
        raise ValueError("expected KEY=VALUE")
    service.setdefault("labels", {})[key] = rest or ""


def _add_ulimit(service: dict[str, Any], value: str) -> None:
    name, rest = _key_value(value)
    if not name or rest is None:
        raise ValueError("expected NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    soft, _, hard = rest.partition(":")
    limit: Value = _integer(soft) if not hard else {"soft": _integer(soft), "hard": _integer(hard)}
    service.setdefault("ulimits", {})[name] = limit


def _set_network(service: dict[str, Any], value: str) -> None:
    if value not in _NETWORK_MODES:
        raise ValueError(f"compose takes a network mode of {', '.join(_NETWORK_MODES)} here; "
                         "another network needs a `networks:` section of your own")
    service["network_mode"] = value


def _set_gpus(service: dict[str, Any], value: str) -> None:
    count: Value = "all" if value == "all" else _integer(value)
    service["deploy"] = gpu_reservation(count)


def _setter(key: str, convert: Callable[[str], Value]) -> Callable[[dict[str, Any], str], None]:
    def apply(service: dict[str, Any], value: str) -> None:
        service[key] = convert(value)
    return apply


def _appender(key: str) -> Callable[[dict[str, Any], str], None]:
    def apply(service: dict[str, Any], value: str) -> None:
        service.setdefault(key, []).append(value)
    return apply


# The run arguments compose has a key for: resources, environment, labels, a few settings.
# What widens a lab's power (--privileged, --cap-add, --device, -v, --pid…) has none here:
# it is refused by name, as is anything unknown.
VALUE_OPTIONS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "--env": _add_env, "-e": _add_env,
    "--label": _add_label, "-l": _add_label,
    "--shm-size": _setter("shm_size", _size),
    "--memory": _setter("mem_limit", _size), "-m": _setter("mem_limit", _size),
    "--memory-reservation": _setter("mem_reservation", _size),
    "--memory-swap": _setter("memswap_limit", _swap),
    "--cpus": _setter("cpus", _cpus),
    "--cpu-shares": _setter("cpu_shares", _integer), "-c": _setter("cpu_shares", _integer),
    "--pids-limit": _setter("pids_limit", _integer),
    "--ulimit": _add_ulimit,
    "--network": _set_network, "--net": _set_network,
    "--add-host": _appender("extra_hosts"),
    "--dns": _appender("dns"),
    "--tmpfs": _appender("tmpfs"),
    "--gpus": _set_gpus,
    "--stop-timeout": _setter("stop_grace_period", lambda v: f"{_integer(v)}s"),
}
FLAG_OPTIONS = {"--read-only": "read_only", "--init": "init"}


def translate_run_args(args: Sequence[str]) -> dict[str, Any]:
    """The compose keys for `docker run` arguments; UntranslatableArgument for the first
    one that has none (with its index in args)."""
    service: dict[str, Any] = {}
    i = 0
    while i < len(args):
        argument, start = args[i], i
        name, sep, value = argument.partition("=") if argument.startswith("--") else (
            argument, "", "")
        i += 1
        if name in FLAG_OPTIONS and not sep:
            service[FLAG_OPTIONS[name]] = True
            continue
        if name not in VALUE_OPTIONS:
            reason = ("not an option" if not argument.startswith("-")
                      else "no compose key that pyrlab translates it to")
            raise UntranslatableArgument(start, argument, reason)
        if not sep:
            if i >= len(args):
                raise UntranslatableArgument(start, argument, "a value is missing")
            value = args[i]
            i += 1
        try:
            VALUE_OPTIONS[name](service, value)
        except ValueError as exc:
            raise UntranslatableArgument(start, f"{name} {value}", str(exc)) from None
    return service


# --------------------------------------------------------------------------- the file


def gpu_reservation(count: Value = "all") -> dict[str, Value]:
    """compose's spelling of `--gpus`: a device reservation of the NVIDIA driver."""
    device: dict[str, Value] = {"driver": "nvidia", "count": count, "capabilities": ["gpu"]}
    return {"resources": {"reservations": {"devices": [device]}}}


@dataclass(frozen=True)
class ComposeLab:
    plan: LabPlan
    env_file: Path | None  # holds the lab's JUPYTER_TOKEN; None: a lab without a token
    extra: Mapping[str, Any]  # compose keys from the plan's run arguments (translate_run_args)


def _literal_dollars(value: Any) -> Any:
    """compose replaces `$NAME` in every value: `$$` keeps a `$` of a path or label as is."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _literal_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_dollars(v) for v in value]
    return value


def service(lab: ComposeLab) -> dict[str, Any]:
    """One lab's service, from the plan `pyrlab up` would start it with."""
    request = lab.plan.request
    environment = {k: v for k, v in sorted(request.env.items()) if k != TOKEN_VARIABLE}
    out: dict[str, Any] = {"image": request.image, "container_name": request.name}
    if request.hostname:
        out["hostname"] = request.hostname
    if request.user:
        out["user"] = request.user
    if lab.env_file is not None:
        out["env_file"] = [str(lab.env_file)]
    out["environment"] = environment
    out["ports"] = [f"{p.host_ip}:{p.host_port}:{p.container_port}" for p in request.ports]
    out["volumes"] = [{"type": "bind", "source": str(m.source), "target": m.target,
                       "read_only": m.read_only} for m in request.mounts]
    out["labels"] = dict(sorted(request.labels.items()))
    if request.security_opts:
        out["security_opt"] = list(request.security_opts)
    if request.cap_drop:
        out["cap_drop"] = list(request.cap_drop)
    if request.health_interval:
        # Only the interval, as `up`'s --health-interval: the image's HEALTHCHECK stays.
        out["healthcheck"] = {"interval": f"{request.health_interval}s"}
    if request.gpus:
        out["deploy"] = gpu_reservation()
    for key, value in lab.extra.items():
        if key in ("environment", "labels"):
            out[key] = {**out[key], **value}  # later wins, as later --env does in `docker run`
        else:
            out[key] = value
    if not out["volumes"]:
        del out["volumes"]
    return out


def render(labs: Sequence[ComposeLab], *, source: str) -> str:
    """The compose file for `labs`; `source` names where the configuration came from."""
    services = {lab.plan.image: _literal_dollars(service(lab)) for lab in labs}
    comment = "\n".join([
        f"Written by `pyrlab export compose` (pyrlab {__version__}) from {quote(source)}.",
        "Start: docker compose -f THIS_FILE up -d (build the images first: pyrlab build).",
        "Each lab's token is in the env_file it names (mode 0600), never in this file;",
        "`pyrlab url IMAGE` prints a running lab's URL with it.",
    ])
    return dump({"services": services}, comment=comment)


# --------------------------------------------------------------------------- the command


def _origin(config: Config, image: str, index: int) -> tuple[str, int]:
    """Which config key the index-th run argument of a plan came from, and its index there
    (the plan's extra_args are run.docker_args, then the image's run_args)."""
    common = len(config.run.docker_args)
    if index < common:
        return "run.docker_args", index
    return f"images.{image}.run_args", index - common


def _write_env_file(path: Path, token: str, owner: tuple[int, int] | None) -> None:
    """`JUPYTER_TOKEN=…` in a 0600 file, replaced atomically so that it is never readable by
    others, not even for a moment."""
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp.unlink(missing_ok=True)  # a crashed export's: made anew, so 0600 for sure
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(f"{TOKEN_VARIABLE}={token}\n")
        if owner is not None and os.geteuid() == 0:
            os.chown(temp, *owner)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise RunError(f"cannot write the lab's token env file {path}: {exc.strerror}",
                       hint="make the project folder writable, or set PYRLAB_STATE_DIR") from None


def env_file_path(config: Config, container: str) -> Path:
    return token_path(config, container).with_suffix(".env")


def runnable_images(config: Config) -> list[str]:
    return [name for name, spec in config.images.items() if spec.lab_port is not None]


def compose_labs(config: Config, images: Sequence[str], *, gpus: bool,
                 allow_unsafe: bool) -> tuple[list[ComposeLab], list[str]]:
    """The labs of the compose file, their tokens in env files, their folders made; and the
    notes for the user. Only this function touches the host."""
    for image in images:
        lab_image(config, image)  # an unknown image or one without a lab port: its error
    shown = config.file.name if config.file else "pyrlab.toml"
    owner = invoking_user()
    labs, notes = [], []
    for image in images:
        port = config.images[image].lab_port
        assert port is not None
        draft = plan_lab(config, image, token="" if config.run.allow_no_token else "-",
                         gpus=gpus)
        # The same refusals as `up`, on the plan `up` would use: the compose file starts
        # the lab with exactly what the plan holds.
        notes += [f"{image}: {text}" for text in check_plan(
            config, draft, allow_unsafe=allow_unsafe, command="pyrlab export compose")]
        try:
            extra = translate_run_args(draft.request.extra_args)
        except UntranslatableArgument as exc:
            key, index = _origin(config, image, exc.index)
            raise ConfigError(
                Problem(f"{shown}: {key}[{index}]", f"`{exc.argument}`: {exc.reason}"),
                hint=f"the compose file takes {', '.join(sorted({*VALUE_OPTIONS, *FLAG_OPTIONS}))}; "
                f"start this lab with `pyrlab up {image}`, or leave it out of the compose "
                "file (name the images to export)") from None
        env_file: Path | None = None
        token = ""
        if not config.run.allow_no_token:
            token = ensure_token(token_path(config, draft.name), owner=owner)
            env_file = env_file_path(config, draft.name)
            _write_env_file(env_file, token, owner)
            notes.append(f"{image}: its token is in {env_file} (mode 0600)")
        plan = draft.finished(token)  # planned once, as `up` does
        notes += [f"{image}: {text}" for text in plan.notes]
        notes += prepare_folders(plan.folders, config.run.uid, config.run.gid)
        labs.append(ComposeLab(plan=plan, env_file=env_file, extra=extra))
    return labs, notes


def export(config: Config, args: argparse.Namespace) -> Exported:
    images = list(dict.fromkeys(args.images)) or runnable_images(config)
    if not images:
        raise RunError("no image of this project has a lab port: nothing to start",
                       hint="give an image a lab port: [images.NAME] ports = "
                       f"{{ lab = {DEFAULT_LAB_PORT} }}")
    labs, notes = compose_labs(config, images, gpus=args.gpus,
                               allow_unsafe=args.allow_unsafe)
    source = str(config.file) if config.file else str(config.root)
    return Exported(
        text=render(labs, source=source),
        summary=f"compose file for {', '.join(images)}",
        notes=tuple(notes),
        data={"labs": [{"image": lab.plan.image, "container": lab.plan.name,
                        "url": lab.plan.url,
                        "env_file": str(lab.env_file) if lab.env_file else None}
                       for lab in labs]},
    )
