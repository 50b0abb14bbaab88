"""A lab project: its configuration plus every package list, validated together."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyrlab.config.confine import outside, pem_certificates, regular_file
from pyrlab.config.lists import Entry, ListKind, parse_lists
from pyrlab.config.model import Config
from pyrlab.config.readers import read_config
from pyrlab.config.tomlread import toml_key
from pyrlab.errors import ConfigError, Problem


@dataclass(frozen=True)
class ImageLists:
    """Everything one image installs in its own layer, as validated entries."""

    debs: tuple[Entry, ...]
    requirements: tuple[Entry, ...]
    r_packages: tuple[Entry, ...]
    files: tuple[Path, ...]  # every list file read (for change detection and messages)
    # The Python lines as the lists give them (order kept, nothing merged or dropped): the
    # installer's input, so that pyrlab's copy resolves as the lists do (see lists.py).
    requirement_lines: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class CaFile:
    name: str  # the name it gets inside the image: NN-<stem>.crt
    source: Path
    content: bytes


@dataclass(frozen=True)
class Project:
    config: Config
    lists: Mapping[str, ImageLists]
    ca_files: tuple[CaFile, ...]
    warnings: tuple[Problem, ...] = ()  # harmless list lines (an exact duplicate), once each

    @property
    def root(self) -> Path:
        return self.config.root

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        return build_order(self.config, names)


def build_order(config: Config, names: Iterable[str] | None = None) -> list[str]:
    """The selected images plus their ancestors, parents before children, file order kept."""
    images = config.images
    wanted: set[str] = set()
    for name in images if names is None else names:
        if name not in images:
            raise ConfigError(
                Problem("command line", f"unknown image '{name}' (known: {', '.join(images)})")
            )
        node: str | None = name
        while node is not None:
            wanted.add(node)
            node = images[node].parent
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        parent = images[name].parent
        if parent is not None:
            visit(parent)
        ordered.append(name)

    for name in images:
        if name in wanted:
            visit(name)
    return ordered


def descendants(config: Config, name: str) -> list[str]:
    """Images built on top of `name`, directly or not, in build order."""
    out: list[str] = []
    for candidate in build_order(config):
        node = config.images[candidate].parent
        while node is not None:
            if node == name:
                out.append(candidate)
                break
            node = config.images[node].parent
    return out


def load_project(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    sets: tuple[str, ...] | list[str] = (),
    config_file: Path | None = None,
) -> Project:
    """Config + lists + CA files; raises one ConfigError listing every problem found."""
    environ = os.environ if environ is None else environ
    # Config problems do not stop the lists from being checked: all are reported together.
    config, problems = read_config(root, environ=environ, sets=sets, config_file=config_file)
    lists: dict[str, ImageLists] = {}
    warnings: list[Problem] = []
    for name, image in config.images.items():
        debs_files = ([(f"base.debs[{i}]", f) for i, f in enumerate(config.base.debs)]
                      if image.parent is None else [])
        debs_files += [(f"images.{name}.debs[{i}]", f) for i, f in enumerate(image.debs)]
        parsed = [
            parse_lists(_confined_lists(config, debs_files, problems), ListKind.DEB,
                        root=config.root),
            parse_lists(_confined_lists(config, _keyed(f"images.{name}.requirements",
                                                       image.requirements), problems),
                        ListKind.PYTHON, root=config.root),
            parse_lists(_confined_lists(config, _keyed(f"images.{name}.r_packages",
                                                       image.r_packages), problems),
                        ListKind.R, root=config.root),
        ]
        for p in parsed:
            for problem in p.problems:
                if problem not in problems:  # a list shared by two images is reported once
                    problems.append(problem)
            warnings.extend(w for w in p.warnings if w not in warnings)
        if image.r_packages and not _has_r(config, name):
            problems.append(Problem(config.where(f"images.{toml_key(name)}.r_packages"),
                                    "this image has no R: set r = \"debian\" on it or an ancestor"))
        lists[name] = ImageLists(
            debs=parsed[0].entries,
            requirements=parsed[1].entries,
            r_packages=parsed[2].entries,
            files=tuple(f for p in parsed for f in p.files),
            requirement_lines=parsed[1].lines,
        )
    _check_run_files(config, problems)
    ca_files = _read_ca_files(config, problems)
    if problems:
        raise ConfigError(problems)
    return Project(config=config, lists=lists, ca_files=ca_files, warnings=tuple(warnings))


def _has_r(config: Config, name: str) -> bool:
    node: str | None = name
    seen: set[str] = set()  # the graph may still hold a cycle or an unknown parent here
    while node is not None and node in config.images and node not in seen:
        if config.images[node].r is not None:
            return True
        seen.add(node)
        node = config.images[node].parent
    return node is not None  # a broken chain is reported as such, not as "no R"


def _keyed(key: str, values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(f"{key}[{i}]", value) for i, value in enumerate(values)]


def _source(config: Config, key: str) -> str:
    """A suffix naming the override that set `key` (or the list it is in), else ""."""
    sources = dict(config.overrides)
    source = sources.get(key) or sources.get(key.split("[", 1)[0])
    return f" (from {source})" if source else ""


def _confined_lists(config: Config, files: list[tuple[str, str]],
                    problems: list[Problem]) -> list[Path]:
    """The list files that lie inside the project folder; one problem, naming the key, for
    each that does not (it is not opened)."""
    kept = []
    for key, value in files:
        path = config.path(value)
        why = outside(path, config.root)
        if why is None:
            kept.append(path)
            continue
        problem = Problem(config.where(key),
                          f"{value!r} {why}; list files must be inside it{_source(config, key)}")
        if problem not in problems:  # base.debs is read for every root image
            problems.append(problem)
    return kept


def _check_run_files(config: Config, problems: list[Problem]) -> None:
    """The env file and the rc and userlab scripts are mounted into the lab: each must lie
    inside the project folder (it need not exist)."""
    run = config.run
    files = [("run.envfile", run.envfile), ("run.userlab", run.userlab or "")]
    files += [(f"run.rc.{image}", script) for image, script in run.rc]
    for key, value in files:
        if not value.strip():
            continue
        why = outside(config.path(value), config.root)
        if why is not None:
            problems.append(Problem(config.where(key),
                                    f"{value!r} {why}; the lab may only be given files from "
                                    f"the project folder{_source(config, key)}"))


def _read_ca_files(config: Config, problems: list[Problem]) -> tuple[CaFile, ...]:
    """CA files may come from anywhere on the host (the one exception to confinement: a
    site's CA lives in /usr/local/share/ca-certificates), so each must hold certificates
    and nothing else, and only the certificates, re-encoded, go into the image."""
    out = []
    for i, value in enumerate(config.base.ca_certificates):
        where = config.where(f"base.ca_certificates[{i}]")
        path = config.path(value)
        not_regular = regular_file(path)
        if not_regular is not None:
            problems.append(Problem(where, f"cannot read {value!r}: it {not_regular}"))
            continue
        try:
            content = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(where, f"cannot read {value!r}: {exc.strerror}"))
            continue
        certificates = pem_certificates(content)
        if isinstance(certificates, str):
            problems.append(Problem(where, f"{value!r} is not a PEM certificate file: "
                                    f"{certificates}; none of it is used"))
            continue
        content = certificates
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in path.stem)[:40] or "ca"
        out.append(CaFile(name=f"{i:02d}-{stem}.crt", source=path, content=content))
    return tuple(out)
