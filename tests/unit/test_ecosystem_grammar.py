"""The grammar part of the ecosystem interface: an ecosystem registered beside the built-in
three (as a plug-in or a test would) gets its list key read, checked, located and counted
by pyrlab's own reader and config, with nothing else changed; taken away, it is gone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from labfiles import make_project

from pyrlab import ecosystems
from pyrlab.cli import main
from pyrlab.config.model import config_keys
from pyrlab.config.project import load_project
from pyrlab.config.readers import read_config
from pyrlab.ecosystems.base import ConfigView, Ecosystem, Entry, Grammar
from pyrlab.errors import ConfigError

_FILE_NAME_RE = re.compile(r"^[a-z0-9-]+$")


def _parse_file(line: str, where: str) -> Entry | str:
    if not _FILE_NAME_RE.match(line):
        return f"not a file name: '{line}'"
    return Entry("files", line, line, None, None, where)


def _needs_a_parent(config: ConfigView, image: str) -> str | None:
    return None if config.images[image].parent else "files go on top of another image"


FILES = Ecosystem(
    name="files", title="Files", order=50, step="files", list_key="files",
    lock_key="files", manifest_key="files",
    grammar=Grammar(parse_line=_parse_file, image_problem=_needs_a_parent,
                    base_list=("base_files.txt",), count_label="files"),
)

TOML = """\
[images.root]
[images.top]
from = "root"
files = ["files.txt"]
"""


@pytest.fixture
def files_ecosystem() -> Iterator[Ecosystem]:
    undo = ecosystems.register(FILES)
    yield FILES
    undo()


def project(root: Path, toml: str = TOML, **lists: str) -> Path:
    return make_project(root, {"pyrlab.toml": toml, "base_debs.txt": "",
                               "base_files.txt": "motd\n", **lists})


def test_its_list_key_is_a_key_of_every_image_and_of_base(files_ecosystem: Ecosystem,
                                                          tmp_path: Path) -> None:
    keys = config_keys()
    assert {"base.files", "images.pylab.files", "images.rlab.files"} <= set(keys)
    config, problems = read_config(project(tmp_path, TOML.replace("files =", "filez =")),
                                   environ={})
    assert [str(p) for p in problems] == [
        ("pyrlab.toml:4: images.top.filez: unknown key; did you mean images.top.files? "
        "(known: debs, files, from, ports, r, r_packages, r_source, requirements, run_args)")]
    assert config.images["top"].lists == {"debs": (), "requirements": (), "r_packages": (),
                                          "files": ()}


def test_its_lines_are_read_with_its_grammar(files_ecosystem: Ecosystem,
                                             tmp_path: Path) -> None:
    root = project(tmp_path, **{"files.txt": "hello\n# a comment\nhello\nworld\n"})
    loaded = load_project(root, environ={})
    assert [(e.ecosystem, e.name, e.where) for e in loaded.lists["top"].of("files")] == [
        ("files", "hello", "files.txt:1"), ("files", "world", "files.txt:4")]
    # The base list is read first, by the root image only.
    assert [e.name for e in loaded.lists["root"].of("files")] == ["motd"]
    assert [str(w) for w in loaded.warnings] == [
        "files.txt:3: duplicate entry 'hello' (also at files.txt:1); it asks for nothing more"]


def test_its_refusals_are_located_and_shell_characters_refused_before_it(
        files_ecosystem: Ecosystem, tmp_path: Path) -> None:
    root = project(tmp_path, TOML.replace('[images.root]\n', '[images.root]\nfiles = ["r.txt"]\n'),
                   **{"files.txt": "Bad Name\nok;rm\n", "r.txt": "fine\n"})
    with pytest.raises(ConfigError) as caught:
        load_project(root, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "pyrlab.toml:2: images.root.files: files go on top of another image",
        "files.txt:1: not a file name: 'Bad Name'",
        "files.txt:2: character ';' is not allowed",
    ]


def test_check_counts_its_entries(files_ecosystem: Ecosystem, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path, **{"files.txt": "a\nb\n"})
    assert main(["check", "-C", str(root)]) == 0
    out = capsys.readouterr().out
    assert "  top              from root: 0 debs, 0 python, 0 R, 2 files" in out


def test_without_it_its_key_is_unknown_again(tmp_path: Path) -> None:
    undo = ecosystems.register(FILES)
    undo()
    assert "images.pylab.files" not in config_keys()
    _, problems = read_config(project(tmp_path), environ={})
    assert [str(p) for p in problems] == [
        ("pyrlab.toml:4: images.top.files: unknown key "
        "(known: debs, from, ports, r, r_packages, r_source, requirements, run_args)")]
