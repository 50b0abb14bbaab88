"""test_folders.py, the build step that lists the test suites nothing imports (what
[base] slim removes and what gets no bytecode), run here with this interpreter against
package trees written into a throwaway site-packages folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from labfiles import CONTAINER

SCRIPT = CONTAINER / "test_folders.py"
LINE = re.compile(r"pyrlab: test suites: (\d+) of (\d+) kept, imported by their packages "
                  r"\((.*)\); (\d+) files scanned")


def write_tree(site: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")


def unused(site: Path, listfile: Path | None = None) -> set[str]:
    """The suites the script lists as imported by nothing (relative to site), checked
    against its log line."""
    out = site.parent / "unused.txt"
    argv = [sys.executable, "-I", str(SCRIPT), str(site), str(out)]
    if listfile is not None:
        argv.append(str(listfile))
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    found = LINE.search(done.stdout)
    assert found, done.stdout + done.stderr
    listed = {Path(line).relative_to(site).as_posix()
              for line in out.read_text(encoding="utf-8").splitlines()}
    kept = set() if found[3] == "none" else set(found[3].split(", "))
    assert int(found[1]) == len(kept) and int(found[2]) == len(kept) + len(listed)
    assert all(Path(line).is_absolute() for line in out.read_text().splitlines())
    return listed


def suite(package: str, name: str = "tests") -> dict[str, str]:
    """A test suite of `package`: a package with a module and a test module."""
    return {f"{package}/{name}/__init__.py": "",
            f"{package}/{name}/common.py": "HELPER = 1\n",
            f"{package}/{name}/test_x.py": "def test_x():\n    assert True\n"}


def test_suites_imported_absolute_or_relative_are_kept(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    write_tree(site, {
        # tables' way: `from .tests import …` in its __init__
        "rel/__init__.py": "from .tests import common\n", **suite("rel"),
        # music21's way: the absolute module path
        "absmod/__init__.py": "import absmod.test\n", **suite("absmod", "test"),
        "absfrom/__init__.py": "from absfrom.tests.common import HELPER\n", **suite("absfrom"),
        "fromname/core.py": "from fromname import tests\n", **suite("fromname"),
        "dotname/__init__.py": "from . import tests as t\n", **suite("dotname"),
        # two levels up, from a subpackage's module
        "up/__init__.py": "", "up/sub/__init__.py": "", **suite("up", "test"),
        "up/sub/mod.py": "from ..test import common\n",
        # lazily, inside a function (numexpr's test()), and by import_module()
        "lazy/__init__.py": "def test():\n    from lazy.tests import test_x\n    return 1\n",
        **suite("lazy"),
        "dynamic/__init__.py": ("import importlib\n"
                                "def run():\n"
                                "    return importlib.import_module('dynamic.tests.common')\n"),
        **suite("dynamic"),
        # over several lines: in parentheses, or continued with a backslash
        "paren/__init__.py": "from . import (\n    other,  # (and more)\n    tests,\n)\n",
        "paren/other.py": "", **suite("paren"),
        "slash/__init__.py": "from . import other, \\\n    tests\n",
        "slash/other.py": "", **suite("slash"),
        "slash2/__init__.py": "from .test import common, \\\n    test_x\n",
        **suite("slash2", "test"),
        # on one line after a colon: the statement alone does not parse, the file does
        "colon/__init__.py": "try: from .tests import common\nexcept ImportError: pass\n",
        **suite("colon"),
        # deep in a package: the suite's own path, not a top-level name
        "deep/__init__.py": "", "deep/a/__init__.py": "", **suite("deep/a"),
        "deep/a/b.py": "from .tests import common\n",
    })
    assert unused(site) == set()


def test_suites_nothing_imports_are_listed(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    write_tree(site, {
        "plain/__init__.py": "import os\nimport unittest\nimport pytest\n", **suite("plain"),
        # names that only look alike: a sibling module `test_utils`, a word in prose
        "alike/__init__.py": ("from .test_utils import x\nfrom alike.testing import y\n"
                              '"""Run the tests: import the test module first."""\n'),
        "alike/test_utils.py": "x = 1\n", "alike/testing.py": "y = 1\n", **suite("alike"),
        # another package's suite of the same name; and a doctest, which no import runs
        "other/__init__.py": ('"""\n>>> from other.tests import common\n"""\n'
                              "from plain import tests\n"), **suite("other"),
        # pytest's conftest.py is test code: its imports keep nothing
        "conf/conftest.py": "from conf.tests import common\n", **suite("conf"),
        # a suite inside a suite is part of it; a nested suite deep in a package is its own
        "nest/__init__.py": "", **suite("nest"), **suite("nest/tests/unit", "test"),
        "nest/sub/__init__.py": "", **suite("nest/sub"),
        # a data-only suite, an empty one, and a Python 2 file that does not parse
        "data/__init__.py": "print 'old'; from data.tests import x\n",
        "data/tests/sample.csv": "a,b\n",
        "empty/__init__.py": "",
        # a top-level `tests` package is a module of its own: never a suite
        "tests/__init__.py": "import alike.tests\n",
    })
    (site / "empty" / "test").mkdir()
    # plain's suite is imported by `other`: kept; alike's by the top-level `tests` package.
    assert unused(site) == {"other/tests", "conf/tests", "nest/tests", "nest/sub/tests",
                            "data/tests", "empty/test"}


def test_a_module_named_test_is_no_suite(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    write_tree(site, {"mod/__init__.py": "from . import test\nfrom .test import check\n",
                      "mod/test.py": "def check():\n    return True\n",
                      "mod/sub/__init__.py": "", **suite("mod/sub")})
    assert unused(site) == {"mod/sub/tests"}


def test_what_a_kept_suite_imports_is_kept_too(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    write_tree(site, {
        "first/__init__.py": "from .tests import common\n",
        **suite("first"),
        "first/tests/__init__.py": "from second.tests import common\n",
        "second/__init__.py": "", **suite("second"),
        "second/tests/common.py": "import third.test.common\n",
        "third/__init__.py": "", **suite("third", "test"),
        # imported only from a suite nobody imports: not kept
        "fourth/__init__.py": "", **suite("fourth"),
        "fourth/tests/test_x.py": "from fifth.tests import common\n",
        "fifth/__init__.py": "", **suite("fifth"),
    })
    assert unused(site) == {"fourth/tests", "fifth/tests"}


def test_a_delta_looks_at_the_files_it_installed(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    write_tree(site, {
        "old/__init__.py": "", **suite("old"),  # there before: neither listed nor removed
        "new/__init__.py": "from .tests import common\n", **suite("new"),
        "newer/__init__.py": "", **suite("newer", "test"),
        "newer/test/data/input.txt": "x\n",
    })
    listfile = tmp_path / "new.txt"
    installed = [p.relative_to(site).as_posix() for p in sorted(site.rglob("*"))
                 if p.is_file() and p.parts[len(site.parts)] != "old"]
    listfile.write_text("\n".join([*installed, "../../bin/newer-cli"]) + "\n",
                        encoding="utf-8")
    assert unused(site, listfile) == {"newer/test"}
