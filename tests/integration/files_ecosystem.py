"""A package ecosystem that lives in the tests: plain files. It is registered through the
same interface as Debian, Python and R (`pyrlab.ecosystems.register`), with no change to
any module of pyrlab, and shows that such an ecosystem gets every stage: its list key in
pyrlab.toml and its grammar, its step in the build, its lock section, `inspect`, `sbom` and
the self-test gate.

A list holds lines `NAME` or `NAME=VERSION` (VERSION digits and dots, 1 when left out); the
installer (files-ecosystem/files-install) writes /opt/files/NAME holding VERSION, its
collector (files-ecosystem/files-collect) reads them back into the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab import proc
from pyrlab.ecosystems.base import (
    EXECUTABLE,
    Checks,
    Contents,
    Context,
    DeltaView,
    Ecosystem,
    Entry,
    Finding,
    Found,
    Grammar,
    ImageFacts,
    Listed,
    ManifestReader,
    MarkKey,
    Needs,
    Part,
    Platform,
    ProjectView,
    Purl,
    json_rows,
    lines,
    sign,
)

SCRIPTS = Path(__file__).parent / "files-ecosystem"
FOLDER = "/opt/files"

# -- grammar --------------------------------------------------------------------------------
_LINE_RE = re.compile(r"^([a-z0-9][a-z0-9-]*)(?:=([0-9]+(?:\.[0-9]+)*))?$")


def _parse_line(line: str, where: str) -> Entry | str:
    found = _LINE_RE.match(line)
    if found is None:
        return f"expected NAME or NAME=VERSION (NAME: a-z, 0-9, -), found '{line}'"
    name, version = found.group(1), found.group(2) or "1"
    return Entry("files", name, f"{name}={version}", version, None, where)


# -- build context ----------------------------------------------------------------------------
def _part(project: ProjectView, image: str, needs: Needs, delta: DeltaView | None) -> Part:
    entries = project.lists[image].of("files")
    if not entries:
        return Part(render=False)
    return Part(render=True, files={"files.txt": lines(entry.text for entry in entries)})


# -- contents ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class File:
    name: str
    version: str

    @property
    def origin(self) -> str:
        return FOLDER


def _read_manifest(top: Mapping[str, object], reader: ManifestReader, pinned: frozenset[str],
                   platform: Platform) -> Found[File]:
    rows = reader.rows(top.get("files", []), "files", ("name", "version"), 2)
    return Found(reader.unique([File(*row) for row in rows], "files"))


def _parse_lock_value(name: str, value: str) -> File | str | None:
    return File(name, value) if re.fullmatch(r"[0-9]+(\.[0-9]+)*", value) else None


def _compare(a: str, b: str) -> int:
    return sign([int(part) for part in a.split(".")], [int(part) for part in b.split(".")])


def _purl(file: File, facts: ImageFacts) -> Purl:
    return Purl("generic", file.name, file.version)


# -- checks -----------------------------------------------------------------------------------
# Run in the image's quiet container: one [name, error] row per file, "" when it is there.
_CHECK = ("import json, os, sys\n"
          "print(json.dumps([[n, '' if os.path.isfile('/opt/files/' + n) else 'no such file']"
          " for n in sys.argv[1:]]))")


def _wanted(entries: Sequence[Entry], packages: Sequence[Any]) -> dict[str, Listed]:
    return {entry.name: Listed(entry.where) for entry in entries}


def _command(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return ["/opt/venv/bin/python", "-I", "-c", _CHECK, *sorted({name for name, _ in pairs})]


def _judge(answer: proc.Completed, wanted: Mapping[str, Listed], marks: Mapping[str, str],
           key: MarkKey) -> list[Finding]:
    rows = json_rows(answer)
    errors = ({name: rows for name in wanted} if isinstance(rows, str)
              else {str(row[0]): str(row[1]) for row in rows})
    return [Finding(name, f"{FOLDER}/{name}", 0.0, errors.get(name, "not checked"),
                    wanted[name].where) for name in sorted(wanted)]


# -- the whole --------------------------------------------------------------------------------
FILES = Ecosystem(
    name="files", title="Plain files", order=50, step="files", list_key="files",
    lock_key="files", manifest_key="files",
    grammar=Grammar(parse_line=_parse_line, count_label="files"),
    context=Context(
        script="files-install",
        part=_part,
        comment=lambda root: "# Plain files (the tests' own ecosystem) into /opt/files.",
        scripts=lambda: {"files-install": ((SCRIPTS / "files-install").read_bytes(),
                                           EXECUTABLE)},
        delta_lists=("files.txt",),
    ),
    contents=Contents(
        read_manifest=_read_manifest, lock_value=lambda file: file.version,
        parse_lock_value=_parse_lock_value, value_shape='"VERSION"', compare=_compare,
        origin_header="folder", shown=lambda version, origin: version, origin_in_diff=False,
        purl=_purl, collector=lambda: (SCRIPTS / "files-collect").read_bytes(),
    ),
    checks=Checks(label="file", counted="files", passed="present", wanted=_wanted,
                  command=_command, judge=_judge),
)
