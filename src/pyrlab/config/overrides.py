"""Overrides of a project's configuration: the user's own file (config/user.py), the
environment's `PYRLAB_*` variables and `--set KEY=VALUE`, applied to the raw TOML table
before it is read, so that an overridden value is checked as a written one is."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.config.guess import did_you_mean
from pyrlab.config.model import TOP_KEYS, config_keys
from pyrlab.config.tomlread import toml_key, toml_loads
from pyrlab.config.user import USER_CONFIG_ENV, read_user_file, user_config_path, user_source
from pyrlab.errors import Problem

ENV_PREFIX = "PYRLAB_"
# Environment variables that belong to pyrlab but are not config paths (docs/configuration.md
# lists them); any other one-word PYRLAB_NAME that is no top-level key is a warning.
# PYRLAB_BINFMT_DIR: where engines/emulation.py reads binfmt_misc (tests).
ENV_NOT_CONFIG = frozenset({"PYRLAB_LOG_LEVEL", "PYRLAB_STATE_DIR", "PYRLAB_BINFMT_DIR",
                            USER_CONFIG_ENV})
# The host setup script's own (.ci/setup-host.sh: PYRLAB_CI_MIRROR, PYRLAB_CI_SKIP_BUILDX…),
# which a user may export for the README's first command and still have set for pyrlab.
ENV_NOT_CONFIG_PREFIX = "PYRLAB_CI_"


@dataclass(frozen=True)
class Overrides:
    """What apply_overrides did."""

    sources: dict[str, str]  # dotted key (as the raw table spells it) → where its value came from
    problems: list[Problem]  # overrides that could not be applied
    warnings: list[Problem]  # stray PYRLAB_* variables, ignored
    user_file: Path | None  # the user's own file, when there is one


def apply_overrides(raw: dict[str, Any], environ: Mapping[str, str],
                    sets: list[str] | tuple[str, ...]) -> Overrides:
    """Apply to the project file's `raw` table, in this order (the later wins): the
    settings of the user's own file, the `PYRLAB_*` variables of `environ`, each `--set
    KEY=VALUE` of `sets`. Values are not checked here: the readers check them as they check
    the file's, naming the override (`sources`) a bad one came from."""
    problems: list[Problem] = []
    sources: dict[str, str] = {}
    # This machine's settings from the user's own file win over the project's.
    user_file = user_config_path(environ)
    if user_file is not None:
        settings, user_problems = read_user_file(user_file)
        problems += user_problems
        for key, value in settings:
            error = _set_path(raw, key.split("."), copy.deepcopy(value))
            if error:
                problems.append(Problem(user_source(user_file), error))
                continue
            sources[_canonical_key(raw, key)] = user_source(user_file)
        if not user_file.is_file():
            user_file = None
    from_env, warnings = env_overrides(environ)
    pending = from_env + [(*_split_set(s), "--set " + s.split("=", 1)[0]) for s in sets]
    for key, text, source in pending:
        if not key or any(not part for part in key.split(".")):
            problems.append(Problem(source, "expected KEY=VALUE with a dotted key like run.bind"))
            continue
        unknown_image = _unknown_image(raw, key, source)
        if unknown_image:
            problems.append(Problem(source, unknown_image))
            continue
        error = _set_path(raw, key.split("."), parse_override_value(text))
        if error:
            problems.append(Problem(source, error))
        sources[_canonical_key(raw, key)] = source
    return Overrides(sources, problems, warnings, user_file)


def parse_override_value(text: str) -> Any:
    """`8898` → 8898, `true` → True, `["a"]` → list; anything that is not one TOML value
    → the string. (`5\n[base]…` parses as `v = 5` and more: the string, not 5.)"""
    try:
        document = toml_loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return document["v"] if document.keys() == {"v"} else text


def _set_path(raw: dict[str, Any], path: list[str], value: Any) -> str | None:
    """Set raw[path] = value; keys match with '-' and '_' equivalent. Returns an error."""
    node: Any = raw
    for i, key in enumerate(path):
        if not isinstance(node, dict):
            return f"'{'.'.join(path[:i])}' is not a table"
        existing = next((k for k in node if k.replace("-", "_") == key.replace("-", "_")), key)
        if i == len(path) - 1:
            node[existing] = value
        else:
            node = node.setdefault(existing, {})
    return None


def env_name(key: str) -> str:
    """The environment variable that sets dotted `key` (run.bind → PYRLAB_RUN__BIND)."""
    return ENV_PREFIX + "__".join(part.upper().replace("-", "_") for part in key.split("."))


def env_overrides(environ: Mapping[str, str]) -> tuple[list[tuple[str, str, str]], list[Problem]]:
    """(dotted key, raw value, source) for every PYRLAB_* config variable, and a warning
    for each stray one.

    `PYRLAB_RUN__BIND` → run.bind; `__` separates levels, a single `_` inside a level
    also matches `-` (so `PYRLAB_IMAGES__RLAB_BASE__R` → images.rlab-base.r). A one-word
    name that is neither a top-level key nor one of pyrlab's other variables
    (`PYRLAB_LOGLEVEL`) is some other program's or a typo: a warning, and it is ignored,
    since it would otherwise stop every command. A name with `__` is meant as a key and
    stays one (an unknown key is then an error, as in the file).
    """
    found = []
    warnings = []
    for name in sorted(environ):
        if (not name.startswith(ENV_PREFIX) or name in ENV_NOT_CONFIG
                or name.startswith(ENV_NOT_CONFIG_PREFIX)):
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest and rest.lower().replace("-", "_") not in TOP_KEYS:
            guess = rest and did_you_mean(name, sorted(ENV_NOT_CONFIG | {env_name(k) for k in config_keys()}))
            warnings.append(Problem(f"environment {name}", "not a variable of pyrlab; ignored"
                                    + (f" (did you mean {guess}?)" if guess else "")))
            continue
        key = ".".join(part.lower() for part in rest.split("__"))
        found.append((key, environ[name], f"environment {name}"))
    return found, warnings


def _unknown_image(raw: dict[str, Any], key: str, source: str) -> str | None:
    """Why an override of a key inside an image (`images.pylb.ports.lab`) names no image
    of the graph, or None: it would quietly add a new image. Setting a whole image table
    (`images.extra={from="pylab"}`) still adds one, as asked."""
    parts = key.split(".")
    images = raw.get("images")
    if len(parts) < 3 or parts[0] != "images" or not isinstance(images, dict):
        return None
    names = [str(n) for n in images]
    if any(n.replace("-", "_") == parts[1].replace("-", "_") for n in names):
        return None
    guess = did_you_mean(parts[1].replace("_", "-"), names)
    hint = ""
    if guess is not None:
        fixed = ".".join(["images", guess, *parts[2:]])
        hint = f"; did you mean {env_name(fixed) if source.startswith('environment ') else fixed}?"
    return f"unknown image '{parts[1]}'{hint} (known: {', '.join(names)})"


def _split_set(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    return (key.strip(), value) if sep else ("", "")


def _canonical_key(raw: dict[str, Any], key: str) -> str:
    """The dotted key as spelled in the raw table (so `rlab_base` reports as `rlab-base`)."""
    out: list[str] = []
    node: Any = raw
    for part in key.split("."):
        match = part
        if isinstance(node, dict):
            match = next((k for k in node if k.replace("-", "_") == part.replace("-", "_")), part)
            node = node.get(match)
        out.append(toml_key(match))
    return ".".join(out)
