"""What people and tools read: CycloneDX SBOMs (checked against the schema by the
CycloneDX library's own validator) and the inspect/diff/outdated tables, plain when piped."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from inventories import inventory, meta

from pyrlab.contents.diff import diff, diff_locks
from pyrlab.contents.model import Outdated
from pyrlab.contents.sbom import SCHEMA_VERSION, sbom
from pyrlab.contents.tables import diff_table, inspect_table, outdated_table
from pyrlab.ecosystems.debian import Deb
from pyrlab.ecosystems.python import PyDist
from pyrlab.ecosystems.r import RPkg

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BOX_DRAWING = re.compile("[\u2500-\u257f]")
LONG_URL = "https://example.org/" + "very-long-path/" * 12 + "mypkg-1.0.tar.gz"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def sbom_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sbom(inventory(**changes), timestamp=WHEN))
    return data


# --- SBOM ---------------------------------------------------------------------------------

def test_sbom_is_valid_cyclonedx() -> None:
    try:
        from cyclonedx.validation.json import JsonStrictValidator
        validator = JsonStrictValidator(SCHEMA_VERSION)
        error = validator.validate_str(sbom(inventory()))
    except ImportError as exc:  # MissingOptionalDependencyException is an ImportError
        pytest.fail(f"the SBOM test needs cyclonedx-python-lib[json-validation]: {exc}",
                    pytrace=False)
    assert error is None, str(error)


def test_sbom_components_have_package_urls() -> None:
    data = sbom_data()
    purls = {c["purl"] for c in data["components"] if "purl" in c}
    assert purls == {
        "pkg:deb/debian/libc6@2.41-12?arch=amd64&distro=debian-13",
        "pkg:deb/debian/libc6@2.41-12?arch=i386&distro=debian-13",  # not "libc6:i386"
        "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=amd64&distro=debian-13",
        "pkg:deb/debian/tzdata@2025b-4?arch=all&distro=debian-13",
        "pkg:pypi/jinja2@3.1.6",
        "pkg:pypi/numpy@2.3.5",
        "pkg:pypi/mypkg@1.0?download_url=https://example.org/mypkg-1.0.tar.gz",
        "pkg:cran/data.table@1.17.0",
        "pkg:cran/ggplot2@3.5.2",
        "pkg:cran/Rcpp@1.0.14",
    }
    numpy = next(c for c in data["components"] if c["name"] == "numpy")
    assert numpy["version"] == "2.3.5"
    assert numpy["type"] == "library"


def test_sbom_distro_is_the_codename_where_debian_has_no_version() -> None:
    data = sbom_data(meta=meta(os_version="forky"), debs=(Deb("bash", "5.2.37-2", "amd64"),))
    [bash] = [c for c in data["components"] if c["name"] == "bash"]
    assert bash["purl"] == "pkg:deb/debian/bash@5.2.37-2?arch=amd64&distro=debian-forky"


def test_sbom_describes_the_image_and_what_it_holds() -> None:
    data = sbom_data()
    assert data["bomFormat"] == "CycloneDX"
    assert data["specVersion"] == "1.6"
    assert data["metadata"]["timestamp"].startswith("2026-01-02T03:04:05")
    image = data["metadata"]["component"]
    assert (image["type"], image["name"], image["version"]) == ("container", "pylab", "a" * 64)
    [os_component] = [c for c in data["components"] if c["type"] == "operating-system"]
    assert (os_component["name"], os_component["version"]) == ("debian", "13")
    [image_deps] = [d for d in data["dependencies"] if d["ref"] == image["bom-ref"]]
    assert len(image_deps["dependsOn"]) == len(data["components"]) == 11
    assert data["metadata"]["tools"]["components"][0]["name"] == "pyrlab"


def test_sbom_is_the_same_for_the_same_inventory() -> None:
    assert sbom(inventory(), timestamp=WHEN) == sbom(inventory(), timestamp=WHEN)
    other = sbom_data(python=(PyDist("numpy", "2.3.6"),))
    assert other["serialNumber"] != sbom_data()["serialNumber"]
    assert sbom_data()["serialNumber"].startswith("urn:uuid:")


# --- tables -------------------------------------------------------------------------------

def assert_plain(text: str) -> None:
    assert "\x1b" not in text
    assert not BOX_DRAWING.search(text)
    assert "…" not in text  # nothing cut
    assert all(line == line.rstrip() for line in text.splitlines())


def columns(text: str, header: str) -> list[list[str]]:
    """The rows of the plain table under `header`, cut where the header's columns start,
    after checking that every cell starts exactly there."""
    lines = text.splitlines()
    offsets = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    rows = []
    for line in lines[lines.index(header) + 1:]:
        if not line:
            break
        cells = [line[a:b] for a, b in zip(offsets, [*offsets[1:], None], strict=True)]
        assert all(not cell[:1].isspace() for cell in cells), f"misaligned: {line!r}"
        assert all(line[a - 1:a] in ("", " ") for a in offsets[1:]), f"misaligned: {line!r}"
        rows.append([cell.strip() for cell in cells])
    return rows


def test_inspect_piped_is_plain_and_grouped_by_ecosystem() -> None:
    inv = inventory(python=(PyDist("numpy", "2.3.5"), PyDist("mypkg", "1.0", LONG_URL)))
    text = inspect_table(inv, stream=io.StringIO())
    assert_plain(text)
    lines = text.splitlines()
    assert lines[0] == "pylab: Debian GNU/Linux 13 (trixie), Python 3.13.5, R 4.5.0"
    assert lines[1] == f"input hash {'a' * 64}, base sha256:{'b' * 64}, pyrlab 0.1.0"
    assert [line for line in lines if line.endswith(")")] == [
        "Debian packages (4)", "Python packages (2)", "R packages (3)"]
    assert columns(text, "package     version    arch") == [
        ["libc6", "2.41-12", "amd64"], ["libc6:i386", "2.41-12", "i386"],
        ["libstdc++6", "14.2.0-19", "amd64"], ["tzdata", "2025b-4", "all"]]
    assert columns(text, "package  version  from") == [
        ["mypkg", "1.0", LONG_URL], ["numpy", "2.3.5", ""]]
    assert columns(text, "package     version  source") == [
        ["data.table", "1.17.0", "archive"], ["ggplot2", "3.5.2", "cran"],
        ["Rcpp", "1.0.14", "debian"]]


def test_inspect_of_an_image_without_r() -> None:
    text = inspect_table(inventory(meta=meta(r=""), r=()), stream=io.StringIO())
    assert text.splitlines()[0].endswith(", Python 3.13.5, no R")
    assert "R packages: none" in text.splitlines()


def test_markup_like_text_is_shown_as_written() -> None:
    url = "https://example.org/[bold]x[/bold]"
    for stream in (io.StringIO(), Terminal()):
        text = inspect_table(inventory(python=(PyDist("a", "1", url),)), stream=stream)
        assert url in text


def test_on_a_terminal_tables_have_rules_and_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    new = inventory(python=(PyDist("numpy", "2.3.6"),))
    text = diff_table([diff(inventory(), new)], stream=Terminal())
    assert BOX_DRAWING.search(text)
    assert re.search(r"\x1b\[3[1-6]m", text)  # a change's colour
    monkeypatch.setenv("NO_COLOR", "1")
    text = diff_table([diff(inventory(), new)], stream=Terminal())
    assert BOX_DRAWING.search(text)
    assert not re.search(r"\x1b\[3[1-6]m", text)


def test_diff_table_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's own switch: piped output stays plain
    old = {"pylab": inventory(), "rlab": inventory("rlab"), "gone": inventory("gone")}
    new = {
        "pylab": inventory(
            meta=meta(python="3.13.7"),
            debs=(Deb("libc6", "2.41-12+deb13u1", "amd64"), Deb("tzdata", "2025b-4", "amd64")),
            python=(PyDist("numpy", "2.3.4"), PyDist("jinja2", "3.1.6"),
                    PyDist("mypkg", "1.0", LONG_URL), PyDist("rich", "14.0.0")),
            r=(RPkg("ggplot2", "3.5.2", "cran"), RPkg("Rcpp", "1.0.14", "debian"),
               RPkg("data.table", "1.17.2", "cran"))),
        "rlab": inventory("rlab"),
        "new": inventory("new"),
    }
    text = diff_table(diff_locks(old, new), stream=io.StringIO())
    assert_plain(text)
    lines = text.splitlines()
    assert "gone: removed (10 packages)" in lines
    assert "new: new image (10 packages)" in lines
    assert "rlab: unchanged" in lines
    assert "pylab: 1 added, 2 removed, 2 upgraded, 1 downgraded, 2 changed" in lines
    assert "  python 3.13.5 -> 3.13.7" in lines
    header = next(line for line in lines if line.startswith("ecosystem"))
    assert header.split() == ["ecosystem", "package", "change", "old", "new"]
    assert columns(text, header) == [
        ["debs", "libc6", "upgraded", "2.41-12", "2.41-12+deb13u1"],
        ["debs", "libc6:i386", "removed", "2.41-12", "-"],
        ["debs", "libstdc++6", "removed", "14.2.0-19", "-"],
        ["debs", "tzdata", "changed", "2025b-4 all", "2025b-4 amd64"],
        ["python", "mypkg", "changed", "1.0 @ https://example.org/mypkg-1.0.tar.gz",
         f"1.0 @ {LONG_URL}"],
        ["python", "numpy", "downgraded", "2.3.5", "2.3.4"],
        ["python", "rich", "added", "-", "14.0.0"],
        ["r", "data.table", "upgraded", "1.17.0 archive", "1.17.2 cran"],
    ]


def test_outdated_table_piped() -> None:
    rows = [
        Outdated("rlab", "r", "ggplot2", "3.5.1", "3.5.2"),
        Outdated("pylab", "python", "numpy", "2.3.4", "2.3.5"),
        Outdated("pylab", "debian", "libc6", "2.41-12", "2.41-12+deb13u1"),
        Outdated("pylab", "python", "Jinja2", "3.1.5", "3.1.6"),
    ]
    text = outdated_table(rows, stream=io.StringIO())
    assert_plain(text)
    assert text.splitlines()[0] == "pylab: 3 outdated"
    header = "ecosystem  package  installed  available"
    assert columns(text, header) == [
        ["debs", "libc6", "2.41-12", "2.41-12+deb13u1"],
        ["python", "Jinja2", "3.1.5", "3.1.6"],
        ["python", "numpy", "2.3.4", "2.3.5"],
    ]
    assert "rlab: 1 outdated" in text.splitlines()
    assert outdated_table([], stream=io.StringIO()) == "Everything is up to date.\n"
