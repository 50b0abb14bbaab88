"""From the configuration to the engine's RunRequest: no engine, no side effects.

Everything a lab is started with is decided here, on the host, so that the start script
in the image stays short: user, mounts, ports, token, labels, security options.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

from pyrlab.config.confine import outside
from pyrlab.config.model import DEFAULT_IMAGES, Config, ImageConfig
from pyrlab.engines.base import Mount, Port, RunRequest
from pyrlab.errors import RunError
from pyrlab.platforms import NATIVE, Platform, is_native
from pyrlab.platforms import token as platform_token

HOME = "/home/notebook"  # the notebook user's home in every image
WORK = "/home/notebook/work"  # the notebooks folder: JupyterLab's root and the working dir
ETC = "/etc/pyrlab"  # where start.sh looks for the env file, the rc and userlab scripts

LABEL_PROJECT = "org.pyrlab.project"  # the project's key, as on its images: `ps`/`down`…
LABEL_PROJECT_DIR = "org.pyrlab.project-dir"  # … see only its labs; the folder, for messages
LABEL_LAB = "org.pyrlab.lab"  # the image's name in the config (pylab, rlab, …)
LABEL_PORT = "org.pyrlab.lab-port"
LABEL_URL = "org.pyrlab.url"  # without the token
# The other named ports this lab publishes ("dtale=40000,tensorboard=6006"): `url` and `ps`
# show each as a URL. The image's org.pyrlab.ports may name more: a busy one is left out.
LABEL_SERVICES = "org.pyrlab.services"
# The platform a lab of another platform than the engine's own runs ("linux/arm64"); a lab
# of the engine's own has none, so that its labels (and `docker run` argv) stay as before.
LABEL_PLATFORM = "org.pyrlab.platform"

ALL_INTERFACES = ("0.0.0.0", "::", "[::]")
# The lab port of pyrlab's default images (config/schema.py), the example hints give.
DEFAULT_LAB_PORT: int = DEFAULT_IMAGES["pylab"]["ports"]["lab"]
HEALTH_INTERVAL = 10  # seconds between health checks of a running lab


@dataclass(frozen=True)
class LabPlan:
    image: str  # the image's name in the config
    name: str  # the container's name
    port: int  # JupyterLab's port, the same inside and outside
    url: str  # without the token
    request: RunRequest
    folders: tuple[Path, ...]  # host folders to create (mounted read-write)
    notes: tuple[str, ...]  # what the user should know (a script that will be ignored…)
    # What the project asks for itself, by config key, for launch/safety.py to judge: its run
    # arguments (also in request.extra_args) and the host folders it mounts.
    user_args: tuple[tuple[str, tuple[str, ...]], ...] = ()
    user_folders: tuple[tuple[str, Path], ...] = ()

    def finished(self, token: str, unpublished: Collection[str] = ()) -> LabPlan:
        """This plan, made with a stand-in token ("-", or "" where no token is allowed)
        before the lab's token existed and before its ports were found busy, with `token`
        and without the extra ports named in `unpublished`: what plan_lab(…, token=token,
        unpublished=unpublished) would make, without planning again."""
        env = dict(self.request.env)
        had_token = env.pop("JUPYTER_TOKEN", None) is not None
        if not token and had_token:
            raise RunError("a lab always has a token")  # planned without allow_no_token
        env.pop("PYRLAB_ALLOW_NO_TOKEN", None)
        services = dict(entry.split("=") for entry in
                        filter(None, self.request.labels[LABEL_SERVICES].split(",")))
        left_out = {int(services.pop(name)): name for name in unpublished if name in services}
        for number, name in left_out.items():
            for key in (port_env_name(name), *service_env(name, number)):
                env.pop(key, None)
        if token:
            env["JUPYTER_TOKEN"] = token
        else:
            env["PYRLAB_ALLOW_NO_TOKEN"] = "1"
        labels = {**self.request.labels,
                  LABEL_SERVICES: ",".join(f"{n}={p}" for n, p in services.items())}
        ports = tuple(p for p in self.request.ports if p.host_port not in left_out)
        return replace(self, request=replace(self.request, env=env, ports=ports,
                                             labels=labels))


def container_name(config: Config, image: str, port: int, platform: Platform = NATIVE,
                   host: Platform = NATIVE) -> str:
    """Stable per project, image, platform and port: a second `up` finds the first lab by
    name. PROJECT__IMAGE-PORT: neither name holds "__", so two projects never share one;
    with bare names, pyrlab-IMAGE-PORT as before. A lab of another platform than the
    engine's own (`host`) is that name and its token, PROJECT__IMAGE-PORT__arm64
    (pyrlab-IMAGE-PORT__arm64): every name of the engine's own ends in -PORT, so neither
    kind takes the other's, with or without bare names (an infix, pyrlab-IMAGE__arm64-PORT,
    would be project pyrlab-IMAGE's lab of an image called arm64)."""
    name = f"{config.name}__{image}-{port}" if config.name else f"pyrlab-{image}-{port}"
    return name if is_native(platform, host) else f"{name}__{platform_token(platform)}"


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False


def connect_host(bind: str) -> str:
    """The address the host reaches a lab published on `bind` at (URL form)."""
    if bind in ALL_INTERFACES or bind == "localhost":
        return "127.0.0.1"
    address = bind.strip("[]")
    return f"[{address}]" if ":" in address else address


def lab_url(bind: str, port: int, token: str = "") -> str:
    url = f"http://{connect_host(bind)}:{port}/lab"
    return f"{url}?token={token}" if token else url


def service_url(bind: str, port: int) -> str:
    """Where the host reaches a service (TensorBoard, D-Tale…) published on `bind`."""
    return f"http://{connect_host(bind)}:{port}/"


def port_env_name(name: str) -> str:
    """The variable that tells code in the lab where the named port is published."""
    return f"PYRLAB_PORT_{name.upper().replace('-', '_')}"


def service_env(name: str, port: int) -> dict[str, str]:
    """What a service started in the lab reads to choose its port, by the name of the port
    it gets (that it listens on every interface is set in the image: /opt/pyrlab/dtale.ini,
    /opt/pyrlab/bin/tensorboard, which reads PYRLAB_PORT_TENSORBOARD)."""
    if name == "dtale":
        # D-Tale takes the first free port from DTALE_MIN_PORT to DTALE_MAX_PORT (default
        # 40000-49000): the first D-Tale gets the published one, a second the next.
        return {"DTALE_MIN_PORT": str(port), "DTALE_MAX_PORT": str(max(port, 49000))}
    return {}


def lab_image(config: Config, image: str) -> ImageConfig:
    """The image to run, which must exist and serve JupyterLab (have a `lab` port)."""
    if image not in config.images:
        raise RunError(f"unknown image '{image}' (known: {', '.join(config.images)})")
    spec = config.images[image]
    if spec.lab_port is None:
        labs = [n for n, i in config.images.items() if i.lab_port is not None]
        raise RunError(
            f"image '{image}' has no lab port: it is a base for other images",
            hint=f"start one of {', '.join(labs)}" if labs
            else f"give the image a lab port: [images.{image}] ports = {{ lab = {DEFAULT_LAB_PORT} }}",
        )
    return spec


def _host_path(config: Config, value: str) -> Path | None:
    """A run path from the config; "" means "not used"."""
    if not value.strip():
        return None
    path = config.path(value)
    if "," in str(path):  # `--mount` is a comma-separated list of key=value
        raise RunError(f"{path}: a path with a comma cannot be mounted",
                       hint="rename the folder or point [run] at another one")
    return path


def plan_lab(config: Config, image: str, *, port: int | None = None, token: str,
             gpus: bool = False, unpublished: Collection[str] = (),
             platform: Platform = NATIVE, host: Platform = NATIVE) -> LabPlan:
    """How to start `image`'s lab. `token` is "" only when run.allow_no_token is set;
    `unpublished` names extra ports (dtale…) to leave out because they are busy.
    `platform`: the image's platform to run (NATIVE, or `host`, the engine's own, plans as
    before; another starts that platform's image under its own name and label)."""
    spec = lab_image(config, image)
    run = config.run
    lab_port = port if port is not None else spec.lab_port
    assert lab_port is not None
    if not 1 <= lab_port <= 65535:
        raise RunError(f"--port: expected a port number 1-65535, got {lab_port}")
    if not token:
        if not run.allow_no_token:
            raise RunError("a lab always has a token")  # the caller creates one
        if not is_loopback(run.bind):
            raise RunError(
                f"refusing to publish a lab without a token on {run.bind}: anyone who can "
                "reach this machine could run code as you",
                hint="keep run.allow_no_token = false, or publish on 127.0.0.1 (run.bind)",
            )

    ports = [Port(run.bind, lab_port, lab_port)]
    env = {"HOME": HOME, "PYRLAB_LAB_PORT": str(lab_port)}
    services = []
    for port_name, number in spec.ports:
        if port_name == "lab" or port_name in unpublished:
            continue
        if number == lab_port:
            raise RunError(f"port {lab_port} is also the '{port_name}' port of {image}",
                           hint="choose another --port")
        ports.append(Port(run.bind, number, number))
        # So that code in the lab knows where to serve (dtale.show(port=…), tensorboard).
        env[port_env_name(port_name)] = str(number)
        env.update(service_env(port_name, number))
        services.append(f"{port_name}={number}")
    if token:
        env["JUPYTER_TOKEN"] = token
    else:
        env["PYRLAB_ALLOW_NO_TOKEN"] = "1"

    mounts: list[Mount] = []
    folders: list[Path] = []
    notes: list[str] = []
    home = _host_path(config, run.home)
    notebooks = _host_path(config, run.notebooks)
    if home is not None:
        mounts.append(Mount(home, HOME))
        folders.append(home)
        if notebooks is not None:
            # The engine would create the mount point inside the home folder as root.
            folders.append(home / "work")
    if notebooks is not None:
        mounts.append(Mount(notebooks, WORK))
        folders.append(notebooks)

    scripts = [("envfile", run.envfile, "env", False)]
    rc = run.rc_for(image)
    if rc:
        scripts.append((f"rc.{image}", rc, "rc.sh", True))
    if run.userlab:
        scripts.append(("userlab", run.userlab, "userlab.sh", True))
    for key, value, target, executable in scripts:
        path = _host_path(config, value)
        if path is None:
            continue
        why = outside(path, config.root)
        if why is not None:  # load_project reports it first, with the file's name
            raise RunError(f"run.{key}: {value!r} {why}",
                           hint="the lab may only be given files from the project folder")
        path = path.resolve()  # what is mounted is what was checked
        if not path.is_file():
            if key.startswith("rc."):
                notes.append(f"run.{key}: {path} does not exist; the lab starts without it")
            continue
        if executable and not os.access(path, os.X_OK):
            notes.append(f"run.{key}: {path} is not executable, so the lab ignores it "
                         f"(chmod +x {path.name})")
        mounts.append(Mount(path, f"{ETC}/{target}", read_only=True))

    url = lab_url(run.bind, lab_port)
    name = container_name(config, image, lab_port, platform, host)
    foreign = {} if is_native(platform, host) else {LABEL_PLATFORM: platform}
    request = RunRequest(
        image=config.image_ref(image, "latest", platform, host),
        name=name,
        user=f"{run.uid}:{run.gid}",
        env=env,
        ports=tuple(ports),
        mounts=tuple(mounts),
        labels={
            LABEL_PROJECT: config.project_id,
            LABEL_PROJECT_DIR: str(config.root),
            LABEL_LAB: image,
            LABEL_PORT: str(lab_port),
            LABEL_URL: url,
            LABEL_SERVICES: ",".join(services),
            **foreign,
        },
        gpus=gpus or config.base.cuda,
        extra_args=run.docker_args + spec.run_args,
        security_opts=() if run.sudo else ("no-new-privileges",),
        cap_drop=() if run.sudo else ("ALL",),
        hostname=image.replace("_", "-").replace(".", "-"),
        # The image checks every 30 s: `ps` would say "starting" for 30 s after `up`.
        health_interval=HEALTH_INTERVAL,
        # Another platform's image runs under emulation; the engine's own as before.
        platform=NATIVE if is_native(platform, host) else platform,
    )
    user_folders = [(key, path) for key, path in (("run.home", home),
                                                  ("run.notebooks", notebooks)) if path]
    return LabPlan(image=image, name=name, port=lab_port, url=url, request=request,
                   folders=tuple(folders), notes=tuple(notes),
                   user_args=(("run.docker_args", run.docker_args),
                              (f"images.{image}.run_args", spec.run_args)),
                   user_folders=tuple(user_folders))
