"""[base] slim (the default) never removes what a package imports: music21 imports
music21.test from its own code and tables runs `from .tests import print_versions, test`
in its __init__. Built for real from PyPI, in a full build (music21) and in a delta that adds
tables, each imports as another UID; the test suites they import keep their files and have
bytecode, while suites nothing imports (numpy's, matplotlib's, music21.mei's) are gone."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from labtools import EngineCli, Lab

pytestmark = pytest.mark.integration

ENGINE = "docker"
UID = "4242:4242"
# For each folder named (relative to site-packages): null where it is gone, else how many
# .py files it holds and how many have a pyc whose header matches the installed source.
SUITES = r"""
import importlib.util, json, pathlib, sys, sysconfig
site = pathlib.Path(sysconfig.get_path("purelib"))
def valid(source):
    pyc = pathlib.Path(importlib.util.cache_from_source(str(source)))
    if not pyc.is_file():
        return False
    st = source.stat()
    return pyc.read_bytes()[:16] == b"".join((
        importlib.util.MAGIC_NUMBER, bytes(4), (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little"),
        (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")))
facts = {}
for rel in sys.argv[1:]:
    folder = site / rel
    sources = sorted(folder.rglob("*.py")) if folder.is_dir() else None
    facts[rel] = None if sources is None else [len(sources), sum(map(valid, sources))]
print(json.dumps(facts))
"""
KEPT_LINE = re.compile(r"pyrlab: test suites: \d+ of \d+ kept, imported by their packages "
                       r"\(([^)]*)\)")


def suites(engine: EngineCli, ref: str, *folders: str) -> dict[str, list[int] | None]:
    done = engine("run", "--rm", "--network", "none", "--user", UID, ref, "python", "-c",
                  SUITES, *folders)
    return json.loads(done.stdout)


def kept_in_log(lab: Lab) -> set[str]:
    """The suites the last pylab build's scan kept, from its log."""
    log = max((lab.root / ".pyrlab" / "logs").glob("pylab-*.log"))
    found = KEPT_LINE.findall(log.read_text(encoding="utf-8"))
    assert found, f"no test-suite line in {log}"
    return set(found[-1].split(", "))


def imports_as_another_uid(engine: EngineCli, ref: str, code: str) -> str:
    done = engine("run", "--rm", "--network", "none", "--user", UID, ref, "python", "-c",
                  code, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def music21_lab(make_module_lab: Callable[..., Lab]) -> Lab:
    """The small lab (slim by default) with music21 instead of its two packages."""
    lab = make_module_lab("small", ENGINE, name="slim")
    (lab.root / "requirements.txt").write_text("music21\n", encoding="utf-8")
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    return lab


def test_a_full_slim_build_keeps_the_test_suite_music21_imports(
        music21_lab: Lab, engine: EngineCli) -> None:
    ref = music21_lab.ref("pylab")
    assert "music21/test" in kept_in_log(music21_lab)
    assert imports_as_another_uid(engine, ref, "import music21; print('ok')") == "ok"
    facts = suites(engine, ref, "music21/test", "music21/mei/test", "numpy/_core/tests",
                   "matplotlib/tests")
    files, compiled = facts["music21/test"] or (0, -1)
    assert files > 10 and compiled == files, facts
    # What nothing imports is left out, in music21 itself and in its dependencies.
    assert facts["music21/mei/test"] is None and facts["numpy/_core/tests"] is None, facts
    assert facts["matplotlib/tests"] is None, facts


def test_a_delta_that_adds_tables_keeps_the_suite_its_init_imports(
        music21_lab: Lab, engine: EngineCli) -> None:
    requirements = music21_lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "tables\n", encoding="utf-8")
    done = music21_lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    ref = music21_lab.ref("pylab")
    assert engine.labels(ref)["org.pyrlab.delta-depth"] == "1"
    assert "tables/tests" in kept_in_log(music21_lab)
    code = "import tables, music21; print(tables.print_versions.__module__)"
    assert imports_as_another_uid(engine, ref, code) == "tables.tests.common"
    facts = suites(engine, ref, "tables/tests", "tables/nodes/tests", "music21/test")
    files, compiled = facts["tables/tests"] or (0, -1)
    assert files > 10 and compiled == files, facts
    assert facts["tables/nodes/tests"] is None, facts
    assert facts["music21/test"] is not None, facts  # the full build's, untouched
