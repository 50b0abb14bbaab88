"""The per-user configuration file: what describes this machine, not the lab.

A lab project is meant to be shared, so its `pyrlab.toml` holds what the images are. What
differs from one machine to the next (its CA files, its proxies, its engine, where the
notebooks and home folders live, the bind address, the UID) may come from a file of the
user's own, `$XDG_CONFIG_HOME/pyrlab/config.toml` (default `~/.config/pyrlab/config.toml`;
`PYRLAB_USER_CONFIG` names another, or none when empty). For these keys the user's file
wins over the project's: a project cannot swap the proxy or CA that the user set. It may
hold no other key. And what it sets is the user's own grant: a notebooks folder outside
the project, or a lab without a token, needs no `--allow-unsafe` from there (launch/safety.py).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyrlab.config.guess import did_you_mean
from pyrlab.config.tomlread import key_lines, toml_loads, toml_problem
from pyrlab.errors import ConfigError, Problem

USER_CONFIG_ENV = "PYRLAB_USER_CONFIG"
# What an override from the user's file says it came from: "user file ~/.config/…".
USER_SOURCE = "user file"
# The keys of the user's file: this machine's settings. A table name (`proxy`) allows
# every key of that table.
MACHINE_KEYS = ("engine", "base.ca_certificates", "proxy", "run.notebooks", "run.home",
                "run.bind", "run.uid", "run.gid", "run.allow_no_token")
# Paths in the user's file are relative to its folder, not to a project.
_PATH_KEYS = ("base.ca_certificates", "run.notebooks", "run.home")


def user_config_path(environ: Mapping[str, str]) -> Path | None:
    """Where this user's file is looked for, or None: PYRLAB_USER_CONFIG (empty: no user
    file), else $XDG_CONFIG_HOME/pyrlab/config.toml, else $HOME/.config/pyrlab/config.toml.
    Without any of the three (an environment given as {}), there is none."""
    if USER_CONFIG_ENV in environ:
        value = environ[USER_CONFIG_ENV]
        return Path(value).expanduser().absolute() if value.strip() else None
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is ignored
        return Path(xdg) / "pyrlab" / "config.toml"
    home = environ.get("HOME", "")
    if home:
        return Path(home) / ".config" / "pyrlab" / "config.toml"
    return None


def shown_path(path: Path) -> str:
    """`path` with the home folder written as ~ (it is the user's, and shorter)."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except (ValueError, RuntimeError):
        return str(path)


def user_source(path: Path) -> str:
    return f"{USER_SOURCE} {shown_path(path)}"


def is_machine_key(key: str) -> bool:
    return any(key == allowed or key.startswith(allowed + ".") for allowed in MACHINE_KEYS)


def read_user_file(path: Path) -> tuple[list[tuple[str, Any]], list[Problem]]:
    """(dotted key, value) for every setting of the user's file at `path` (none when it
    does not exist), and the problems of keys it may not hold. Raises ConfigError when it
    is no TOML at all."""
    shown = shown_path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return [], []
    except UnicodeDecodeError:
        raise ConfigError(Problem(shown, "not valid UTF-8")) from None
    except OSError as exc:
        raise ConfigError(Problem(shown, f"cannot read: {exc.strerror}")) from None
    try:
        raw = toml_loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(toml_problem(exc, shown, text)) from None
    found: list[tuple[str, Any]] = []
    problems: list[Problem] = []
    lines = key_lines(text)

    def walk(table: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for name, value in table.items():
            key = ".".join(prefix + (name,)).replace("-", "_")
            if isinstance(value, dict) and (key == "proxy" or any(
                    m.startswith(key + ".") for m in MACHINE_KEYS)):
                walk(value, prefix + (name,))
            elif is_machine_key(key):
                found.append((key, _anchored(path, key, value)))
            else:
                guess = did_you_mean(key, MACHINE_KEYS)
                why = (f"unknown key; did you mean {guess}?" if guess else
                       "not a setting of this machine: it belongs in the project's pyrlab.toml")
                line = lines.get(prefix + (name,)) or lines.get(prefix)
                where = f"{shown}:{line}: {key}" if line else f"{shown}: {key}"
                problems.append(Problem(where, f"{why} (a user file holds only "
                                        f"{', '.join(MACHINE_KEYS)})"))

    walk(raw, ())
    return found, problems


def _anchored(path: Path, key: str, value: Any) -> Any:
    """A path value of the user's file made absolute against its folder (`~` is kept, so
    that a default such as `~/notebooks` still reads as the default)."""
    if key not in _PATH_KEYS:
        return value

    def one(item: Any) -> Any:
        if not isinstance(item, str) or not item.strip() or item.startswith("~"):
            return item
        return item if Path(item).is_absolute() else str(path.parent / item)

    return [one(item) for item in value] if isinstance(value, list) else one(value)
