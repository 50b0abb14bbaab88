"""`pyrlab config`: every effective setting and where it came from.

A value comes from pyrlab's default, the project's pyrlab.toml, the user's own file (this
machine's settings, config/user.py), the environment or `--set`, in that order of
precedence (docs/configuration.md). Credentials in URLs are shown masked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.commands._args import config_from
from pyrlab.config.model import Config
from pyrlab.config.tomlread import toml_key
from pyrlab.config.user import shown_path, user_config_path
from pyrlab.credentials import mask_url

# Config fields that are no setting of pyrlab.toml, or are walked as tables.
_NOT_TOP_LEVEL = {"root", "file", "base", "proxy", "images", "run", "overrides", "build",
                  "test", "file_keys", "user_file", "name_from_folder", "warnings",
                  "key_lines"}
# ImageConfig fields by their key in pyrlab.toml.
_IMAGE_KEYS = {"parent": "from"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any
    source: str  # "default", "pyrlab.toml", "user file …", "environment …", "--set …"


@dataclass(frozen=True)
class ConfigResult:
    project: Path
    project_file: Path | None
    user_file: Path | None  # where the user's file is looked for (None: PYRLAB_USER_CONFIG="")
    user_file_found: bool
    settings: tuple[Setting, ...]

    def to_data(self) -> Any:
        return {
            "project": str(self.project),
            "project_file": str(self.project_file) if self.project_file else None,
            "user_file": str(self.user_file) if self.user_file else None,
            "user_file_found": self.user_file_found,
            "settings": [{"key": s.key, "value": s.value, "source": s.source}
                         for s in self.settings],
        }

    def to_text(self) -> str:
        if self.user_file is None:
            user = "none (PYRLAB_USER_CONFIG is empty)"
        else:
            user = shown_path(self.user_file) + ("" if self.user_file_found else " (not found)")
        lines = [f"project: {self.project}", f"user file: {user}"]
        rows = [(f"{s.key} = {json.dumps(s.value, ensure_ascii=False)}", s.source)
                for s in self.settings]
        width = min(max((len(left) for left, _ in rows), default=0), 60)
        lines += [f"{left:<{width}}  # {source}" for left, source in rows]
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """A config value as TOML would hold it: tuples of pairs as tables, tuples as arrays,
    None as "" (not set), URLs with their credentials masked."""
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in value) \
            and value:
        return {k: _plain(v) for k, v in value}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def settings(config: Config) -> list[Setting]:
    """Every effective value of `config`, dotted key by key, with its source."""
    out: list[Setting] = []

    def add(key: str, value: Any) -> None:
        out.append(Setting(key, _plain(value), config.source_of(key)))

    for f in dataclasses.fields(config):
        if f.name not in _NOT_TOP_LEVEL:
            add(f.name, getattr(config, f.name))
    for table in ("base", "proxy"):
        section = getattr(config, table)
        for f in dataclasses.fields(section):
            if f.name == "lists":  # the ecosystems' list keys, as the file writes them
                for key, files in section.lists.items():
                    add(f"{table}.{key}", files)
            else:
                add(f"{table}.{f.name}", getattr(section, f.name))
    for name, image in config.images.items():
        for f in dataclasses.fields(image):
            if f.name == "lists":
                for key, files in image.lists.items():
                    add(f"images.{toml_key(name)}.{key}", files)
            elif f.name != "name":
                add(f"images.{toml_key(name)}.{_IMAGE_KEYS.get(f.name, f.name)}",
                    getattr(image, f.name))
    for f in dataclasses.fields(config.run):
        add(f"run.{f.name}", getattr(config.run, f.name))
    for f in dataclasses.fields(config.build):
        add(f"build.{f.name}", getattr(config.build, f.name))
    for f in dataclasses.fields(config.test):
        kind = f.name.removeprefix("known_failures_")
        out.append(Setting(f"test.known_failures.{kind}",
                           dict(getattr(config.test, f.name)),
                           config.source_of(f"test.known_failures.{kind}")))
    return out


def run(args: argparse.Namespace) -> ConfigResult:
    config = config_from(args)
    looked_at = user_config_path(os.environ)
    return ConfigResult(project=config.root, project_file=config.file, user_file=looked_at,
                        user_file_found=config.user_file is not None,
                        settings=tuple(settings(config)))
