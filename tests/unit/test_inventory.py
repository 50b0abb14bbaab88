"""Inventories: reading the collector's JSON, version order per ecosystem, and diffs.

The lock file, SBOMs and tables have their own test_inventory_*.py files; the sample
inventories they share (`meta`, `inventory`) are in inventories.py.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import shutil
import subprocess
from typing import Any

import pytest
from inventories import inventory, meta

from pyrlab import ecosystems
from pyrlab.contents.diff import Change, MetaChange, diff, diff_locks
from pyrlab.contents.model import ManifestError, Meta, from_manifest
from pyrlab.ecosystems.debian import Deb, compare_deb
from pyrlab.ecosystems.python import PyDist, compare_python, normalize_python_name
from pyrlab.ecosystems.r import RPkg, compare_r
from pyrlab.errors import EXIT_BUILD, PyrlabError


def manifest() -> dict[str, Any]:
    """What the collector writes for a small image (see test_inventory_collector.py)."""
    return {
        "format": 1,
        "meta": {"image": "rlab", "input_hash": "f" * 64, "pyrlab_version": "0.1.0",
                 "base_id": "sha256:" + "c" * 64},
        "os_release": {"PRETTY_NAME": "Debian GNU/Linux 13 (trixie)", "ID": "debian",
                       "VERSION_ID": "13", "VERSION_CODENAME": "trixie"},
        "python": "3.13.5",
        "debs": [["libc6", "2.41-12", "amd64"], ["libc6:i386", "2.41-12", "i386"],
                 ["r-cran-rcpp", "1.0.14-1", "amd64"]],
        "python_dists": [["Jinja2", "3.1.6", ""], ["mypkg", "1.0", "file:///src/mypkg"],
                         ["zope.interface", "7.2", ""]],
        "r": {"version": "4.5.0", "packages": [
            ["MASS", "7.3-65", "/usr/lib/R/library", ""],
            ["Rcpp", "1.0.14", "/usr/lib/R/site-library", "CRAN"],
            ["data.table", "1.16.0", "/usr/local/lib/R/site-library", "CRAN"],
            ["ggplot2", "3.5.2", "/usr/local/lib/R/site-library/", "CRAN"],
        ]},
    }


# --- the model ----------------------------------------------------------------------------

def test_python_names_are_normalised_as_pep_503_says() -> None:
    assert normalize_python_name("Zope.Interface") == "zope-interface"
    assert normalize_python_name("a__b-.c") == "a-b-c"
    assert PyDist("Foo_Bar", "1.0").name == "foo-bar"
    assert PyDist("Foo_Bar", "1.0") == PyDist("foo.bar", "1.0")


def test_inventory_sorts_every_ecosystem_by_name() -> None:
    inv = inventory()
    assert [d.name for d in inv.packages("debian")] == [
        "libc6", "libc6:i386", "libstdc++6", "tzdata"]
    assert [p.name for p in inv.packages("python")] == ["jinja2", "mypkg", "numpy"]
    # R names are case-sensitive but sorted as people read them
    assert [p.name for p in inv.packages("r")] == ["data.table", "ggplot2", "Rcpp"]


# --- from_manifest ------------------------------------------------------------------------

def test_manifest_is_read_into_an_inventory() -> None:
    inv = from_manifest(manifest(), "rlab.json")
    assert inv.meta == Meta(image="rlab", input_hash="f" * 64, pyrlab_version="0.1.0",
                            base_id="sha256:" + "c" * 64, os="Debian GNU/Linux 13 (trixie)",
                            os_id="debian", os_version="13", python="3.13.5", r="4.5.0")
    assert inv.packages("debian") == (Deb("libc6", "2.41-12", "amd64"), Deb("libc6:i386", "2.41-12", "i386"),
                        Deb("r-cran-rcpp", "1.0.14-1", "amd64"))
    assert inv.packages("python") == (PyDist("jinja2", "3.1.6"), PyDist("mypkg", "1.0", "file:///src/mypkg"),
                          PyDist("zope-interface", "7.2"))


def test_r_source_follows_the_library_and_the_hosts_pins() -> None:
    inv = from_manifest(manifest(), "rlab.json", pinned={"r": {"data.table", "Rcpp"}})
    assert inv.packages("r") == (
        RPkg("data.table", "1.16.0", "archive"),  # pinned, in pyrlab's library
        RPkg("ggplot2", "3.5.2", "cran"),
        RPkg("MASS", "7.3-65", "debian"),  # R's recommended packages, from Debian
        RPkg("Rcpp", "1.0.14", "debian"),  # a pin cannot make an r-cran-* package "archive"
    )
    assert from_manifest(manifest(), "x").packages("r")[0] == RPkg("data.table", "1.16.0", "cran")


def test_manifest_without_r() -> None:
    data = manifest()
    data["r"] = None
    inv = from_manifest(data, "pylab.json")
    assert inv.packages("r") == ()
    assert inv.meta.r == ""


def test_testing_and_sid_have_no_version_id_so_the_codename_is_used() -> None:
    data = manifest()
    data["os_release"] = {"PRETTY_NAME": "Debian GNU/Linux forky/sid", "ID": "debian",
                          "VERSION_ID": "", "VERSION_CODENAME": "forky"}
    assert from_manifest(data, "x").meta.os_version == "forky"


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(format=2), "format: expected 1, found 2"),
    (lambda d: d.pop("format"), "format: expected 1, found None"),
    (lambda d: d["meta"].pop("image"), "meta.image: missing"),
    (lambda d: d["meta"].update(input_hash=7), "meta.input_hash: expected a string, found a number"),
    (lambda d: d.update(debs={"libc6": "2.41"}), "debs: expected a list, found an object"),
    (lambda d: d["debs"].append(["bash", "5.2"]), "debs[3]: expected [name, version, arch]"),
    (lambda d: d["debs"].append(["bash", "5.2", ""]),
     "debs[3]: name, version, arch must be words without spaces, found ['bash', '5.2', '']"),
    (lambda d: d["python_dists"].append(["x", "1 .0", ""]),
     "python_dists[3]: name, version must be words without spaces"),
    (lambda d: d["python_dists"].append(["Zope_Interface", "7.1", ""]),
     "python_dists: package 'zope-interface' is listed twice"),
    (lambda d: d["debs"].append(["libc6", "2.41-11", "amd64"]),
     "debs: package 'libc6' is listed twice"),
    (lambda d: d.update(r=[]), "r: expected an object, found a list"),
    (lambda d: d["r"].update(version=""), "r.version: empty"),
    (lambda d: d["r"]["packages"].append(["x", "1.0", "/lib"]),
     "r.packages[4]: expected [name, version, libpath, repository] (strings)"),
    (lambda d: d.update(os_release={"ID": "debian"}) or d.pop("python"), "python: missing"),
])
def test_a_bad_manifest_is_a_user_error_naming_it(change: Any, expected: str) -> None:
    data = copy.deepcopy(manifest())
    change(data)
    with pytest.raises(ManifestError) as caught:
        from_manifest(data, "build/pylab.inventory.json")
    message = str(caught.value)
    assert message.startswith("build/pylab.inventory.json: not a valid pyrlab inventory: ")
    assert expected in message
    assert isinstance(caught.value, PyrlabError)
    assert caught.value.exit_code == EXIT_BUILD


def test_every_problem_of_a_manifest_is_reported_at_once() -> None:
    data = manifest()
    data["meta"].pop("base_id")
    data["debs"][0] = ["libc6"]
    with pytest.raises(ManifestError) as caught:
        from_manifest(data, "m.json")
    assert "meta.base_id: missing" in str(caught.value)
    assert "debs[0]: expected [name, version, arch]" in str(caught.value)


@pytest.mark.parametrize("data", [None, [], "text", {"format": True}, {"format": "1"}])
def test_a_manifest_that_is_not_an_inventory_at_all(data: object) -> None:
    with pytest.raises(ManifestError, match=r"^m\.json: not a valid pyrlab inventory: "):
        from_manifest(data, "m.json")


# --- version order ------------------------------------------------------------------------

# Each pair checked with `dpkg --compare-versions` on Debian 12.
DEB_PAIRS = [
    ("1.0~rc1", "1.0", -1),
    ("1:0.1", "2.0", 1),
    ("2.41-12", "2.41-12+deb13u1", -1),
    ("2.41-9", "2.41-12", -1),  # numeric, not text: "9" > "1"
    ("1.0", "1.0", 0),
    ("1.0-0", "1.0", 0),
    ("0:1.0", "1.0", 0),
    ("01", "1", 0),
    ("1.0~~", "1.0~", -1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0+", -1),  # letters sort before other characters
    ("1.0+", "1.0.", -1),
    ("1.0-1", "1.0-1~bpo1", 1),
    ("1.0-a", "1.0-1", 1),
    ("1:1.3.dfsg-3.1", "1.3.dfsg-3.2", 1),
    ("1.2.3~rc1+dfsg-1", "1.2.3-1", -1),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1),
]


@pytest.mark.parametrize(("a", "b", "expected"), DEB_PAIRS)
def test_debian_versions_order_as_dpkg_orders_them(a: str, b: str, expected: int) -> None:
    assert compare_deb(a, b) == expected
    assert compare_deb(b, a) == -expected
    assert ecosystems.named("debian").contents.compare(a, b) == expected


def test_debian_order_agrees_with_dpkg_itself() -> None:
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        pytest.skip("dpkg is not installed (the pairs above were checked with it)")
    versions = sorted({v for a, b, _ in DEB_PAIRS for v in (a, b)} | {
        "1.0~beta1~git20240101", "2:0", "1.0+really0.9", "10", "9.99", "1.0-1ubuntu1",
        "3.12.4-1~exp1", "1.0.0~", "0.0"}, key=functools.cmp_to_key(compare_deb))
    for lower, higher in itertools.pairwise(versions):
        expected = "eq" if compare_deb(lower, higher) == 0 else "lt"
        result = subprocess.run([dpkg, "--compare-versions", lower, expected, higher],
                                capture_output=True, check=False)
        assert result.returncode == 0, f"dpkg does not agree that {lower} {expected} {higher}"


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("1.9", "1.10", -1),
    ("2.0rc1", "2.0", -1),
    ("1.0", "1.0.post1", -1),
    ("1.0", "1.0.0", 0),
    ("1!0.1", "2.0", 1),
    ("2.0.dev1", "2.0a1", -1),
    ("not-pep-440", "also-not", 1),  # the text is all there is
    ("1.0", "1.0-foo", -1),  # one invalid: text order
])
def test_python_versions_follow_pep_440(a: str, b: str, expected: int) -> None:
    assert compare_python(a, b) == expected
    assert ecosystems.named("python").contents.compare(a, b) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("0.9", "0.10", -1),
    ("1.2-3", "1.2-10", -1),
    ("1.0", "1.0.1", -1),
    ("1.0-0", "1.0.0", 0),  # R's package_version() reads - and . alike
    ("3.5.2", "3.5.2", 0),
    ("7.3-65", "7.3-61", 1),
    ("1.0.x", "1.0.1", 1),  # not an R version: text order
])
def test_r_versions_compare_numeric_components(a: str, b: str, expected: int) -> None:
    assert compare_r(a, b) == expected
    assert ecosystems.named("r").contents.compare(a, b) == expected


# --- diff ---------------------------------------------------------------------------------

def test_diff_says_what_changed_in_each_ecosystem() -> None:
    old = inventory()
    new = inventory(
        meta=meta(python="3.13.7"),
        debs=(Deb("libc6", "2.41-12+deb13u1", "amd64"), Deb("libstdc++6", "14.2.0-19", "amd64"),
              Deb("tzdata", "2025b-4", "amd64"), Deb("curl", "8.14.1-2", "amd64")),
        python=(PyDist("numpy", "2.3.4"), PyDist("jinja2", "3.1.6"),
                PyDist("mypkg", "1.0", "https://example.org/mypkg-1.0-fixed.tar.gz"),
                PyDist("rich", "14.0.0")),
        r=(RPkg("ggplot2", "3.5.2", "cran"), RPkg("Rcpp", "1.0.14", "debian"),
           RPkg("data.table", "1.17.2", "cran")),
    )
    result = diff(old, new)
    assert result.image == "pylab"
    assert result.status == "changed"
    assert result.meta == (MetaChange("python", "3.13.5", "3.13.7"),)
    assert result.changes("debian") == (
        Change("debian", "curl", "added", None, "8.14.1-2", "", "amd64"),
        Change("debian", "libc6", "upgraded", "2.41-12", "2.41-12+deb13u1", "amd64", "amd64"),
        Change("debian", "libc6:i386", "removed", "2.41-12", None, "i386", ""),
        Change("debian", "tzdata", "changed", "2025b-4", "2025b-4", "all", "amd64"),
    )
    assert result.changes("python") == (
        Change("python", "mypkg", "changed", "1.0", "1.0",
               "https://example.org/mypkg-1.0.tar.gz",
               "https://example.org/mypkg-1.0-fixed.tar.gz"),
        Change("python", "numpy", "downgraded", "2.3.5", "2.3.4", "", ""),
        Change("python", "rich", "added", None, "14.0.0", "", ""),
    )
    assert result.changes("r") == (
        Change("r", "data.table", "upgraded", "1.17.0", "1.17.2", "archive", "cran"),
    )
    assert result.count("added") == 2
    assert result.count("changed") == 2
    assert len(result.all_changes) == 8


def test_diff_orders_versions_per_ecosystem_not_as_text() -> None:
    old = inventory(debs=(Deb("a", "2.41-9", "amd64"),), python=(PyDist("b", "1.9"),),
                    r=(RPkg("c", "0.9", "cran"),))
    new = inventory(debs=(Deb("a", "2.41-12", "amd64"),), python=(PyDist("b", "1.10"),),
                    r=(RPkg("c", "0.10", "cran"),))
    assert [c.kind for c in diff(old, new).all_changes] == ["upgraded"] * 3
    assert [c.kind for c in diff(new, old).all_changes] == ["downgraded"] * 3


def test_diff_of_equal_inventories_is_empty() -> None:
    result = diff(inventory(), inventory())
    assert result.status == "unchanged"
    assert result.all_changes == ()
    assert result.meta == ()


def test_a_new_base_alone_changes_the_image() -> None:
    result = diff(inventory(), inventory(meta=meta(base_id="sha256:" + "d" * 64)))
    assert result.status == "changed"
    assert [m.field for m in result.meta] == ["base-id"]
    assert result.all_changes == ()


def test_diff_of_a_new_and_a_removed_image() -> None:
    added = diff(None, inventory())
    assert added.status == "added"
    assert {c.kind for c in added.all_changes} == {"added"}
    assert len(added.all_changes) == 10
    removed = diff(inventory(), None)
    assert removed.status == "removed"
    assert removed.changes("python")[0] == Change("python", "jinja2", "removed", "3.1.6", None, "", "")
    with pytest.raises(ValueError):
        diff(None, None)


def test_diff_to_json_is_plain_json() -> None:
    result = diff(inventory(), inventory(python=(PyDist("numpy", "2.3.6"),), r=()))
    data = json.loads(json.dumps(result.to_json()))
    assert data["image"] == "pylab"
    assert data["status"] == "changed"
    assert data["meta"] == []
    assert data["debs"] == []
    assert data["python"][-1] == {
        "ecosystem": "python", "name": "numpy", "kind": "upgraded", "old_version": "2.3.5",
        "new_version": "2.3.6", "old_origin": "", "new_origin": ""}
    assert [c["kind"] for c in data["r"]] == ["removed"] * 3


def test_diff_locks_compares_image_by_image() -> None:
    old = {"pylab": inventory("pylab"), "rlab": inventory("rlab"), "gone": inventory("gone")}
    new = {"pylab": inventory("pylab"), "rlab": inventory("rlab", r=()),
           "added": inventory("added")}
    results = diff_locks(old, new)
    assert [(d.image, d.status) for d in results] == [
        ("added", "added"), ("gone", "removed"), ("pylab", "unchanged"), ("rlab", "changed")]
    assert [c.name for c in results[3].changes("r")] == ["data.table", "ggplot2", "Rcpp"]
