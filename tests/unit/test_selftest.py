"""The self-test: `pyrlab test`, the gate in `build`, and `rollback`, against the in-memory
engine (its containers answer as container/selftest.py would); and the container-side
script itself, on a distribution made up in a temporary folder."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fakes import FILES, FakeEngine
from labfiles import build_json, make_project, pyrlab

from pyrlab import ecosystems, proc
from pyrlab.container import selftest as container_selftest
from pyrlab.contents.lockfile import read_lock
from pyrlab.ecosystems import python, r
from pyrlab.ecosystems.base import Finding, Listed
from pyrlab.engines.docker import DockerBuildx
from pyrlab.errors import EXIT_BUILD, EXIT_NOT_BUILT, EXIT_TEST
from pyrlab.gate import Check, SelfTester, checked, mark_key


def imported(engine: FakeEngine) -> list[list[str]]:
    """The distributions each `imports` exec asked for, in order."""
    return [[d for d, _ in json.loads(cmd[-1])] for _, cmd in engine.execs
            if cmd[-2] == "imports"]


# --------------------------------------------------------------------------- the gate


def test_each_built_image_is_tested_in_a_locked_down_container_before_its_tags_move(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    data = build_json(capsys, lab)
    tests = {i["name"]: i["test"] for i in data["images"]}
    assert tests["pylab"]["ok"] and [c["name"] for c in tests["pylab"]["checks"]] == ["six"]
    assert [c["name"] for c in tests["pylab-torch"]["checks"]] == ["packaging", "six"]
    assert tests["pyrlab-base"]["checks"] == []  # nothing listed: nothing to import
    assert data["seconds"]["self_test"] <= data["seconds"]["build"]
    # No container for an image with nothing to check.
    assert sorted(r.labels["org.pyrlab.selftest"] for r in engine.runs) == [
        "other", "pylab", "pylab-torch"]
    for request in engine.runs:  # the container contract of a self-test
        assert request.network_none and not request.mounts and not request.ports
        assert request.user and not request.user.startswith("0:")
        assert request.cap_drop == ("ALL",) and request.command == ("sleep", "infinity")
    assert engine.containers == {}  # every one removed


def test_an_import_failure_keeps_latest_and_the_lock_and_tags_the_image_failed(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    latest = engine.image("t/pylab:latest")
    lock = (lab / "pyrlab.lock").read_bytes()
    (lab / "requirements.txt").write_text("six\nidna\n")
    engine.broken_imports = {"idna": "RuntimeError: idna refuses to import"}
    code, _out, err = pyrlab(capsys, "build", "-C", str(lab))
    assert code == EXIT_BUILD
    assert ("pyrlab: error: pylab failed its self-test: import idna (idna) "
            "[requirements.txt:2]: RuntimeError: idna refuses to import; "
            "t/pylab:latest was not changed, the new image is t/pylab:failed") in err
    assert "FAIL import idna (idna) [requirements.txt:2]: RuntimeError" in err
    assert engine.image("t/pylab:latest") == latest
    failed = engine.image("t/pylab:failed")
    assert failed is not None and failed.id != latest.id  # type: ignore[union-attr]
    assert (lab / "pyrlab.lock").read_bytes() == lock
    assert "pylab-torch" not in engine.built[4:]  # its child was not built
    # --no-test lets it through; the next build (with the test) then has nothing to do.
    data = build_json(capsys, lab, "--no-test")
    assert {i["name"]: i["action"] for i in data["images"]}["pylab-torch"] == "built"
    assert all(i["test"] is None for i in data["images"])
    assert data["seconds"]["self_test"] == 0
    assert "idna" in {d.name for d in read_lock(lab / "pyrlab.lock")["pylab"].packages("python")}


def test_a_delta_build_tests_only_what_its_manifest_shows_changed(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    engine.execs.clear()
    (lab / "requirements.txt").write_text("six\nidna\n")
    data = build_json(capsys, lab, "pylab")
    assert engine.deltas == ["pylab"]
    assert imported(engine) == [["idna"]]  # not six: it did not change
    pylab = next(i for i in data["images"] if i["name"] == "pylab")
    assert [c["name"] for c in pylab["test"]["checks"]] == ["idna"]


def test_a_delta_listing_a_distribution_already_installed_tests_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    engine.execs.clear()
    (lab / "torch.txt").write_text("packaging\nsix\n")  # six came with pylab: same version
    build_json(capsys, lab, "pylab-torch")
    assert engine.deltas == ["pylab-torch"]
    assert imported(engine) == [["six"]]


def test_build_text_reports_the_gates_share_of_the_build_time(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = pyrlab(capsys, "build", "-C", str(lab))
    assert code == 0
    # The seconds are the fake gate's own: 0.0 on an idle machine, more on a loaded one.
    assert re.search(r"\(self-test \d+\.\ds, 1 checks\) → t/pylab:latest", out), out
    assert [line for line in out.splitlines() if line.startswith("build ")] == [
        line for line in out.splitlines() if ", of which self-tests " in line]


# --------------------------------------------------------------------------- pyrlab test


def test_pyrlab_test_lists_what_it_checked_and_fails_with_every_failure(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    (lab / "other.txt").write_text("idna\nsix\n")
    build_json(capsys, lab)
    code, out, _ = pyrlab(capsys, "test", "-C", str(lab), "pylab", "other")
    assert code == 0
    assert out.splitlines()[0].startswith("pylab (") and "ok; 1 imports" in out
    assert "  imported: idna, six" in out
    engine.broken_imports = {"idna": "ImportError: no idna", "six": "SyntaxError: bad six"}
    code, out, _ = pyrlab(capsys, "test", "-C", str(lab), "other")
    assert code == EXIT_TEST
    assert "  FAIL import idna (idna) [other.txt:1]: ImportError: no idna" in out
    assert "  FAIL import six (six) [other.txt:2]: SyntaxError: bad six" in out
    code, out, _ = pyrlab(capsys, "test", "-C", str(lab), "--json", "other")
    assert code == EXIT_TEST
    data = json.loads(out)
    assert not data["ok"]
    errors = {c["name"]: (c["error"], c["where"]) for c in data["images"][0]["checks"]}
    assert errors == {"idna": ("ImportError: no idna", "other.txt:1"),
                      "six": ("SyntaxError: bad six", "other.txt:2")}


def test_pyrlab_test_of_an_image_not_built_says_so(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pyrlab(capsys, "test", "-C", str(lab), "pylab")
    assert code == EXIT_NOT_BUILT and "not built: pylab" in err


def test_ancestors_lists_are_tested_too_and_url_entries_by_their_distribution(
        tmp_path: Path) -> None:
    from pyrlab.config.project import load_project
    from pyrlab.contents.model import Inventory, Meta
    from pyrlab.ecosystems.python import PyDist

    url = "https://example.org/wheels/tool-1.0-py3-none-any.whl"
    root = make_project(tmp_path / "lab", {**FILES, "torch.txt": f"Packaging\n{url}\n"})
    project = load_project(root, environ={})
    meta = Meta("pylab-torch", "", "", "", "", "debian", "13", "3.13")
    inventory = Inventory(meta, python=(PyDist("tool", "1.0", url),))
    wanted = {eco.name: {n: line.where for n, line in lines.items()}
              for eco, lines in checked(project, "pylab-torch", inventory)}
    assert wanted == {"python": {"six": "requirements.txt:1", "packaging": "torch.txt:1",
                                 "tool": "torch.txt:2"}, "r": {}}
    assert SelfTester(project, FakeEngine()).config is project.config


# --------------------------------------------------------------------------- rollback


def test_rollback_restores_previous_and_its_lock_section_and_names_what_rebuilds(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    build_json(capsys, lab)
    first = engine.image("t/pylab:latest")
    assert first is not None
    (lab / "requirements.txt").write_text("six\nidna\n")
    build_json(capsys, lab)
    second = engine.image("t/pylab:latest")
    assert second is not None and second.id != first.id
    code, out, err = pyrlab(capsys, "rollback", "-C", str(lab), "pylab")
    assert code == 0, err
    assert engine.image("t/pylab:latest").id == first.id  # type: ignore[union-attr]
    assert engine.image("t/pylab:rolled-back").id == second.id  # type: ignore[union-attr]
    assert engine.image("t/pylab:previous") is None
    assert {d.name for d in read_lock(lab / "pyrlab.lock")["pylab"].packages("python")} == {"six"}
    assert "now t/pylab:rolled-back" in out
    # The lists still ask for idna: the next build would make it again, and says so; the
    # child built on the rolled-back image rebuilds too.
    assert "next `pyrlab build` rebuilds pylab: changed: Python packages" in out
    assert "next `pyrlab build` rebuilds pylab-torch: pylab is built first" in out
    (lab / "requirements.txt").write_text("six\n")  # the lists agree with the image again
    plan = json.loads(pyrlab(capsys, "build", "-C", str(lab), "--dry-run", "--json")[1])
    reasons = {i["name"]: (i["action"], i["reason"]) for i in plan["images"]}
    assert reasons["pylab"][0] == "skip"
    assert reasons["pylab-torch"] == ("build", "pylab's inputs changed")
    code, _, err = pyrlab(capsys, "rollback", "-C", str(lab), "pylab")
    assert code == EXIT_NOT_BUILT
    assert "t/pylab:previous does not exist: there is nothing to roll back to" in err


# --------------------------------------------------------------------------- the script


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path holding `demo` 1.0: a package, a module, a private module, a
    .pth file and a script; `broken` 1.0, whose module raises on import."""
    folder = tmp_path / "site"
    files = {
        "demo_pkg/__init__.py": "", "demo_single.py": "", "_demo_private.py": "",
        "demo.pth": "", "broken_mod.py": "raise RuntimeError('broken on purpose')\n",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    for dist, record in (("demo", ["demo_pkg/__init__.py", "demo_single.py",
                                   "_demo_private.py", "demo.pth", "../../bin/demo"]),
                         ("broken", ["broken_mod.py"])):
        info = folder / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "RECORD").write_text("".join(f"{p},,\n" for p in [
            *record, f"{dist}-1.0.dist-info/METADATA", f"{dist}-1.0.dist-info/RECORD"]))
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for name in ("demo_pkg", "demo_single", "broken_mod"):
            sys.modules.pop(name, None)


def test_the_container_script_imports_top_level_names_from_record(site: Path) -> None:
    rows = container_selftest.imports([["demo", None], ["broken", None], ["absent", None],
                                       ["demo", ["demo_single"]]])
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("demo", "demo_pkg", ""), ("demo", "demo_single", ""),
        ("broken", "broken_mod", "RuntimeError: broken on purpose"),
        ("absent", "", "not installed"), ("demo", "demo_single", "")]


def test_self_test_containers_have_no_network() -> None:
    from pyrlab.engines.base import RunRequest

    argv = DockerBuildx("docker").run_argv(RunRequest(image="i", name="n", network_none=True))
    assert argv[argv.index("--network") + 1] == "none"


class HostRscript(FakeEngine):
    """Runs the R check's command on this machine (R packages are what the host has)."""

    def exec(self, container: str, command: Sequence[str], *,
             timeout: float | None = None) -> proc.Completed:
        return proc.run(command, timeout=timeout)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="needs R")
def test_the_r_check_attaches_each_package_and_names_the_missing_one(lab: Path) -> None:
    from pyrlab.config.project import load_project

    tester = SelfTester(load_project(lab, environ={}), HostRscript())
    wanted = {"stats": Listed("r.txt:1"), "nosuchpkg": Listed("r.txt:2")}
    checks = tester._check("host", ecosystems.named("r"), wanted,
                           [(name, "") for name in sorted(wanted)])
    assert [(c.name, c.where, c.ok) for c in checks] == [
        ("nosuchpkg", "r.txt:2", False), ("stats", "r.txt:1", True)]
    assert "there is no package called" in checks[0].error
    assert checks[0].describe() == "library nosuchpkg [r.txt:2]"


class RAnswers(FakeEngine):
    """Answers the R check (every package attaches) besides FakeEngine's Python checks."""

    def exec(self, container: str, command: Sequence[str], *,
             timeout: float | None = None) -> proc.Completed:
        if command[0] == "Rscript":
            self.execs.append((container, tuple(command)))
            rows = "".join(f"{name}\t0.01\t\n" for name in command[3:])
            return proc.Completed(tuple(command), 0, rows, "")
        return super().exec(container, command, timeout=timeout)


@pytest.mark.parametrize(("r_packages", "kernel"), [
    (("jsonlite",), "python3"),  # an rlab without IRkernel has no R kernel to start
    (("jsonlite", "IRkernel"), "ir"),
])
def test_an_r_only_delta_starts_r_s_kernel_only_where_the_image_has_one(
        tmp_path: Path, r_packages: tuple[str, ...], kernel: str) -> None:
    from pyrlab.config.project import load_project
    from pyrlab.contents.model import Inventory, Meta
    from pyrlab.ecosystems.python import PyDist
    from pyrlab.ecosystems.r import RPkg
    from pyrlab.gate import Scope

    root = make_project(tmp_path / "lab", {
        "pyrlab.toml": ('prefix = "t/"\n[base]\nimage = "t/debian:trixie"\npython = "debian"\n'
                        'debs = []\n[images.rlab]\nr = "debian"\nr_packages = ["r.txt"]\n'
                        "ports = { lab = 9999 }\n"),
        "r.txt": "".join(f"{name}\n" for name in r_packages)})
    engine = RAnswers()
    meta = Meta("rlab", "h", "0", "sha256:" + "b" * 64, "Debian", "debian", "13", "3.13.5", "4.5.0")
    inventory = Inventory(meta, python=(PyDist("jupyter-server", "2.0"),),
                          r=tuple(RPkg(name, "1.0", "debian") for name in r_packages))
    tester = SelfTester(load_project(root, environ={}), engine)
    test = tester.test("rlab", "b" * 64, Scope({"python": frozenset(), "r": frozenset({"jsonlite"})},
                                               full_lab=False), inventory=inventory)
    assert test.ok, test.summary()
    kernels = [json.loads(command[-1]) for _, command in engine.execs
               if command[-2:-1] == ("kernels",)]
    assert kernels == [[kernel]]


# --------------------------------------------------------------------------- judging


def judge_imports(rows: list[list[Any]], lines: dict[str, Listed],
                  marks: dict[str, str], marks_in: str = "pyrlab.toml") -> list[Check]:
    """Python's judge of container/selftest.py's rows, as the gate reports it."""
    eco = ecosystems.named("python")
    return [Check.of(eco, f) for f in python.judge_imports(rows, lines, marks,
                                                            mark_key(eco, marks_in))]


def judge_libraries(checks: list[Check], marks: dict[str, str]) -> list[Check]:
    eco = ecosystems.named("r")
    findings = [Finding(c.name, c.what, c.seconds, c.error, c.where) for c in checks]
    return [Check.of(eco, f) for f in r.judge_libraries(findings, marks,
                                                         mark_key(eco, "pyrlab.toml"))]


def rows_of(*rows: tuple[str, str, str] | tuple[str, str, str, list[str]]) -> list[list[Any]]:
    """Container rows [dist, module, seconds, error, types] from (dist, module, error[, types])."""
    return [[r[0], r[1], 0.1, r[2], list(r[3]) if len(r) > 3 else  # type: ignore[misc]
             ([r[2].split(":")[0]] if r[2] else [])] for r in rows]


def test_a_distributions_own_module_blocks_and_its_other_modules_only_warn() -> None:
    from pyrlab.ecosystems.python import primary_modules

    assert primary_modules("mlflow", ["mlflow", "pylint_plugins"]) == {"mlflow"}
    assert primary_modules("duckdb", ["adbc_driver_duckdb", "duckdb"]) == {"duckdb"}
    assert primary_modules("jupyterlab-widgets", ["jupyterlab_widgets"]) == {
        "jupyterlab_widgets"}
    assert primary_modules("PyYAML", ["yaml"]) == {"yaml"}  # no module named as it is: all
    assert primary_modules("lamini", ["lamini", "llama"]) == {"lamini"}
    assert primary_modules("zope.interface", ["zope"]) == {"zope"}
    lines = {"mlflow": Listed("requirements.txt:1"), "pyyaml": Listed("r.txt:2")}
    checks = judge_imports(rows_of(
        ("mlflow", "mlflow", ""),
        ("mlflow", "pylint_plugins", "ModuleNotFoundError: No module named 'astroid'"),
        ("pyyaml", "yaml", "ImportError: libyaml.so.0: cannot open shared object file"),
    ), lines, {})
    verdicts = {c.what: (c.verdict, c.ok) for c in checks}
    assert verdicts == {"mlflow": ("ok", True), "pylint_plugins": ("warning", True),
                        "yaml": ("failed", False)}
    warning = next(c for c in checks if c.what == "pylint_plugins")
    assert warning.line() == (
        "WARN import pylint_plugins (mlflow) [requirements.txt:1]: ModuleNotFoundError: "
        "No module named 'astroid' (not mlflow's own module: a warning, not a failure)")


def test_a_mark_accepts_its_error_by_type_or_text_and_nothing_else() -> None:
    from pyrlab.gate import ImageTest

    lines = {d: Listed(f"requirements.txt:{i}") for i, d in
             enumerate(["chartpy", "lamini", "tables", "dill", "six"], 1)}
    marks = {"chartpy": "No module named 'plotly.figure_factory._ohlc'",  # a text
             "lamini": "ImportError",  # a type: ModuleNotFoundError is one
             "tables": "ModuleNotFoundError",  # fails otherwise
             "dill": "RuntimeError"}  # imports now
    checks = judge_imports(rows_of(
        ("chartpy", "chartpy",
         "ModuleNotFoundError: No module named 'plotly.figure_factory._ohlc'"),
        ("lamini", "lamini", "ModuleNotFoundError: No module named 'pkg_resources'",
         ["ModuleNotFoundError", "ImportError", "Exception"]),
        ("tables", "tables", "OSError: libhdf5.so.310: cannot open shared object file",
         ["OSError", "Exception"]),
        ("dill", "dill", ""),
        ("six", "six", "SyntaxError: bad six"),
    ), lines, marks)
    by = {c.name: c for c in checks}
    assert {n: c.verdict for n, c in by.items()} == {
        "chartpy": "known", "lamini": "known", "tables": "failed", "dill": "fixed",
        "six": "failed"}
    assert by["chartpy"].note == "a known failure (pyrlab.toml: test.known_failures.python.chartpy)"
    assert "fails otherwise than pyrlab.toml: test.known_failures.python.tables expects" \
        in by["tables"].note
    assert "imports now, though pyrlab.toml: test.known_failures.python.dill marks it" \
        in by["dill"].note
    test = ImageTest("pylab", "a" * 64, tuple(checks), 1.0)
    assert [c.name for c in test.failures] == ["tables", "six"]
    assert not test.ok and [c.name for c in test.having("known")] == ["chartpy", "lamini"]


def test_the_accept_hint_is_toml_that_accepts_exactly_those_failures(tmp_path: Path) -> None:
    from pyrlab.config.readers import load_config
    from pyrlab.gate import ImageTest

    error = "ImportError: cannot import name 'old_api' from 'dep' (/opt/venv/x \"y\".py)"
    failures = (Check("python", "trapd", "trapd", 0.1, error, "requirements.txt:4"),
                Check("python", "ghost", "", 0.0, "not installed", "requirements.txt:5"),
                Check("r", "sf", "library(sf)", 0.2, "unable to load shared object "
                      "'sf.so': libgdal.so.36: cannot open shared object file", "r.txt:1"))
    hint = ImageTest("pylab", "a" * 64, failures, 1.0).accept_hint()
    assert "known failure in pyrlab.toml" in hint
    toml = "\n".join(line.strip() for line in hint.splitlines()[1:])
    assert "ghost" not in toml  # not installed is no upstream breakage to accept
    (tmp_path / "pyrlab.toml").write_text(toml)
    config = load_config(tmp_path, environ={})
    python, r = ({m.name: m.expected for m in config.test.known_failures_python},
                 {m.name: m.expected for m in config.test.known_failures_r})
    assert python == {"trapd": "cannot import name 'old_api' from 'dep' (/opt/venv/x \"y\".py)"}
    judged = judge_imports(rows_of(("trapd", "trapd", error)),
                           {"trapd": Listed("requirements.txt:4")}, python)
    assert judged[0].verdict == "known"
    assert judge_libraries([failures[2]], r)[0].verdict == "known"


def test_r_marks_accept_a_text_of_librarys_error() -> None:

    checks = [Check("r", "sf", "library(sf)", 0.1, "libgdal.so.36: cannot open", "r.txt:1"),
              Check("r", "terra", "library(terra)", 0.1, "there is no package", "r.txt:2"),
              Check("r", "dplyr", "library(dplyr)", 0.1, "", "r.txt:3"),
              Check("r", "ggplot2", "library(ggplot2)", 0.1, "no ggplot2", "r.txt:4")]
    judged = judge_libraries(checks, {"sf": "libgdal", "terra": "libgdal", "dplyr": "x"})
    assert [(c.name, c.verdict) for c in judged] == [
        ("sf", "known"), ("terra", "failed"), ("dplyr", "fixed"), ("ggplot2", "failed")]


def test_a_line_whose_marker_leaves_it_out_is_skipped_not_failed() -> None:

    lines = {"pywinpty": Listed("requirements.txt:1", 'os_name == "nt"'),
             "absent": Listed("requirements.txt:2")}
    checks = judge_imports([["pywinpty", "", 0.0, "not installed", []],
                            ["absent", "", 0.0, "not installed", []]], lines, {})
    assert [(c.name, c.verdict) for c in checks] == [("pywinpty", "skipped"),
                                                     ("absent", "failed")]


@pytest.mark.parametrize(("text", "problem"), [
    ('[test.known_failures.python]\n"a.b" = "X"\n',
     'test.known_failures.python."a.b": expected a top-level module name'),
    ('[test.known_failures.python]\nchartpy = 3\n',
     "test.known_failures.python.chartpy: expected the error it fails with"),
    ('[test.known_failures.python]\nchartpy = " "\n',
     "test.known_failures.python.chartpy: expected the error it fails with"),
    ('[test.known_failures.r]\n"9sf" = "libgdal"\n',
     'test.known_failures.r.9sf: expected an R package name'),
    ('[test.known_failures]\njulia = {}\n', "test.known_failures.julia: unknown key"),
    ('[test]\nknown_failures = 1\n', "test.known_failures: expected a table"),
    ('[test.known_failures]\npython = []\n', "test.known_failures.python: expected a table"),
])
def test_known_failure_marks_are_checked_naming_file_and_key(
        tmp_path: Path, text: str, problem: str) -> None:
    from pyrlab.config.readers import read_config

    (tmp_path / "pyrlab.toml").write_text(text)
    _, problems = read_config(tmp_path, environ={})
    # Each case's key is on (or in the table of) the second line.
    assert any(str(p).startswith(f"pyrlab.toml:2: {problem}") for p in problems), problems


def test_a_mark_limited_to_platforms_holds_only_on_them(tmp_path: Path) -> None:
    from pyrlab import ecosystems
    from pyrlab.config.model import Mark
    from pyrlab.config.project import load_project
    from pyrlab.gate import marks_of

    (tmp_path / "pyrlab.toml").write_text(
        '[test.known_failures.python]\n'
        'chartpy = "ModuleNotFoundError"\n'
        'tables = { error = "OSError", platforms = ["aarch64"] }\n'
        '[test.known_failures.r]\n'
        'sf = { error = "libgdal", platforms = ["linux/amd64", "linux/arm64/v8"] }\n')
    for name in ("base_debs.txt", "requirements.txt", "r_debs.txt", "r_requirements.txt",
                 "r_packages.txt"):
        (tmp_path / name).write_text("")
    project = load_project(tmp_path, environ={})
    assert project.config.test.known_failures_python == (
        Mark("chartpy", "ModuleNotFoundError"), Mark("tables", "OSError", ("linux/arm64",)))
    python, r = ecosystems.named("python"), ecosystems.named("r")
    assert marks_of(project, python, "linux/amd64") == {"chartpy": "ModuleNotFoundError"}
    assert marks_of(project, python, "linux/arm64") == {"chartpy": "ModuleNotFoundError",
                                                        "tables": "OSError"}
    assert marks_of(project, r, "linux/amd64") == marks_of(project, r, "linux/arm64") \
        == {"sf": "libgdal"}


# --------------------------------------------------------------------------- delta scope


def test_a_delta_retests_listed_packages_whose_dependencies_moved_transitively() -> None:
    from pyrlab.contents.dependencies import Installed, InstalledDist, PythonGraph
    from pyrlab.ecosystems.python import retest_after_delta

    requires = {
        "chartpy": ["plotly>=5", "pandas"],
        "plotly": ["narwhals>=1", "kaleido; extra == 'export'"],
        "pandas": ["numpy>=1.26", "pytz; python_version < '3.0'"],
        "dvc": ["dvc-s3; extra == 's3'", "funcy"],
        "dvc-s3": ["boto3"],
        "music21": ["numpy"],
        "six": [],
    }
    installed = [InstalledDist(name, "1.0", tuple(lines)) for name, lines in requires.items()]
    # narwhals, numpy, funcy… are installed too; kaleido, boto3 and pytz are not.
    installed += [InstalledDist(name, "1.0", ()) for name in ("narwhals", "numpy", "funcy")]
    graph = PythonGraph(Installed.of({"python_version": "3.13", "sys_platform": "linux"},
                                     installed))
    assert graph.reachable("chartpy") == {
        "plotly", "pandas", "narwhals", "numpy"}  # no kaleido (an extra), no pytz (marker)
    assert graph.reachable("dvc", frozenset({"s3"})) == {"dvc-s3", "boto3", "funcy"}
    assert graph.reachable("dvc") == {"funcy"}
    lines = {"chartpy": Listed("r:1"), "dvc": Listed("r:2", extras=frozenset({"s3"})),
             "music21": Listed("r:3"), "six": Listed("r:4")}
    reach = graph.reachable
    assert retest_after_delta(lines, frozenset({"narwhals"}), reach) == {"chartpy"}
    assert retest_after_delta(lines, frozenset({"numpy"}), reach) == {"chartpy", "music21"}
    assert retest_after_delta(lines, frozenset({"boto3", "six"}), reach) == {"dvc", "six"}
    assert retest_after_delta(lines, frozenset({"pytz", "kaleido"}), reach) == frozenset()


def test_a_delta_that_moves_a_dependency_tests_the_package_that_needs_it(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.dependencies = {"idna": "1.0"}  # six's dependency, not listed
    engine.requires = {"six": ["idna>=1"]}
    build_json(capsys, lab, "pylab")
    engine.execs.clear()
    engine.dependencies = {"idna": "2.0"}  # the delta's resolution moves it
    (lab / "requirements.txt").write_text("six\npackaging\n")
    build_json(capsys, lab, "pylab")
    assert engine.deltas == ["pylab"]
    assert imported(engine) == [["packaging", "six"]]  # six: its idna moved


def test_a_failure_that_worked_in_the_replaced_image_is_a_regression_unless_marked(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.dependencies = {"idna": "1.0"}
    engine.requires = {"six": ["idna"]}
    build_json(capsys, lab, "pylab")
    good = engine.image("t/pylab:latest")
    assert good is not None
    engine.unbroken = {good.id}
    engine.dependencies = {"idna": "2.0"}
    engine.broken_imports = {"six": "ImportError: cannot import name 'x' from 'idna'"}
    (lab / "requirements.txt").write_text("six\npackaging\n")
    code, _out, err = pyrlab(capsys, "build", "-C", str(lab), "pylab")
    assert code == EXIT_BUILD
    assert engine.deltas == ["pylab"]
    assert ("REGRESSION import six (six) [requirements.txt:1]: ImportError: cannot import "
            f"name 'x' from 'idna' (worked in the image it replaces ({good.id[:12]}): "
            "a regression)") in err
    assert "cannot import name 'x' from 'idna' (a regression); t/pylab:latest was not " \
        "changed" in err
    assert "[test.known_failures.python]\n    six = \"cannot import name 'x' from 'idna'\"" \
        in err
    assert engine.image("t/pylab:latest") == good
    # The mark is the user's decision: the same failure, accepted.
    with (lab / "pyrlab.toml").open("a") as toml:
        toml.write("\n[test.known_failures.python]\nsix = \"cannot import name 'x'\"\n")
    data = build_json(capsys, lab, "pylab")
    pylab = next(i for i in data["images"] if i["name"] == "pylab")
    assert pylab["action"] == "built"
    assert [(c["what"], c["verdict"]) for c in pylab["test"]["checks"]] == [
        ("packaging", "ok"), ("six", "known")]


def test_a_known_failure_is_reported_by_build_and_test_and_the_image_promoted(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.broken_imports = {"six": "ModuleNotFoundError: No module named 'pkg_resources'"}
    code, _out, err = pyrlab(capsys, "build", "-C", str(lab), "pylab")
    assert code == EXIT_BUILD
    assert "FAIL import six (six) [requirements.txt:1]: ModuleNotFoundError" in err
    assert ("pyrlab: hint: look inside with `fake run --rm -it t/pylab:failed bash`; if this "
            "is broken upstream and you want the image all the same, accept it as a known "
            "failure in pyrlab.toml:\n    [test.known_failures.python]\n"
            "    six = \"No module named 'pkg_resources'\"\n"
            "(or `--no-test` builds without the self-test)") in err
    with (lab / "pyrlab.toml").open("a") as toml:
        toml.write("\n[test.known_failures.python]\nsix = \"ModuleNotFoundError\"\n")
    code, out, err = pyrlab(capsys, "build", "-C", str(lab), "pylab")
    assert code == 0, err
    assert ("    KNOWN import six (six) [requirements.txt:1]: ModuleNotFoundError: No module "
            "named 'pkg_resources' (a known failure (pyrlab.toml: "
            "test.known_failures.python.six))") in out
    code, out, _ = pyrlab(capsys, "test", "-C", str(lab), "pylab")
    assert code == 0
    assert out.splitlines()[0].split("): ")[1].startswith("ok, 1 known failure; 1 imports")
    assert "  KNOWN import six (six) [requirements.txt:1]" in out
    engine.broken_imports = {}
    code, out, _ = pyrlab(capsys, "test", "-C", str(lab), "pylab")
    assert code == 0
    assert ("  NOTE import six (six) [requirements.txt:1] (imports now, though pyrlab.toml: "
            "test.known_failures.python.six marks it as known to fail)") in out


def test_each_module_is_imported_alone_so_no_failure_hides_or_causes_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one process, `spoiler` (failing halfway through) would make `victim` fail, `hider`
    would make the broken `hidden` import, and `crasher` would take every result with it."""
    folder = tmp_path / "site"
    folder.mkdir()
    sources = {
        "shared.py": "state = 'fresh'\n",
        "spoiler.py": "import shared\nshared.state = 'spoilt'\nraise RuntimeError('spoiler')\n",
        "victim.py": "import shared\nassert shared.state == 'fresh', shared.state\n",
        "hider.py": "import sys, types\nsys.modules['hidden'] = types.ModuleType('hidden')\n",
        "hidden.py": "raise ImportError('hidden is broken')\n",
        # As the kernel's OOM killer would (a SIGSEGV would do, but pytest's faulthandler,
        # which the child inherits, would print this process's stack).
        "crasher.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "sleeper.py": "import time\ntime.sleep(60)\n",
        "chatty.py": "print('not JSON')\n",
    }
    for name, text in sources.items():
        (folder / name).write_text(text)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(container_selftest, "MODULE_TIMEOUT", 2)
    modules = ["spoiler", "victim", "hider", "hidden", "crasher", "sleeper", "chatty"]
    results = container_selftest.import_each(modules)
    errors = {m: r[1] for m, r in zip(modules, results, strict=True)}
    assert errors == {
        "spoiler": "RuntimeError: spoiler", "victim": "", "hider": "",
        "hidden": "ImportError: hidden is broken",
        "crasher": "the import killed its process (SIGKILL)",
        "sleeper": "no answer within 2 s", "chatty": ""}
    assert results[3][2] == ["ImportError", "Exception"]
    for name in ("shared", "spoiler", "victim", "hider", "hidden"):
        assert name not in sys.modules  # this process imported none of them


def test_the_report_counts_and_names_each_ecosystem_s_checks_by_its_own_words() -> None:
    from pyrlab.commands.test import render_test
    from pyrlab.gate import ImageTest

    checks = (Check("python", "mlflow", "mlflow", 1.5),
              Check("python", "ghost", "", 0.0, "not installed", "requirements.txt:2"),
              Check("python", "six", "six", 0.2), Check("r", "sf", "library(sf)", 2.5),
              Check("r", "terra", "library(terra)", 0.1, "no terra", "r.txt:2"),
              Check("kernel", "python3", "6*7", 0.9), Check("lab", "jupyterlab", "/api/status", 3.0))
    test = ImageTest("pylab", "a" * 64, checks, 9.0)
    assert render_test(test) == [
        "pylab (aaaaaaaaaaaa): FAILED (2 of 7); 3 imports, 2 R packages, 1 kernels in 9.0s",
        "  FAIL import ghost [requirements.txt:2]: not installed",
        "  FAIL library terra [r.txt:2]: no terra",
        "  imported: mlflow, six",
        "  attached: sf",
        "  ran 6*7 in: python3",
        "  lab: /api/status 3.0s",
        "  slowest: library(sf) 2.5s, mlflow 1.5s, python3 0.9s"]
    # Only R's failure is one a mark could accept: a distribution not installed is not.
    assert test.accept_hint().splitlines()[1:] == [
        "    [test.known_failures.r]", '    terra = "no terra"']
