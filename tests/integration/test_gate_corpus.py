"""The gate on a corpus of the traps real lists hold (issue 19), built for real from a local
index on 127.0.0.1 with fixed metadata (localindex.py), in one tiny lab built a few times:

- trapa: its __init__ imports its own `tests` subpackage (as tables and music21 do);
- trapb: ships a dev-only top-level module, trapb_lint, that needs a module nobody installs
  (as mlflow 1.27 ships pylint_plugins);
- trapc: imports pkg_resources without declaring setuptools (as lamini does);
- trapd: broken against its dependency's newest release: trapdep 2.0 removed what it
  imports (as chartpy against plotly 7).

Builds: (1) unmarked: trapc and trapd block, and the error says which pyrlab.toml lines
accept them; (2) those lines added: the image is promoted with two named known failures
and trapb_lint's warning; (3) a delta adding `trapdep<2` moves trapd's dependency, so trapd
is tested again (and trapc is not): it imports, and the gate says its mark is no longer
needed; (4) the line and trapd's mark go: a plain build keeps the lock's trapdep 1.0 and
trapd imports; (5) a delta adding trape, which needs trapdep>=2, moves trapdep to 2.0:
trapd worked in the image it replaces, so its failure blocks and is named a regression;
(6) so does `pyrlab upgrade`, which takes trapdep 2.0 too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from labtools import EngineCli, Lab
from localindex import Dist, LocalIndex, local_index

pytestmark = pytest.mark.integration

ENGINE = "docker"
CORPUS = (
    Dist("trapa", "1.0", modules={
        "trapa/__init__.py": "from .tests import helper\nVALUE = helper.VALUE\n",
        "trapa/tests/__init__.py": "",
        "trapa/tests/helper.py": "VALUE = 42\n",
    }),
    Dist("trapb", "1.0", modules={
        "trapb/__init__.py": "VALUE = 1\n",
        "trapb_lint.py": "import trap_missing_linter\n",
    }),
    Dist("trapc", "1.0", modules={"trapc/__init__.py": "import pkg_resources\n"}),
    Dist("trapd", "1.0", requires=("trapdep",), modules={
        "trapd/__init__.py": "from trapdep import old_api\n"}),
    Dist("trapdep", "1.0", modules={"trapdep/__init__.py": "def old_api():\n    return 1\n"}),
    Dist("trapdep", "2.0", uploaded="2024-06-01T00:00:00Z",
         modules={"trapdep/__init__.py": "def new_api():\n    return 2\n"}),
    Dist("trape", "1.0", requires=("trapdep>=2",), modules={"trape/__init__.py": ""}),
)
LIST = "trapa\ntrapb\ntrapc\ntrapd\n"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    with local_index(CORPUS, tmp_path_factory.mktemp("corpus")) as served:
        yield served


@pytest.fixture(scope="module")
def lab(make_module_lab: Callable[..., Lab], index: LocalIndex,
        get_engine: Callable[[str], EngineCli]) -> Lab:
    get_engine(ENGINE)
    made = make_module_lab("small", ENGINE, name="corpus")
    config = made.root / "pyrlab.toml"
    config.write_text(config.read_text() + f"\n[proxy]\npip_index = {json.dumps(index.url)}\n")
    (made.root / "requirements.txt").write_text(LIST)
    return made


@pytest.fixture(scope="module")
def engine_cli(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


def checks(done: Any) -> dict[str, dict[str, Any]]:
    """module → its check, from `build --json`'s pylab."""
    pylab = next(i for i in json.loads(done.stdout)["images"] if i["name"] == "pylab")
    return {c["what"]: c for c in pylab["test"]["checks"] if c["kind"] == "python"}


def test_the_corpus_is_judged_as_issue_19_asks(lab: Lab, engine_cli: EngineCli) -> None:
    config = lab.root / "pyrlab.toml"
    plain = config.read_text()

    # (1) Unmarked: trapc and trapd block, trapb's dev-only module only warns, trapa imports.
    first = lab.pyrlab("build", "pylab")
    assert first.returncode == 5, first.stderr
    assert "pylab failed its self-test" in first.stderr
    assert "import trapc (trapc) [requirements.txt:3]: ModuleNotFoundError: No module named " \
        "'pkg_resources'" in first.stderr
    assert "import trapd (trapd) [requirements.txt:4]: ImportError: cannot import name " \
        "'old_api' from 'trapdep'" in first.stderr
    assert "trapa" not in first.stderr.split("pyrlab: error:")[1].split("pyrlab: hint:")[0]
    assert "trapb_lint" not in first.stderr.split("pyrlab: error:")[1]
    # The error says how to accept them: TOML lines made from the actual errors.
    hint = first.stderr.split("pyrlab: hint:", 1)[1]
    assert "[test.known_failures.python]" in hint and "--no-test" in hint
    marks = re.findall(r"^\s+(trap[cd] = \".*\")$", hint, re.MULTILINE)
    assert [m.split(" ")[0] for m in marks] == ["trapc", "trapd"], hint
    assert engine_cli.image_id(lab.ref("pylab")) is None  # nothing became latest

    # (2) Those lines in pyrlab.toml: promoted, with the known failures named.
    config.write_text(plain + "\n[test.known_failures.python]\n" + "\n".join(marks) + "\n")
    assert lab.pyrlab("check").returncode == 0
    second = lab.pyrlab("build", "pylab", "--json")
    assert second.returncode == 0, second.stderr
    found = checks(second)
    assert found["trapa"]["verdict"] == "ok", found["trapa"]
    assert found["trapb"]["verdict"] == "ok"
    assert found["trapb_lint"]["verdict"] == "warning"
    assert "No module named 'trap_missing_linter'" in found["trapb_lint"]["error"]
    assert found["trapc"]["verdict"] == "known" and "pkg_resources" in found["trapc"]["error"]
    assert found["trapd"]["verdict"] == "known" and "old_api" in found["trapd"]["error"]
    assert "test.known_failures.python.trapd" in found["trapd"]["note"]
    promoted = engine_cli.image_id(lab.ref("pylab"))
    assert promoted is not None
    text = lab.pyrlab("test", "pylab")
    assert text.returncode == 0, text.stdout
    assert "ok, 2 known failures, 1 warning;" in text.stdout
    assert re.search(r"^  KNOWN import trapd \(trapd\) \[requirements.txt:4\]: ImportError",
                     text.stdout, re.MULTILINE)
    assert re.search(r"^  WARN import trapb_lint \(trapb\)", text.stdout, re.MULTILINE)

    # (3) A delta that moves trapd's dependency back to 1.0: trapd is tested again (its
    # own version did not change), trapc is not; trapd imports, and its mark is noted.
    (lab.root / "requirements.txt").write_text(LIST + "trapdep<2\n")
    third = lab.pyrlab("build", "pylab", "--json")
    assert third.returncode == 0, third.stderr
    pylab = next(i for i in json.loads(third.stdout)["images"] if i["name"] == "pylab")
    assert "1 added" in pylab["reason"]
    found = checks(third)
    assert set(found) == {"trapd", "trapdep"}, found
    assert found["trapd"]["verdict"] == "fixed" and not found["trapd"]["error"]
    assert "marks it as known to fail" in found["trapd"]["note"]

    # (4) The line and trapd's mark go: a plain build keeps the lock's trapdep 1.0.
    config.write_text(plain + "\n[test.known_failures.python]\n" + marks[0] + "\n")
    (lab.root / "requirements.txt").write_text(LIST)
    fourth = lab.pyrlab("build", "pylab", "--json")
    assert fourth.returncode == 0, fourth.stderr
    assert checks(fourth)["trapd"]["verdict"] == "ok"
    good = engine_cli.image_id(lab.ref("pylab"))

    # (5) A delta whose new line needs trapdep>=2: trapd, which worked, is a regression.
    (lab.root / "requirements.txt").write_text(LIST + "trape\n")
    fifth = lab.pyrlab("build", "pylab")
    assert fifth.returncode == 5, fifth.stderr
    assert "1 added: a layer on" in fifth.stderr
    regression = (r"REGRESSION import trapd \(trapd\) \[requirements.txt:4\]: ImportError: "
                  r"cannot import name 'old_api' .*worked in the image it replaces \("
                  + (good or "")[:12] + r"\): a regression")
    assert re.search(regression, fifth.stderr), fifth.stderr
    assert "(a regression)" in fifth.stderr.split("pyrlab: error:")[1]
    assert "trapc" not in fifth.stderr.split("pyrlab: error:")[1]  # known, not re-tested
    assert engine_cli.image_id(lab.ref("pylab")) == good

    # (6) `upgrade` takes trapdep 2.0 as well: the same regression, blocked.
    (lab.root / "requirements.txt").write_text(LIST)
    sixth = lab.pyrlab("upgrade", "pylab", "--keep-base")
    assert sixth.returncode == 5, sixth.stderr
    assert re.search(regression, sixth.stderr), sixth.stderr
    assert engine_cli.image_id(lab.ref("pylab")) == good
