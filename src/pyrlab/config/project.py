"""A lab project: its configuration plus every package list, validated together."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pyrlab import ecosystems
from pyrlab.config.confine import outside, pem_certificates, regular_file
from pyrlab.config.lists import parse_lists
from pyrlab.config.model import Config
from pyrlab.config.readers import read_config
from pyrlab.config.tomlread import toml_key
from pyrlab.ecosystems.base import Entry
from pyrlab.errors import ConfigError, Problem
from pyrlab.platforms import Platform


@dataclass(frozen=True)
class ImageLists:
    """Everything one image installs in its own layer, as validated entries, by ecosystem
    name (every registered ecosystem has its key, an empty tuple when it has no list)."""

    entries: Mapping[str, tuple[Entry, ...]]
    files: tuple[Path, ...]  # every list file read (for change detection and messages)
    # The lines as the lists give them (order kept, nothing merged or dropped): the
    # installer's input, so that pyrlab's copy resolves as the lists do (see lists.py).
    lines: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)

    def of(self, eco: str) -> tuple[Entry, ...]:
        """The entries of ecosystem `eco` (by name)."""
        return self.entries.get(eco, ())

    def lines_of(self, eco: str) -> tuple[Entry, ...]:
        return self.lines.get(eco, ())

    @property
    def limited(self) -> bool:
        """Whether any entry is limited to some platforms (`foo [amd64]`)."""
        return any(e.platforms is not None for group in (self.entries, self.lines)
                   for entries in group.values() for e in entries)

    def for_platform(self, platform: Platform) -> ImageLists:
        """What an image for `platform` (a concrete one) installs: the entries that apply
        to it. Itself where no entry is limited, so that unlimited lists keep their bytes."""
        if not self.limited:
            return self
        return replace(self, entries=_applying(self.entries, platform),
                       lines=_applying(self.lines, platform))


def _applying(by_eco: Mapping[str, tuple[Entry, ...]],
              platform: Platform) -> dict[str, tuple[Entry, ...]]:
    return {eco: tuple(e for e in entries if e.applies_to(platform))
            for eco, entries in by_eco.items()}


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

    @property
    def limited(self) -> bool:
        """Whether a list has lines limited to some platforms (`foo [amd64]`)."""
        return any(lists.limited for lists in self.lists.values())

    def for_platform(self, platform: Platform) -> Project:
        """The project as a build for `platform` (a concrete one, such as Engine.platform()
        says) sees it: each list without the lines limited to other platforms."""
        if not self.limited:
            return self
        return replace(self, lists={name: lists.for_platform(platform)
                                    for name, lists in self.lists.items()})


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
        image_key = f"images.{toml_key(name)}"
        # Every file is confined (its problems first), then every list parsed.
        confined = []
        for eco in ecosystems.registered():
            # A root image reads the ecosystem's [base] list first (Debian's base.debs).
            keyed = (_keyed(f"base.{eco.list_key}", config.base.list_files(eco.list_key))
                     if image.parent is None else [])
            keyed += _keyed(f"images.{name}.{eco.list_key}", image.list_files(eco.list_key))
            confined.append((eco, _confined_lists(config, keyed, problems)))
        parsed = [(eco, parse_lists(paths, eco, root=config.root)) for eco, paths in confined]
        for _, p in parsed:
            for problem in p.problems:
                if problem not in problems:  # a list shared by two images is reported once
                    problems.append(problem)
            warnings.extend(w for w in p.warnings if w not in warnings)
        for eco, _ in parsed:
            if image.list_files(eco.list_key):
                why = eco.grammar.image_problem(config, name)
                if why is not None:
                    problems.append(Problem(config.where(f"{image_key}.{eco.list_key}"), why))
        lists[name] = ImageLists(
            entries={eco.name: p.entries for eco, p in parsed},
            files=tuple(f for _, p in parsed for f in p.files),
            lines={eco.name: p.lines for eco, p in parsed},
        )
    _check_run_files(config, problems)
    ca_files = _read_ca_files(config, problems)
    if problems:
        raise ConfigError(problems)
    return Project(config=config, lists=lists, ca_files=ca_files, warnings=tuple(warnings))


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
