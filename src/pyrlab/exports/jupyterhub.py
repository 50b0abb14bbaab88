"""`pyrlab export jupyterhub`: the project's runnable images offered by a JupyterHub.

Two kinds, both pure functions of the configuration (and of where the images were pushed):

- `docker`: a `jupyterhub_config.py` for JupyterHub + DockerSpawner on one host (a team
  server): every image with a `lab` port on offer, one persistent volume per user as the
  notebook user's home, the lab's UID/GID and the run settings of `pyrlab up` that apply
  under a hub (security options, GPUs, the env file and rc scripts).
- `kubernetes`: Zero to JupyterHub Helm values with `singleuser.profileList`, one profile
  per runnable image, for a cluster.

The images run their own command (tini, then /opt/pyrlab/start.sh, which execs
jupyterhub-singleuser when a hub starts it), so the env file, the rc script and the
notebooks folder behave as under `pyrlab up`. Every value that comes from the project
(paths, image references) is written as a Python literal (repr) or a JSON-quoted YAML
string, never pasted into code.
"""

from __future__ import annotations

import argparse
import json
import pprint
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pyrlab import __version__
from pyrlab.config.model import Config
from pyrlab.config.validators import PREFIX_RE
from pyrlab.contents.pushed import pushed_refs
from pyrlab.ecosystems.python import JUPYTERHUB_SERIES
from pyrlab.errors import ConfigError, Problem, UsageError
from pyrlab.exports import Exported
from pyrlab.launch.plan import DEFAULT_LAB_PORT, ETC, HOME, WORK, plan_lab
from pyrlab.launch.safety import check_plan

KINDS = ("docker", "kubernetes")
# One Docker volume per hub user, mounted as the notebook user's home (its work/ folder is
# JupyterLab's root): it outlives the container, which is removed when the server stops.
HOME_VOLUME = "pyrlab-home-{username}"
# Resource hints for a cluster's profiles (KubeSpawner's units); edit them to your nodes.
RESOURCES: dict[str, Any] = {"cpu_guarantee": 0.5, "cpu_limit": 2.0,
                             "mem_guarantee": "1G", "mem_limit": "4G"}
GPU_RESOURCES: dict[str, Any] = {"cpu_guarantee": 1.0, "cpu_limit": 4.0,
                                 "mem_guarantee": "4G", "mem_limit": "16G"}
GPU_LIMIT = "nvidia.com/gpu"
START_SCRIPT = "/opt/pyrlab/start.sh"  # the image's CMD (see Dockerfile.j2)


@dataclass(frozen=True)
class HubImage:
    name: str  # the image's name in the config (pylab)
    ref: str  # what the hub starts: pylab:latest, registry/ns/pylab@sha256:…
    cuda: bool


def runnable_images(config: Config) -> list[str]:
    """The images a hub can start: those with a `lab` port, in file order."""
    return [name for name, image in config.images.items() if image.lab_port is not None]


def registry_prefix(registry: str) -> str:
    """`HOST[:PORT]/NAMESPACE` as an image name prefix ("…/"); a usage error otherwise."""
    prefix = registry.strip().rstrip("/") + "/"
    if prefix == "/" or not PREFIX_RE.match(prefix):
        raise UsageError(f"--registry: expected HOST[:PORT]/NAMESPACE, got {registry!r}")
    return prefix


def _repository(ref: str) -> str:
    """The reference without its tag or digest (a registry's port is kept)."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def hub_images(config: Config, *, registry: str | None = None,
               pushed: Mapping[str, str] | None = None) -> list[HubImage]:
    """The runnable images as the hub names them: what `pyrlab push` recorded (to this
    registry, when one is given), else REGISTRY/NAME:latest, else the project's own
    name in a registry (PREFIXIMAGE, see Config.registry_ref; without a prefix, the local
    PROJECT/IMAGE, for a hub on the host that built them)."""
    prefix = registry_prefix(registry) if registry is not None else None
    pushed = pushed or {}
    images = []
    for name in runnable_images(config):
        record = pushed.get(name)
        if record is not None and (prefix is None or record.startswith(prefix)):
            ref = record
        elif prefix is not None:
            ref = f"{prefix}{name}:latest"
        else:
            ref = config.registry_ref(name)
        images.append(HubImage(name, ref, config.base.cuda))
    if not images:
        raise ConfigError(Problem(_shown(config), "no image has a lab port, so a hub has "
                                  "nothing to start"),
                          hint="give an image one: [images.pylab] ports = "
                          f"{{ lab = {DEFAULT_LAB_PORT} }}")
    return images


def _shown(config: Config) -> str:
    return config.file.name if config.file else "pyrlab.toml"


def _literal(value: Any) -> str:
    """A Python literal of `value` (built from str, int, float, bool, None, list, dict):
    repr round-trips every string, whatever it holds."""
    return pprint.pformat(value, indent=1, width=88, sort_dicts=False)


def _volume_path(config: Config, key: str, value: str) -> str:
    """A host file for DockerSpawner's volumes, whose names it formats ({username}): braces
    doubled; a colon would split Docker's HOST:CONTAINER:MODE bind."""
    path = str(config.path(value).resolve())
    if ":" in path:
        raise ConfigError(Problem(f"{_shown(config)}: {key}",
                                  f"{path}: a path with a colon cannot be mounted by Docker"))
    return path.replace("{", "{{").replace("}", "}}")


def _scripts(config: Config, images: Sequence[HubImage]) -> tuple[str | None, dict[str, str]]:
    """The env file and each image's rc script that exist, as host paths to mount."""
    run = config.run
    envfile = None
    if run.envfile.strip() and config.path(run.envfile).is_file():
        envfile = _volume_path(config, "run.envfile", run.envfile)
    rc = {}
    for image in images:
        script = run.rc_for(image.name)
        if script and config.path(script).is_file():
            rc[image.ref] = _volume_path(config, f"run.rc.{image.name}", script)
    return envfile, rc


def docker_config(config: Config, images: Sequence[HubImage]) -> str:
    """jupyterhub_config.py for JupyterHub + DockerSpawner offering `images`."""
    run = config.run
    offered = {image.name: image.ref for image in images}
    host_config: dict[str, Any] = {}
    if not run.sudo:  # as `pyrlab up`: no privileges to gain, no capabilities
        host_config.update({"security_opt": ["no-new-privileges"], "cap_drop": ["ALL"]})
    if config.base.cuda:
        host_config["device_requests"] = [{"Driver": "", "Count": -1,
                                           "Capabilities": [["gpu"]]}]
    envfile, rc = _scripts(config, images)
    read_only = {envfile: f"{ETC}/env"} if envfile else {}
    lines = [
        f"# JupyterHub + DockerSpawner for the pyrlab project {config.root}: its runnable",
        f"# images, written by `pyrlab export jupyterhub --kind docker` (pyrlab {__version__}).",
        f"# For JupyterHub {JUPYTERHUB_SERIES}.x and DockerSpawner 13 or later (the images hold",
        f"# jupyterhub-singleuser {JUPYTERHUB_SERIES}.*).",
        "#",
        "# Use it as the hub's configuration file, or load it from your own with",
        '#     load_subconfig("jupyterhub_config.pyrlab.py")',
        "# What it leaves to you: the authenticator and admin users, the hub's address",
        "# (c.JupyterHub.hub_ip / hub_connect_ip) and the Docker network the servers join",
        "# (c.DockerSpawner.network_name), TLS in front of the proxy.",
        "",
        "from dockerspawner.volumenamingstrategy import escaped_format_volume_name",
        "",
        "c = get_config()  # noqa: F821",
        "",
        'c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"',
        "# Every image with a lab port; with more than one the spawn page offers the choice",
        '# (REST API: POST /users/NAME/server with {"image": NAME}).',
        f"c.DockerSpawner.allowed_images = {_literal(offered)}",
        f"c.DockerSpawner.image = {_literal(images[0].ref)}",
        "# The image's own start script (tini stays PID 1), which execs jupyterhub-singleuser",
        "# under a hub, after the env file, the rc script and the notebooks folder as with",
        "# `pyrlab up`; Spawner.args reach the server. The container goes when the server",
        "# stops; the user's volume stays.",
        f"c.DockerSpawner.cmd = {_literal([START_SCRIPT])}",
        "c.DockerSpawner.remove = True",
        "c.DockerSpawner.format_volume_name = escaped_format_volume_name",
        f"c.DockerSpawner.volumes = {_literal({HOME_VOLUME: HOME})}",
        f"c.DockerSpawner.notebook_dir = {_literal(WORK)}",
        f"c.DockerSpawner.environment = {_literal({'HOME': HOME})}",
        "# The notebook user's UID:GID (run.uid, run.gid) and `pyrlab up`'s security options.",
        f"c.DockerSpawner.extra_create_kwargs = {_literal({'user': f'{run.uid}:{run.gid}'})}",
        f"c.DockerSpawner.extra_host_config = {_literal(host_config)}",
    ]
    if read_only:
        lines += ["# run.envfile, sourced by start.sh (a file on this host).",
                  f"c.DockerSpawner.read_only_volumes = {_literal(read_only)}"]
    if rc:
        lines += [
            "",
            "# run.rc: each image's start hook (files on this host), mounted for the image the",
            "# user chose.",
            f"PYRLAB_RC = {_literal(rc)}",
            "",
            "",
            "def pyrlab_rc(spawner):",
            '    choice = spawner.user_options.get("image")',
            ("    image = spawner.allowed_images.get(choice, spawner.image) if choice "
            "else spawner.image"),
            "    if image in PYRLAB_RC:",
            "        spawner.read_only_volumes = {**spawner.read_only_volumes,",
            f"                                     PYRLAB_RC[image]: {_literal(ETC + '/rc.sh')}}}",
            "",
            "",
            "c.Spawner.pre_spawn_hook = pyrlab_rc",
        ]
    ignored = [key for key, args in [("run.docker_args", run.docker_args)]
               + [(f"images.{i.name}.run_args", config.images[i.name].run_args) for i in images]
               if args]
    if ignored:
        lines += ["", f"# Not applied: {', '.join(ignored)} (extra `docker run` arguments);",
                  "# add what they do to extra_host_config above."]
    return "\n".join(lines) + "\n"


def _image_fields(ref: str) -> dict[str, str]:
    """singleuser.image's name and tag (a digest rides on the tag: name:tag@sha256:…)."""
    repository = _repository(ref)
    rest = ref[len(repository):]
    tag, _, digest = rest.lstrip(":").partition("@")
    tag = tag or "latest"
    return {"name": repository, "tag": f"{tag}@{digest}" if digest else tag}


def kubernetes_values(config: Config, images: Sequence[HubImage]) -> str:
    """Zero to JupyterHub Helm values: one profile per runnable image."""
    run = config.run
    identity = {"uid": run.uid, "gid": run.gid, "fs_gid": run.gid}
    profiles = []
    for index, image in enumerate(images):
        override: dict[str, Any] = {"image": image.ref, **identity,
                                    **(GPU_RESOURCES if image.cuda else RESOURCES)}
        if image.cuda:
            override["extra_resource_limits"] = {GPU_LIMIT: "1"}
        profile: dict[str, Any] = {
            "display_name": image.name,
            "slug": image.name,
            "description": f"pyrlab image {image.name} ({image.ref})"
                           + (", one NVIDIA GPU" if image.cuda else ""),
        }
        if index == 0:
            profile["default"] = True
        profile["kubespawner_override"] = override
        profiles.append(profile)
    values = {
        "singleuser": {
            # The image's own command (tini, start.sh → jupyterhub-singleuser), not the
            # chart's default `jupyterhub-singleuser`, which would skip the env file and rc.
            "cmd": [START_SCRIPT],
            "uid": run.uid,
            "fsGid": run.gid,
            "image": _image_fields(images[0].ref),
            "storage": {"type": "dynamic", "homeMountPath": HOME},
            "extraEnv": {"HOME": HOME},
            "defaultUrl": "/lab",
            "profileList": profiles,
        },
    }
    header = [
        f"# Zero to JupyterHub Helm values for the pyrlab project {config.root}: one profile",
        "# per runnable image, written by `pyrlab export jupyterhub --kind kubernetes`",
        (f"# (pyrlab {__version__}). For chart 4.x (JupyterHub {JUPYTERHUB_SERIES}.x; the images "
        f"hold jupyterhub-singleuser {JUPYTERHUB_SERIES}.*)."),
        "#   helm upgrade --install jhub jupyterhub/jupyterhub -f THIS_FILE",
        "# Resource figures are hints: edit them to your nodes. Each user's home is a",
        f"# persistent volume at {HOME} (its work/ folder is JupyterLab's root).",
    ]
    return "\n".join(header) + "\n" + _yaml(values, 0)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    # A JSON string is a YAML double-quoted scalar: nothing in it can be read as YAML syntax.
    return json.dumps(str(value))


def _yaml(value: Any, indent: int) -> str:
    """Block-style YAML of dicts, lists and scalars; every string double-quoted."""
    pad = " " * indent
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = key if _PLAIN_KEY.match(key) else json.dumps(key)
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{name}:\n{_yaml(item, indent + 2)}")
            else:
                out.append(f"{pad}{name}: {_yaml_inline(item)}\n")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                first, _, rest = _yaml(item, indent + 2).partition("\n")
                out.append(f"{pad}- {first.lstrip()}\n{rest}")
            else:
                out.append(f"{pad}- {_yaml_inline(item)}\n")
    return "".join(out)


def _yaml_inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _yaml_scalar(value)


HELP = ("a jupyterhub_config.py for DockerSpawner (--kind docker) or Zero to "
        "JupyterHub Helm values (--kind kubernetes)")


def render(config: Config, kind: str, *, registry: str | None = None) -> Exported:
    """The exported file of `kind` (docker, kubernetes) for the project."""
    if kind not in KINDS:
        raise UsageError(f"--kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    images = hub_images(config, registry=registry, pushed=pushed_refs(config.root))
    names = ", ".join(image.name for image in images)
    data = {"images": [image.ref for image in images], "hub_kind": kind}
    if kind == "docker":
        return Exported(docker_config(config, images),
                        f"jupyterhub_config.py for JupyterHub + DockerSpawner ({names})",
                        data=data)
    return Exported(kubernetes_values(config, images),
                    f"Zero to JupyterHub Helm values ({names})", data=data)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KINDS, default="docker",
                        help="docker: jupyterhub_config.py for DockerSpawner (default); "
                             "kubernetes: Zero to JupyterHub Helm values")
    parser.add_argument("--registry", metavar="HOST[:PORT]/NAMESPACE", default=None,
                        help="where the images were pushed (default: what `pyrlab push` "
                             "recorded, else the project's own names)")
    parser.add_argument("--allow-unsafe", action="store_true",
                        help="allow run.uid = 0 (the servers would run as root), as "
                             "`pyrlab up --allow-unsafe` does")


def safety_notes(config: Config, *, allow_unsafe: bool) -> list[str]:
    """`up`'s refusals for what the hub config carries over: the notebook user's UID
    (run.uid = 0 needs --allow-unsafe). The run arguments are not carried over (the file
    says so) and each user gets a volume, not the host's folders, so neither is checked."""
    notes: list[str] = []
    for image in runnable_images(config):
        draft = plan_lab(config, image, token="-")
        notes += check_plan(config, replace(draft, user_args=(), user_folders=()),
                            allow_unsafe=allow_unsafe, command="pyrlab export jupyterhub")
    return list(dict.fromkeys(notes))


def export(config: Config, args: argparse.Namespace) -> Exported:
    exported = render(config, args.kind, registry=args.registry)
    notes = safety_notes(config, allow_unsafe=args.allow_unsafe)
    return replace(exported, notes=(*exported.notes, *notes))
