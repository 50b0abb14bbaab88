"""The checks part of the ecosystem interface: an ecosystem registered beside the built-in
three (as a plug-in or a test would) is checked by the self-test gate through its own
command and judge, reported in its own words, with nothing else changed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeEngine
from labfiles import make_project

from pyrlab import ecosystems, proc
from pyrlab.commands.test import render_test
from pyrlab.config.project import load_project
from pyrlab.ecosystems.base import Checks, Ecosystem, Entry, Finding, Grammar, Listed, MarkKey
from pyrlab.gate import Scope, SelfTester, checked


def _parse_file(line: str, where: str) -> Entry | str:
    return Entry("files", line, line, None, None, where)


def _wanted(entries: Sequence[Entry], packages: Sequence[Any]) -> dict[str, Listed]:
    return {entry.name: Listed(entry.where) for entry in entries}


def _command(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return ["test-files", *sorted({name for name, _ in pairs})]


def _judge(answer: proc.Completed, wanted: Mapping[str, Listed], marks: Mapping[str, str],
           key: MarkKey) -> list[Finding]:
    """Lines "NAME ok" or "NAME ERROR"."""
    found = dict(line.split(" ", 1) for line in answer.stdout.splitlines())
    return [Finding(name, f"test -f {name}", 0.0,
                    "" if found.get(name) == "ok" else found.get(name, "no answer"),
                    wanted[name].where) for name in sorted(wanted)]


FILES = Ecosystem(
    name="files", title="Files", order=50, step="files", list_key="files",
    lock_key="files", manifest_key="files",
    grammar=Grammar(parse_line=_parse_file, count_label="files"),
    checks=Checks(label="file", counted="files", passed="present", wanted=_wanted,
                  command=_command, judge=_judge),
)


@pytest.fixture
def files_ecosystem() -> Iterator[Ecosystem]:
    undo = ecosystems.register(FILES)
    yield FILES
    undo()


class FilesAnswers(FakeEngine):
    """Answers the files check: every file is there but `gone`."""

    def exec(self, container: str, command: Sequence[str], *,
             timeout: float | None = None) -> proc.Completed:
        if command[0] == "test-files":
            self.execs.append((container, tuple(command)))
            out = "".join(f"{n} {'missing' if n == 'gone' else 'ok'}\n" for n in command[1:])
            return proc.Completed(tuple(command), 0, out, "")
        return super().exec(container, command, timeout=timeout)


TOML = """\
prefix = "t/"
[base]
image = "t/debian:trixie"
python = "debian"
debs = []
[images.root]
files = ["root.txt"]
[images.top]
from = "root"
files = ["files.txt"]
"""


def test_the_gate_runs_its_checks_and_reports_them_in_its_words(
        files_ecosystem: Ecosystem, tmp_path: Path) -> None:
    root = make_project(tmp_path / "lab", {"pyrlab.toml": TOML, "root.txt": "motd\n",
                                           "files.txt": "hello\ngone\n"})
    project = load_project(root, environ={})
    wanted = {eco.name: lines for eco, lines in checked(project, "top", None)}
    # Its lines and its ancestors', root first, beside the built-in ecosystems' (none here).
    assert wanted["files"] == {"motd": Listed("root.txt:1"), "hello": Listed("files.txt:1"),
                               "gone": Listed("files.txt:2")}
    engine = FilesAnswers()
    test = SelfTester(project, engine).test("top", "b" * 64, Scope(full_lab=False))
    assert [command for _, command in engine.execs if command[0] == "test-files"] == [
        ("test-files", "gone", "hello", "motd")]
    assert [c.line() for c in test.failures] == ["FAIL file gone [files.txt:2]: missing"]
    assert render_test(test)[0].startswith("top (bbbbbbbbbbbb): FAILED (1 of 3); 3 files in ")
    assert "  present: hello, motd" in render_test(test)
    assert test.accept_hint() == ""  # it owns no test.known_failures table
    # A delta's scope narrows it like any other.
    narrowed = SelfTester(project, FilesAnswers()).test(
        "top", "b" * 64, Scope({"files": frozenset({"hello"})}, full_lab=False))
    assert [(c.kind, c.name) for c in narrowed.checks] == [("files", "hello")]
