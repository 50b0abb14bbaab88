"""No silent privilege: what a lab project may ask of the host on its own.

A project folder may come from someone else, so its configuration may not widen what the
lab can do on the host: run arguments outside an allowlist of harmless ones, running as
root, mounting `/`, the user's whole home or a system folder. Each needs `--allow-unsafe`
on the command line; a config value, an environment variable or `--set` never grants it.
Two more the user's own file (config/user.py) may grant, as the user's choice for this
machine: a notebooks or home folder outside the project folder (other than pyrlab's
defaults), and a lab without a token. The project file describes the lab; what the lab
may reach on this machine is the user's to grant.
`check_plan` is the one place that decides, for every command that starts a lab or writes
how to start one (`up`, `restart`, the exports).

Run arguments are parsed the way the engines' CLI parser (pflag) reads them, every
spelling (`--opt=value`, `--opt value`, `-xVALUE`, `-x=VALUE`, `-x VALUE`), because a
denylist would miss `-u0`, `--privileged=true` or `-v/:/x`. pyrlab's own arguments (its
--user, --cap-drop, the GPU options of `cuda = true`) are not the project's and are not
checked here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyrlab.config.confine import outside
from pyrlab.config.model import DEFAULT_NOTEBOOKS, Config, default_home
from pyrlab.config.user import shown_path, user_config_path
from pyrlab.errors import ConfigError, Problem
from pyrlab.launch.plan import LabPlan, is_loopback

ValueCheck = Callable[[str, LabPlan], "str | None"]

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OWN_LABEL_PREFIX = "org.pyrlab."


def _env(value: str, plan: LabPlan) -> str | None:
    name, sep, _ = value.partition("=")
    if not sep:
        return f"copies the host's variable {name!r} into the lab (give NAME=VALUE)"
    if not _ENV_NAME_RE.match(name):
        return f"{name!r} is not a variable name"
    if name in plan.request.env or name.startswith(("PYRLAB_", "JUPYTER_")):
        return f"overrides {name}, which pyrlab sets (the token, ports and home)"
    return None


def _label(value: str, plan: LabPlan) -> str | None:
    del plan
    if value.startswith(OWN_LABEL_PREFIX):
        return f"{OWN_LABEL_PREFIX}* labels are pyrlab's own: they tell which labs are whose"
    return None


def _any(value: str, plan: LabPlan) -> str | None:
    del value, plan
    return None


# Options known to be harmless: resource limits, environment, labels. Each takes a value;
# the check of a value returns why it is refused.
VALUE_OPTIONS: Mapping[str, ValueCheck] = {
    "--memory": _any, "--memory-swap": _any, "--memory-reservation": _any,
    "--memory-swappiness": _any, "--cpus": _any, "--cpu-shares": _any, "--cpu-period": _any,
    "--cpu-quota": _any, "--cpuset-cpus": _any, "--cpuset-mems": _any, "--pids-limit": _any,
    "--ulimit": _any, "--shm-size": _any, "--blkio-weight": _any, "--stop-timeout": _any,
    "--stop-signal": _any, "--env": _env, "--label": _label,
}
SHORT_OPTIONS = {"m": "--memory", "c": "--cpu-shares", "e": "--env", "l": "--label"}
# Harmless switches, given alone or as --switch=true/false.
SWITCHES = frozenset({"--init", "--read-only"})
_BOOLEAN = frozenset({"true", "false", "1", "0", "t", "f"})

WIDENS = "widens what the lab may do on the host"
NOT_AN_OPTION = "is not an option: the engine would read it as the image to run"
# Folders a lab may not mount without --allow-unsafe (as notebooks or home, or below them):
# the host's own files. `/` and the folders that hold the user's home count too, and a few
# shared ones only as a whole (/tmp holds other users' files and the X11 socket).
SYSTEM_FOLDERS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                  "/boot", "/dev", "/proc", "/sys", "/var", "/run", "/root", "/srv", "/opt",
                  "/snap")
WHOLE_FOLDERS = ("/", "/home", "/mnt", "/media", "/tmp")


@dataclass(frozen=True)
class Refusal:
    key: str  # the config key the setting came from: run.docker_args, run.uid…
    what: str  # the argument or value, quoted as the user wrote it
    why: str
    # Whether setting it in the user's own file would allow it too (not only the flag).
    user_may_grant: bool = False


def _split(args: tuple[str, ...], plan: LabPlan) -> list[tuple[tuple[str, ...], str | None]]:
    """`args` cut into options, each as (its elements, why it is refused or None)."""
    out: list[tuple[tuple[str, ...], str | None]] = []
    i = 0
    while i < len(args):
        element = args[i]
        i += 1
        option: str | None = None
        value: str | None = None
        if element.startswith("--") and len(element) > 2:
            option, sep, rest = element.partition("=")
            value = rest if sep else None
            if option in SWITCHES:
                bad = value is not None and value.lower() not in _BOOLEAN
                out.append(((element,), f"{option} takes true or false" if bad else None))
                continue
        elif element.startswith("-") and len(element) > 1:
            option = SHORT_OPTIONS.get(element[1])
            if option is not None and len(element) > 2:
                value = element[2:].removeprefix("=")
        if option is None or option not in VALUE_OPTIONS:
            # Not on the list. Its value, if it has one, is shown with it.
            if not element.startswith("-"):
                out.append(((element,), NOT_AN_OPTION))
                continue
            if "=" not in element and i < len(args) and not args[i].startswith("-"):
                out.append(((element, args[i]), WIDENS))
                i += 1
            else:
                out.append(((element,), WIDENS))
            continue
        if value is not None:
            out.append(((element,), VALUE_OPTIONS[option](value, plan)))
        elif i >= len(args):
            out.append(((element,), f"{option} needs a value"))
        else:
            out.append(((element, args[i]), VALUE_OPTIONS[option](args[i], plan)))
            i += 1
    return out


def harmless_args(plan: LabPlan) -> tuple[str, ...]:
    """The project's run arguments without those that need --allow-unsafe: what a lab
    that no user asked for (the self-test's) is started with."""
    return tuple(element for _, args in plan.user_args for elements, why in _split(args, plan)
                 if why is None for element in elements)


def _folder(path: Path) -> str | None:
    """Why mounting `path` (already resolved) widens what the lab may do, or None."""
    home = Path.home().resolve()
    if path == home:
        return "is your whole home folder"
    if path.is_relative_to(home):
        return None
    if home.is_relative_to(path):
        return "holds your whole home folder" if str(path) != "/" else "is the host's root folder"
    for folder in SYSTEM_FOLDERS:
        if path.is_relative_to(folder):
            return f"is a system folder ({folder})" if str(path) == folder \
                else f"lies in a system folder ({folder})"
    if str(path) in WHOLE_FOLDERS:
        return "is a folder the whole host shares"
    return None


def refusals(config: Config, plan: LabPlan) -> list[Refusal]:
    """Everything in `plan` that came from the project and needs --allow-unsafe."""
    out: list[Refusal] = []
    for key, args in plan.user_args:
        out += [Refusal(key, " ".join(elements), why)
                for elements, why in _split(args, plan) if why]
    if config.run.uid == 0:
        out.append(Refusal("run.uid", "0", "runs the lab as root"))
    # The project's own home under ~/docker is a default; another project's is not.
    defaults = {"run.notebooks": DEFAULT_NOTEBOOKS, "run.home": default_home(config.name)}
    for key, path in plan.user_folders:
        shown = str(path) if path.resolve() == path else f"{path} (that is {path.resolve()})"
        why = _folder(path.resolve())
        if why:
            out.append(Refusal(key, shown, f"{why}: mounting it {WIDENS}"))
            continue
        if config.from_user_file(key) or (key in defaults and path == config.path(defaults[key])):
            continue
        outside_why = outside(path, config.root)
        if outside_why is not None:
            out.append(Refusal(key, shown, f"{outside_why}: a project may mount its own "
                               "folders and pyrlab's default ones; mounting another "
                               f"{WIDENS}", user_may_grant=True))
    if plan.request.env.get("PYRLAB_ALLOW_NO_TOKEN") == "1" \
            and not config.from_user_file("run.allow_no_token"):
        out.append(Refusal("run.allow_no_token", "true", "starts the lab without a token: "
                           "any program on this machine, and any web page open in its "
                           "browser that reaches the port, could run code as you",
                           user_may_grant=True))
    return out


def warnings(config: Config) -> list[str]:
    """The config choices that stay allowed but deserve a line each time a lab starts."""
    run = config.run
    out = []
    if not is_loopback(run.bind):
        out.append(f"run.bind = {run.bind}: the lab's ports are published to every machine "
                   "that can reach this one (the token still guards JupyterLab)")
    if run.sudo:
        out.append("run.sudo = true: the notebook user can become root in the lab "
                   "(sudo, the engine's default capabilities)")
    return out


def _where(config: Config, key: str) -> str:
    shown = config.file.name if config.file else "pyrlab.toml"
    return f"{shown}: {key}"


def _source(config: Config, key: str) -> str:
    """Where an override came from; nothing for the project file, which the line names."""
    source = dict(config.overrides).get(key)
    return f" (from {source})" if source else ""


def _user_file_hint(config: Config) -> str:
    """How to allow a refusal from the user's own file, for the refusal's line."""
    path = config.user_file or user_config_path(os.environ)
    return f", or setting it in your own {shown_path(path)}" if path else ""


def describe(config: Config, refusal: Refusal) -> str:
    """A refusal as `check` lists it: key, value, why, and where the value came from."""
    source = config.source_of(refusal.key)
    return f"{refusal.key}: {refusal.what!r} {refusal.why} (from {source})"


def check_plan(config: Config, plan: LabPlan, *, allow_unsafe: bool,
               command: str = "pyrlab up") -> list[str]:
    """Refuse `plan` (ConfigError, every refusal listed) when it needs --allow-unsafe and
    `allow_unsafe` is not set; else the warning lines to show: the two config choices
    (non-loopback bind, sudo) and, when allowed, each argument the flag granted.
    `command` is how the refusal says to allow it (`pyrlab restart`, `pyrlab export…`)."""
    found = refusals(config, plan)
    if found and not allow_unsafe:
        raise ConfigError([
            Problem(_where(config, r.key), f"{r.what!r} {r.why}{_source(config, r.key)}; "
                    f"{command} --allow-unsafe allows it"
                    + (_user_file_hint(config) if r.user_may_grant else ""))
            for r in found
        ])
    granted = [f"{r.key}: {r.what!r} {r.why}; allowed by --allow-unsafe" for r in found]
    return [*warnings(config), *granted]
