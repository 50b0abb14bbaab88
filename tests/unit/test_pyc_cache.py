"""pyc_cache.py, the build step that gives an environment its bytecode compiling each file
once ever, run here with this interpreter against a throwaway site-packages folder."""

from __future__ import annotations

import importlib.util
import marshal
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from labfiles import CONTAINER

SCRIPT = CONTAINER / "pyc_cache.py"
LINE = re.compile(r"pyrlab: bytecode for (\d+) files: (\d+) compiled, (\d+) reused from the "
                  r"cache, (\d+) not compilable")


def step_argv(cache: Path, site: Path, listfile: Path | None = None,
              skip: tuple[str, ...] = ("pkg/tests", "pkg/test")) -> list[str]:
    """The step's command line; the folders `skip` names (relative to site) are what
    test_folders.py would list: left out."""
    skipfile = site.parent / "skip.txt"
    skipfile.write_text("".join(f"{site / folder}\n" for folder in skip), encoding="utf-8")
    argv = [sys.executable, "-I", str(SCRIPT), "--skip", str(skipfile), str(cache), str(site)]
    return argv if listfile is None else [*argv, str(listfile)]


def counts(output: str) -> tuple[int, int, int, int]:
    """(files, compiled, reused, not compilable) from the step's log line."""
    found = LINE.search(output)
    assert found, output
    files, compiled, reused, bad = (int(n) for n in found.groups())
    return files, compiled, reused, bad


def run(cache: Path, site: Path, listfile: Path | None = None,
        skip: tuple[str, ...] = ("pkg/tests", "pkg/test")) -> tuple[int, int, int, int]:
    """The step's counts (see `counts`) for `site`, `skip` left out (see `step_argv`)."""
    done = subprocess.run(step_argv(cache, site, listfile, skip), capture_output=True,
                          text=True, check=True, timeout=120)
    return counts(done.stdout + done.stderr)


def make_site(root: Path) -> Path:
    site = root / "site-packages"
    for rel, text in {
        "pkg/__init__.py": "from .mod import f\n",
        "pkg/mod.py": "def f():\n    return 42\n",
        "pkg/tests/test_mod.py": "def test(): pass\n",
        "pkg/test/helper.py": "x = 1\n",
        "legacy/examples.py": 'print "Python 2"\n',
        "top.py": "VALUE = 'top'\n",
    }.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    return site


def pyc_of(path: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(path)))


def drop_bytecode(site: Path) -> None:
    for pyc in site.rglob("*.pyc"):
        pyc.unlink()


def header_matches(source: Path) -> bool:
    """The pyc's header is what the import checks: magic, timestamp kind, mtime, size."""
    head = pyc_of(source).read_bytes()[:16]
    st = source.stat()
    return (head[:4] == importlib.util.MAGIC_NUMBER
            and int.from_bytes(head[4:8], "little") == 0
            and int.from_bytes(head[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(head[12:16], "little") == st.st_size & 0xFFFFFFFF)


def test_second_build_reuses_every_pyc_with_the_installed_files_mtimes(tmp_path: Path) -> None:
    site, cache = make_site(tmp_path), tmp_path / "cache"
    # The skipped test suites are left out, the Python 2 file counted but never fails the
    # step.
    assert run(cache, site) == (4, 3, 0, 1)
    first = {p: p.read_bytes() for p in site.rglob("*.pyc")}
    assert {p.relative_to(site).as_posix() for p in first} == {
        "pkg/__pycache__/__init__." + sys.implementation.cache_tag + ".pyc",
        "pkg/__pycache__/mod." + sys.implementation.cache_tag + ".pyc",
        "__pycache__/top." + sys.implementation.cache_tag + ".pyc"}
    drop_bytecode(site)
    # The next full build: a new image, the same files written again with other mtimes.
    for source in site.rglob("*.py"):
        os.utime(source, (1_000_000, 1_000_000))
    assert run(cache, site) == (4, 0, 3, 1)
    for pyc, data in first.items():
        assert pyc.read_bytes()[16:] == data[16:]  # the same code
        assert pyc.stat().st_mode & 0o777 == 0o644  # readable by the lab's user
    for source in (site / "pkg" / "mod.py", site / "pkg" / "__init__.py", site / "top.py"):
        assert header_matches(source), source


def test_pycs_are_what_the_import_uses(tmp_path: Path) -> None:
    site, cache = make_site(tmp_path), tmp_path / "cache"
    run(cache, site)
    drop_bytecode(site)
    os.utime(site / "pkg" / "mod.py", (2_000_000, 2_000_000))
    run(cache, site)  # copied from the cache
    # A pyc Python rejected would be recompiled and (writable folder) rewritten.
    pycs = {p: p.stat().st_mtime_ns for p in site.rglob("*.pyc")}
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import pkg, top; "
            "print(pkg.f(), top.VALUE)")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.split() == ["42", "top"]
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*.pyc")} == pycs
    # A file replaced later (uv leaves the old pyc behind) is seen as changed.
    (site / "pkg" / "mod.py").write_text("def f():\n    return 7\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-I", "-B", "-c", code], capture_output=True,
                          text=True, check=True, timeout=60)
    assert done.stdout.split() == ["7", "top"]


def test_changed_source_or_other_path_is_compiled_anew(tmp_path: Path) -> None:
    site, cache = make_site(tmp_path), tmp_path / "cache"
    run(cache, site)
    drop_bytecode(site)
    (site / "pkg" / "mod.py").write_text("def f():\n    return 43\n", encoding="utf-8")
    # The same content at another path: its code records another co_filename.
    other = site / "copy" / "top.py"
    other.parent.mkdir()
    other.write_text("VALUE = 'top'\n", encoding="utf-8")
    assert run(cache, site) == (5, 2, 2, 1)
    assert header_matches(site / "pkg" / "mod.py") and header_matches(other)
    code = marshal.loads(pyc_of(other).read_bytes()[16:])
    assert code.co_filename == str(other)


def test_delta_compiles_only_the_listed_files(tmp_path: Path) -> None:
    site, cache = make_site(tmp_path), tmp_path / "cache"
    listfile = tmp_path / "new.txt"
    listfile.write_text(f"{site / 'top.py'}\n{site / 'pkg' / 'tests' / 'test_mod.py'}\n",
                        encoding="utf-8")
    assert run(cache, site, listfile) == (1, 1, 0, 0)
    assert [p.name for p in site.rglob("*.pyc")] == [pyc_of(site / "top.py").name]
    drop_bytecode(site)
    assert run(cache, site) == (4, 2, 1, 1)


def test_a_test_suite_that_is_not_skipped_gets_bytecode(tmp_path: Path) -> None:
    # pkg/tests is imported by its package (test_folders.py keeps it): compiled like the
    # rest, in a full build and in a delta; the suite still listed is not.
    site, cache = make_site(tmp_path), tmp_path / "cache"
    assert run(cache, site, skip=("pkg/test",)) == (5, 4, 0, 1)
    assert pyc_of(site / "pkg" / "tests" / "test_mod.py").is_file()
    assert not pyc_of(site / "pkg" / "test" / "helper.py").exists()
    drop_bytecode(site)
    listfile = tmp_path / "new.txt"
    listfile.write_text(f"{site / 'pkg' / 'tests' / 'test_mod.py'}\n"
                        f"{site / 'pkg' / 'test' / 'helper.py'}\n", encoding="utf-8")
    assert run(cache, site, listfile, skip=("pkg/test",)) == (1, 0, 1, 0)
    assert [p.name for p in site.rglob("*.pyc")] == [
        pyc_of(site / "pkg" / "tests" / "test_mod.py").name]


def test_entries_unused_for_a_month_are_pruned_once_a_day(tmp_path: Path) -> None:
    site, cache = make_site(tmp_path), tmp_path / "cache"
    gone = tmp_path / "gone"  # a package some earlier build had
    (gone / "old.py").parent.mkdir()
    (gone / "old.py").write_text("OLD = 1\n", encoding="utf-8")
    run(cache, gone)
    (entry,) = cache.rglob("*.pyc")
    old = time.time() - 40 * 86400
    os.utime(entry, (old, old))
    run(cache, site)  # pruned once today already (the first run): kept
    assert entry.is_file()
    os.utime(cache / "pruned", (old, old))
    drop_bytecode(site)
    assert run(cache, site) == (4, 0, 3, 1)
    assert not entry.exists()
    assert len(list(cache.rglob("*.pyc"))) == 3  # what this build used stays


def test_an_unwritable_cache_still_gives_the_image_its_bytecode(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder", encoding="utf-8")
    assert run(blocker, site) == (4, 3, 0, 1)
    assert pyc_of(site / "top.py").is_file()


def test_two_builds_sharing_the_cache_take_turns_and_the_second_reuses(tmp_path: Path) -> None:
    """Builds compiling into one cache take turns (its lock file): while a third holds it
    both wait, then one compiles every file and the other reuses them all; nothing is
    compiled twice."""
    import fcntl

    site = make_site(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    argv = step_argv(cache, site)
    with open(cache / "compile.lock", "w") as held:  # a build compiling now
        fcntl.flock(held, fcntl.LOCK_EX)
        builds = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(1.5)
        assert [b.poll() for b in builds] == [None, None], "they went on beside the holder"
    outs = [b.communicate(timeout=60)[0] for b in builds]
    assert all("waited" in out for out in outs), outs
    assert sorted(counts(out) for out in outs) == [(4, 0, 3, 1), (4, 3, 0, 1)], outs
