"""The contents and outdated parts of the ecosystem interface: an ecosystem registered from
here (no other module changed) shows up in the inventory, the lock, diffs, tables, the SBOM
and `outdated`; one registered ecosystem's parts answer for its packages."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

import pytest
from inventories import inventory, meta

from pyrlab import ecosystems
from pyrlab.contents.diff import diff
from pyrlab.contents.lockfile import LockError, parse_lock, render_lock, section_path
from pyrlab.contents.model import Inventory, Outdated, from_manifest
from pyrlab.contents.sbom import sbom
from pyrlab.contents.tables import diff_table, inspect_table
from pyrlab.contents.upgradable import outdated_rows
from pyrlab.ecosystems.base import (
    NATIVE,
    Answer,
    Contents,
    Ecosystem,
    Found,
    ImageFacts,
    ManifestReader,
    Platform,
    Purl,
    Queries,
    Query,
)
from pyrlab.ecosystems.debian import Deb
from pyrlab.ecosystems.python import PyDist
from pyrlab.ecosystems.r import RPkg


@dataclass(frozen=True)
class Item:
    name: str
    version: str

    @property
    def origin(self) -> str:
        return ""


def _read(top: Mapping[str, object], reader: ManifestReader, pinned: frozenset[str],
          platform: Platform) -> Found[Item]:
    rows = reader.rows(top.get("items", []), "items", ("name", "version"), 2)
    return Found(reader.unique([Item(*row) for row in rows], "items"))


def _parse(name: str, value: str) -> Item | str | None:
    return Item(name, value) if value and " " not in value else None


def _purl(item: Item, facts: ImageFacts) -> Purl:
    return Purl(type="generic", name=item.name, version=item.version)


def _outdated(files: Collection[str], packages: tuple[Item, ...], secret_dir: str,
              platform: Platform) -> Query | None:
    return Query(("items-newest",), {"bin": "bin"}, lambda out: Answer(dict(
        line.split() for line in out.splitlines())))


def _newer(item: Item, available: Mapping[str, str]) -> str | None:
    version = available.get(item.name)
    return version if version and int(version) > int(item.version) else None


ITEMS = Ecosystem(
    name="items", title="Items", order=90, step="items", list_key="items",
    lock_key="item-list", manifest_key="items",
    contents=Contents[Item](
        read_manifest=_read, lock_value=lambda item: item.version, parse_lock_value=_parse,
        value_shape='"NUMBER"', compare=lambda a, b: int(a) - int(b), origin_header="-",
        shown=lambda version, origin: version, purl=_purl),
    queries=Queries(outdated=_outdated, newer=_newer),
)


@pytest.fixture
def items() -> Iterator[Ecosystem]:
    undo = ecosystems.register(ITEMS)
    yield ITEMS
    undo()


def with_items(image: str = "pylab", *found: Item) -> Inventory:
    base = inventory(image)
    return Inventory(base.meta, {**base.by_ecosystem, "items": found})


def test_an_inventory_holds_each_registered_ecosystem_by_name() -> None:
    inv = inventory()
    assert list(inv.by_ecosystem) == [eco.name for eco in ecosystems.registered()]
    assert inv.packages("debian") == inv.packages("debs")
    assert Inventory(meta()).packages("r") == ()
    assert Inventory(meta(), {"debian": [Deb("b", "1", "all"), Deb("a", "1", "all")]}) \
        == Inventory(meta(), debs=(Deb("a", "1", "all"), Deb("b", "1", "all")))
    with pytest.raises(ValueError, match="'debian' are given twice"):
        Inventory(meta(), debian=(), debs=())
    with pytest.raises(KeyError, match="'conda'"):
        Inventory(meta(), conda=())
    assert inv.platform == NATIVE and hash(inv) == hash(inventory())
    replaced = dataclasses.replace(inv, python=())
    assert replaced.packages("python") == () and replaced.packages("debian") == inv.packages("debian")


def test_the_lock_section_path_is_computed_in_one_place() -> None:
    debian = ecosystems.named("debian")
    assert section_path("pylab", debian) == ("images", "pylab", "debs")
    assert section_path("pylab", debian, "linux/arm64") == ("images", "pylab", "linux/arm64",
                                                             "debs")


def test_the_built_in_parts_answer_for_their_packages() -> None:
    debian, python, r = (ecosystems.named(n) for n in ("debian", "python", "r"))
    assert debian.contents.lock_value(Deb("libc6", "2.41-12", "amd64")) == "2.41-12 amd64"
    assert python.contents.lock_value(PyDist("x", "1.0", "file:///x")) == "1.0 @ file:///x"
    assert r.contents.parse_lock_value("cli", "3.6.4 github") == \
        "'cli': unknown source 'github' (expected debian, cran, archive)"
    assert r.contents.parse_lock_value("cli", "3.6.4") is None  # not the value's shape
    assert python.contents.canonical_name("Zope.Interface") == "zope-interface"
    assert debian.contents.purl(Deb("libc6:i386", "2.41", "i386"), meta()) == Purl(
        "deb", "libc6", "2.41", "debian", {"arch": "i386", "distro": "debian-13"})
    # Queries: asked only where there is something to ask.
    assert python.queries.outdated((), (), "/s", NATIVE) is None
    assert r.queries.outdated((), (RPkg("MASS", "7.3", "debian"),), "/s", NATIVE) is None
    query = r.queries.outdated((), (RPkg("cli", "3.6", "cran"),), "/s", NATIVE)
    assert query is not None and '-e' in query.argv and 'f <- "/s/repos.txt"' in query.argv
    assert debian.queries.newer(Deb("libc6:i386", "2.41-12", "i386"),
                                {"libc6": "2.41-13"}) == "2.41-13"
    assert python.queries.newer(PyDist("x", "1.0", "file:///x"), {"x": "2.0"}) is None


def test_a_registered_ecosystem_reaches_manifest_lock_diff_sbom_and_tables(
        items: Ecosystem) -> None:
    data = {"format": 1, "meta": {"image": "pylab", "input_hash": "a", "pyrlab_version": "0",
                                  "base_id": "b"},
            "os_release": {"ID": "debian", "VERSION_ID": "13"}, "python": "3.13.5",
            "debs": [], "python_dists": [], "items": [["beta", "2"], ["alpha", "1"]]}
    assert from_manifest(data, "m.json").packages("items") == (Item("alpha", "1"),
                                                                Item("beta", "2"))
    data["items"] = [["alpha", "1"], ["alpha", "2"]]
    with pytest.raises(Exception, match="items: package 'alpha' is listed twice"):
        from_manifest(data, "m.json")

    old = with_items("pylab", Item("alpha", "1"), Item("beta", "2"))
    text = render_lock({"pylab": old})
    # Its section comes last, under its lock key; the built-in sections are as before.
    assert text.endswith('\n[images.pylab.item-list]\nalpha = "1"\nbeta = "2"\n')
    assert text.startswith(render_lock({"pylab": inventory()}))
    assert parse_lock(text) == {"pylab": old}
    with pytest.raises(LockError, match=r':\d+: \'alpha\' = "1 2": expected "NUMBER"'):
        parse_lock(text.replace('alpha = "1"', 'alpha = "1 2"'))

    new = with_items("pylab", Item("alpha", "3"))
    changes = diff(old, new)
    assert [(c.ecosystem, c.name, c.kind) for c in changes.changes("items")] == [
        ("items", "alpha", "upgraded"), ("items", "beta", "removed")]
    assert changes.to_json()["item-list"][0]["ecosystem"] == "item-list"
    assert "item-list  alpha    upgraded  1    3" in diff_table([changes], stream=io.StringIO())
    assert "Items (1)" in inspect_table(new, stream=io.StringIO())
    purls = [c["purl"] for c in json.loads(sbom(new))["components"] if "purl" in c]
    assert "pkg:generic/alpha@3" in purls and len(purls) == 11
    assert outdated_rows("pylab", new, {"items": {"alpha": "4"}}) == [
        Outdated("pylab", "items", "alpha", "3", "4")]


def test_an_old_lock_without_a_registered_ecosystem_s_section_still_reads(
        items: Ecosystem) -> None:
    assert parse_lock(render_lock({"pylab": inventory()})) == {"pylab": inventory()}


def test_a_section_of_an_unregistered_ecosystem_is_an_unknown_key() -> None:
    undo = ecosystems.register(ITEMS)
    try:
        text = render_lock({"pylab": with_items("pylab", Item("alpha", "1"))})
    finally:
        undo()
    with pytest.raises(LockError, match="unknown key 'item-list' in \\[images.pylab\\]"):
        parse_lock(text)
