"""Delta builds for real: adding lines to a list builds one small layer on the image's
previous version (only the new packages installed and compiled), the result holds what a
full build holds, and removing a line goes back to a full build. Both kinds of build are
slim ([base] slim, the default): a package's test suite is left out and its shared
libraries are stripped (simplejson's wheel has both: tests/ and a .so with symbols). A full
rebuild after a removal compiles no bytecode: every pyc comes from the bytecode cache."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from labtools import EngineCli, Lab

pytestmark = pytest.mark.integration

ENGINE = "docker"
FREEZE = ("import importlib.metadata as m, json; "
          "print(json.dumps(sorted((d.metadata['Name'].lower(), d.version) "
          "for d in m.distributions())))")


# What slim changed in simplejson, seen from the image: its tests/ folder, and whether its
# extension module still has a symbol table (read from the ELF section headers).
SLIM_CHECK = r"""
import json, pathlib, simplejson, struct
folder = pathlib.Path(simplejson.__file__).parent
data = next(folder.glob("_speedups*.so")).read_bytes()
assert data[:4] == b"\x7fELF" and data[4] == 2, "an ELF64 file"
shoff = struct.unpack_from("<Q", data, 0x28)[0]
size, count, names_at = struct.unpack_from("<HHH", data, 0x3A)
def header(i):
    return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * size)
strings = header(names_at)[4]
names = [data[strings + header(i)[0]:data.index(b"\0", strings + header(i)[0])].decode()
         for i in range(count)]
print(json.dumps({"tests": (folder / "tests").exists(), "symtab": ".symtab" in names,
                  "text": ".text" in names}))
"""


# Every module of the venv (test suites aside) has a pyc whose header matches its installed
# source (mtime and size, though the pycs came from the cache): valid for any UID.
PYC_CHECK = r"""
import importlib.util, json, pathlib, re, sysconfig
site = pathlib.Path(sysconfig.get_path("purelib"))
facts = {"files": 0, "missing": 0, "invalid": 0}
for source in site.rglob("*.py"):
    if re.search(r"/tests?/", str(source)):
        continue
    facts["files"] += 1
    pyc = pathlib.Path(importlib.util.cache_from_source(str(source)))
    if not pyc.is_file():
        facts["missing"] += 1
        continue
    head, st = pyc.read_bytes()[:16], source.stat()
    if head != b"".join((importlib.util.MAGIC_NUMBER, bytes(4),
                         (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little"),
                         (st.st_size & 0xFFFFFFFF).to_bytes(4, "little"))):
        facts["invalid"] += 1
print(json.dumps(facts))
"""
BYTECODE_LINE = re.compile(r"pyrlab: bytecode for (\d+) files: (\d+) compiled, (\d+) reused "
                           r"from the cache, (\d+) not compilable")


def bytecode_counts(lab: Lab) -> tuple[int, int, int, int]:
    """(files, compiled, reused, not compilable) from the last pylab build's log."""
    log = max((lab.root / ".pyrlab" / "logs").glob("pylab-*.log"))
    found = BYTECODE_LINE.findall(log.read_text(encoding="utf-8"))
    assert found, f"no bytecode line in {log}"
    files, compiled, reused, bad = (int(n) for n in found[-1])
    return files, compiled, reused, bad


def slim_facts(engine: EngineCli, ref: str) -> dict[str, bool]:
    return json.loads(engine("run", "--rm", ref, "python", "-c", SLIM_CHECK).stdout)


def by_name(done: object) -> dict[str, dict[str, object]]:
    stdout = done.stdout
    return {image["name"]: image for image in json.loads(stdout)["images"]}


def distributions(engine: EngineCli, ref: str) -> list[list[str]]:
    return json.loads(engine("run", "--rm", ref, "python", "-c", FREEZE).stdout)


def layers(engine: EngineCli, ref: str) -> list[str]:
    info = engine.image(ref)
    assert info is not None
    return list(info["RootFS"]["Layers"])  # type: ignore[index]


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


def test_adding_a_package_builds_a_small_layer_that_equals_a_full_build(
        make_module_lab: Callable[..., Lab], engine: EngineCli) -> None:
    lab = make_module_lab("small", ENGINE)
    first = lab.pyrlab("build", "--json")
    assert first.returncode == 0, first.stderr
    before = layers(engine, lab.ref("pylab"))
    base_id = engine.image_id(lab.ref("pyrlab-base"))

    requirements = lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "idna\nsimplejson\n")
    delta = lab.pyrlab("build", "--json")
    assert delta.returncode == 0, delta.stderr
    images = by_name(delta)
    assert images["pyrlab-base"]["action"] == "skipped"
    assert images["pylab"]["action"] == "built"
    assert "2 added: a layer on" in str(images["pylab"]["reason"])
    assert slim_facts(engine, lab.ref("pylab")) == {"tests": False, "symtab": False,
                                                   "text": True}
    labels = engine.labels(lab.ref("pylab"))
    assert labels["org.pyrlab.delta-depth"] == "1"
    # The delta's last step rewrote the manifest: pyrlab.lock, read from it, has the two.
    lock = (lab.root / "pyrlab.lock").read_text()
    assert 'idna = "' in lock and 'simplejson = "' in lock
    assert labels["org.pyrlab.parent-id"] == base_id
    # The new image is the old one plus its own layers: nothing below was redone.
    after = layers(engine, lab.ref("pylab"))
    assert after[: len(before)] == before and len(after) > len(before)
    # idna is installed and compiled: another UID imports it without writing bytecode.
    check = engine("run", "--rm", "--user", "4242:4242", lab.ref("pylab"), "python", "-c",
                   "import idna, pathlib, sys; p = pathlib.Path(idna.__file__).parent; "
                   "assert list((p / '__pycache__').glob('*.pyc')), 'no bytecode'; "
                   "print(sys.dont_write_bytecode)")
    assert check.stdout.strip() == "False"
    # A plain next build finds it current.
    again = lab.pyrlab("build", "--json")
    assert {n: i["action"] for n, i in by_name(again).items()} == {
        "pyrlab-base": "skipped", "pylab": "skipped"}
    # The same lists built in full give the same distributions and versions.
    delta_dists = distributions(engine, lab.ref("pylab"))
    full = lab.pyrlab("build", "pylab", "--no-cache", "--json")
    assert full.returncode == 0, full.stderr
    assert engine.labels(lab.ref("pylab"))["org.pyrlab.delta-depth"] == "0"
    assert distributions(engine, lab.ref("pylab")) == delta_dists
    assert any(name == "idna" for name, _ in delta_dists)
    assert slim_facts(engine, lab.ref("pylab")) == {"tests": False, "symtab": False,
                                                   "text": True}


def test_removing_a_package_builds_in_full(make_module_lab: Callable[..., Lab],
                                          engine: EngineCli) -> None:
    lab = make_module_lab("small", ENGINE, name="removal")
    requirements = lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "idna\n")
    assert lab.pyrlab("build").returncode == 0
    requirements.write_text(requirements.read_text().replace("idna\n", ""))
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    assert "entries were removed or changed" in str(by_name(done)["pylab"]["reason"])
    assert engine.labels(lab.ref("pylab"))["org.pyrlab.delta-depth"] == "0"
    names = [name for name, _ in distributions(engine, lab.ref("pylab"))]
    assert "idna" not in names and "six" in names
    # Every file of it was compiled by the first build: none is compiled anew, and the
    # pycs from the cache are valid for the installed files, for another UID too.
    files, compiled, reused, bad = bytecode_counts(lab)
    assert (compiled, reused + bad) == (0, files) and reused > 100, (files, compiled, reused)
    facts = json.loads(engine("run", "--rm", "--user", "4242:4242", lab.ref("pylab"),
                              "python", "-c", PYC_CHECK).stdout)
    assert facts["invalid"] == 0 and facts["missing"] <= bad, facts
    assert facts["files"] >= reused
