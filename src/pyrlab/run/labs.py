"""This project's lab containers, found by their labels and described from `inspect`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyrlab.config.model import Config
from pyrlab.engines.base import Engine
from pyrlab.errors import RunError
from pyrlab.launch.plan import (
    LABEL_LAB,
    LABEL_PLATFORM,
    LABEL_PORT,
    LABEL_PROJECT,
    LABEL_PROJECT_DIR,
    LABEL_SERVICES,
    LABEL_URL,
    service_url,
)
from pyrlab.platforms import NATIVE, Platform


@dataclass(frozen=True)
class Service:
    """A named port a lab publishes besides JupyterLab's (dtale, tensorboard…)."""

    name: str
    port: int
    url: str
    published: str  # "127.0.0.1:6006->6006"


@dataclass(frozen=True)
class Lab:
    name: str
    image: str  # the image's name in the config
    ref: str  # the image reference it was started from
    image_id: str  # the image it runs (a rebuild moves the reference, not this)
    project: str  # the project's id (see pyrlab.config.model.Config.project_id)
    project_dir: str
    port: int | None
    url: str  # without the token
    state: str  # running, exited, created, restarting…
    exit_code: int | None
    health: str | None  # starting, healthy, unhealthy; None without a health check
    started: datetime | None
    published: tuple[str, ...]  # "127.0.0.1:8888->8888"
    token: str  # from the container's environment ("" when it has none)
    privileged: bool = False  # started with run.sudo: capabilities kept, privileges gainable
    services: tuple[Service, ...] = ()  # its other named ports, in the config's order
    health_note: str = ""  # why the health shown may be stale (set by `ps`)
    # The platform of a lab of another platform than the engine's own ("linux/arm64", its
    # label); NATIVE ("") for the engine's own, whose labs carry no such label.
    platform: Platform = NATIVE

    @property
    def running(self) -> bool:
        return self.state == "running"

    def uptime(self, now: datetime | None = None) -> float | None:
        if not self.running or self.started is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.started).total_seconds())

    @property
    def status(self) -> str:
        """One word for `ps`: healthy / unhealthy / starting / running / exited (N)…"""
        if self.running:
            return self.health or "running"
        if self.state == "exited" and self.exit_code is not None:
            return f"exited ({self.exit_code})"
        return self.state


def parse_time(text: str) -> datetime | None:
    """Docker's RFC 3339 times with nanoseconds ("2026-01-02T03:04:05.123456789Z")."""
    if not text or text.startswith("0001-"):  # the zero time: never started
        return None
    main, dot, rest = text.partition(".")
    if dot:  # Python takes at most 6 digits of fractional seconds
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{main}.{digits[:6]}{rest[len(digits):]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _published(host_config: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    bindings = host_config.get("PortBindings") or {}
    for container_port, hosts in sorted(bindings.items(), key=lambda kv: int(kv[0].split("/")[0])):
        for host in hosts or []:
            ip = host.get("HostIp") or "0.0.0.0"
            out.append(f"{ip}:{host.get('HostPort', '')}->{container_port.split('/')[0]}")
    return tuple(out)


def _services(label: str, published: tuple[str, ...]) -> tuple[Service, ...]:
    """The services of the label (see LABEL_SERVICES) that are published, each at the
    address its port is published on."""
    bindings = {entry.rsplit("->", 1)[1]: entry for entry in published}
    out = []
    for item in label.split(","):
        name, _, number = item.partition("=")
        entry = bindings.get(number)
        if not name or not number.isdigit() or entry is None:
            continue
        host = entry.rsplit("->", 1)[0].rsplit(":", 1)[0]
        out.append(Service(name, int(number), service_url(host, int(number)), entry))
    return tuple(out)


def lab_from_inspect(data: Mapping[str, Any]) -> Lab:
    config = data.get("Config") or {}
    labels = config.get("Labels") or {}
    state = data.get("State") or {}
    health = state.get("Health") or state.get("Healthcheck") or {}  # Podman 4 says the latter
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    port = labels.get(LABEL_PORT, "")
    host = data.get("HostConfig") or {}
    published = _published(host)
    return Lab(
        name=str(data.get("Name", "")).lstrip("/"),
        image=labels.get(LABEL_LAB, ""),
        ref=str(config.get("Image", "")),
        image_id=str(data.get("Image", "")),
        project=labels.get(LABEL_PROJECT, ""),
        project_dir=labels.get(LABEL_PROJECT_DIR, ""),
        port=int(port) if port.isdigit() else None,
        url=labels.get(LABEL_URL, ""),
        state=str(state.get("Status", "unknown")),
        exit_code=state.get("ExitCode") if state.get("Status") == "exited" else None,
        health=health.get("Status") or None,
        started=parse_time(str(state.get("StartedAt", ""))),
        published=published,
        token=env.get("JUPYTER_TOKEN", ""),
        privileged="ALL" not in (host.get("CapDrop") or [])
        and "no-new-privileges" not in (host.get("SecurityOpt") or []),
        services=_services(labels.get(LABEL_SERVICES, ""), published),
        platform=labels.get(LABEL_PLATFORM, NATIVE),
    )


def find_labs(engine: Engine, config: Config | None, image: str | None = None) -> list[Lab]:
    """This project's labs (running or not), optionally only those of one image; with no
    config, the labs of every project."""
    labs = []
    key = config.project_id if config is not None else None
    # Images carry the project label too: only containers with a lab label are labs.
    for name in engine.list_containers(f"{LABEL_PROJECT}={key}" if key else LABEL_LAB):
        data = engine.inspect_container(name)
        if data is None:  # removed in between
            continue
        lab = lab_from_inspect(data)
        if (key is None or lab.project == key) and lab.image and (image is None
                                                                  or lab.image == image):
            labs.append(lab)
    return sorted(labs, key=lambda lab: (lab.project_dir, lab.image, lab.port or 0, lab.name))


def one_lab(engine: Engine, config: Config, image: str, port: int | None = None,
            *, running: bool = True) -> Lab:
    """The lab of `image` (at `port` when given) that a command acts on."""
    if image not in config.images:
        raise RunError(f"unknown image '{image}' (known: {', '.join(config.images)})")
    labs = [lab for lab in find_labs(engine, config, image)
            if (port is None or lab.port == port) and (lab.running or not running)]
    at = f" on port {port}" if port is not None else ""
    if not labs:
        raise RunError(f"no lab of {image}{at} is {'running' if running else 'there'}",
                       hint=f"start one: pyrlab up {image}")
    if len(labs) > 1:
        ports = ", ".join(str(lab.port) for lab in labs)
        raise RunError(f"{len(labs)} labs of {image} are running (ports {ports})",
                       hint="choose one with --port")
    return labs[0]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"
