"""The self-test gate of built images (host side; container/selftest.py runs inside): does
everything the lists ask for load, does every kernel run?

For each image, in throwaway containers removed by ID afterwards:
- a container with no network, as a non-root UID, without the user's home: every public
  top-level module of every Python distribution of the image's lists (and its ancestors')
  is imported, each in a process of its own (see container/selftest.py), and every listed
  R package is attached with library(); the two run side by side.
- an image with JupyterLab is also started as `up` starts it, without the home and
  notebooks mounts, on a free 127.0.0.1 port; once /api/status answers, a line of code runs
  in every kernel its /api/kernelspecs lists. The kernels are driven with jupyter_client
  inside the container (`exec`): it ships with every kernel, while the REST API would need a
  websocket client on the host that pyrlab does not otherwise depend on.

How a result is judged (`judge_imports`, `judge_libraries`):
- a distribution's primary modules are those named as the distribution is (lower case,
  `-` and `.` as `_`: `mlflow` for mlflow); where none is, all its public top-level modules
  (`yaml` for PyYAML). A primary module that fails blocks the image; another top-level
  module the distribution ships (mlflow 1.27's `pylint_plugins`) only warns.
- [test.known_failures] in pyrlab.toml accepts a module's (or R package's) failure with the
  error it names: reported as known, the image goes through. Any other error still blocks,
  and a marked module that imports again is noted.
- a blocking failure that worked in the image being replaced is re-checked there and
  named a regression.

A delta build (only lines added) is gated by a `Scope`: the listed distributions whose
installed dependencies (transitively) changed, or which changed themselves, the R packages
it changed, plus one kernel started in the no-network container. Every failure is
collected and reported together; nothing stops at the first.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pyrlab import proc
from pyrlab.config.project import Project
from pyrlab.config.tomlread import toml_key
from pyrlab.contents.dependencies import (
    PYTHON,
    DumpError,
    Installed,
    PythonGraph,
    parse_dump,
    requires_command,
)
from pyrlab.contents.images import LABEL_LISTS, ImageSpec, image_inventory
from pyrlab.contents.model import Inventory, ManifestError, normalize_python_name
from pyrlab.engines.base import Engine, RunRequest, short_id
from pyrlab.errors import EngineError, NotBuiltError, RunError
from pyrlab.launch.plan import HOME, WORK, connect_host, plan_lab
from pyrlab.launch.ready import NotReady, wait_ready
from pyrlab.launch.safety import harmless_args

CheckKind = Literal["python", "r", "kernel", "lab"]
# What a check's result means for the image:
# ok; failed, regression (block it); known (a failure pyrlab.toml accepts); warning (a
# failure that does not block: a top-level module other than the distribution's own);
# fixed (marked as known to fail, works now); skipped (its line's marker leaves it out).
Verdict = Literal["ok", "failed", "regression", "known", "warning", "fixed", "skipped"]
BLOCKING = ("failed", "regression")
VERDICT_LABELS: dict[Verdict, str] = {
    "ok": "ok", "failed": "FAIL", "regression": "REGRESSION", "known": "KNOWN",
    "warning": "WARN", "fixed": "NOTE", "skipped": "SKIP"}
RSCRIPT = "Rscript"
# Attaches each package named on the command line; one line per package:
# NAME<TAB>SECONDS<TAB>ERROR (an error's newlines and tabs become spaces).
R_LIBRARY = (
    "for (p in commandArgs(TRUE)) { t <- proc.time()[[3]]; "
    "e <- tryCatch({ suppressPackageStartupMessages(library(p, character.only = TRUE)); '' }, "
    "error = function(e) gsub('[\\t\\r\\n]+', ' ', conditionMessage(e))); "
    "cat(p, '\\t', sprintf('%.3f', proc.time()[[3]] - t), '\\t', e, '\\n', sep = '') }"
)
CHECK_TIMEOUT = 600.0  # seconds for one batch of imports or kernels
LAB_TIMEOUT = 120.0
TEST_LABEL = "org.pyrlab.selftest"


@dataclass(frozen=True)
class Check:
    kind: CheckKind
    name: str  # distribution, R package, kernel, or "jupyterlab"
    what: str  # the module imported, the code run; "" when there was nothing to do
    seconds: float
    error: str = ""  # the exception's last line; "" when it worked
    where: str = ""  # FILE:LINE of the list entry
    verdict: Verdict | None = None  # None: "failed" with an error, else "ok"
    note: str = ""  # why the verdict, where it is not plain ok or failed

    def __post_init__(self) -> None:
        if self.verdict is None:
            object.__setattr__(self, "verdict", "failed" if self.error else "ok")

    @property
    def ok(self) -> bool:
        """Lets the image through (a warning or a known failure does)."""
        return self.verdict not in BLOCKING

    def describe(self) -> str:
        label = {"python": "import", "r": "library", "kernel": "kernel", "lab": ""}[self.kind]
        target = {"python": f"{self.what} ({self.name})" if self.what else self.name,
                  "r": self.name, "kernel": self.name, "lab": self.name}[self.kind]
        at = f" [{self.where}]" if self.where else ""
        return f"{label} {target}{at}".strip()

    def line(self) -> str:
        """The check as the report shows it: `FAIL import x (x) [requirements.txt:2]: …`."""
        assert self.verdict is not None
        return (f"{VERDICT_LABELS[self.verdict]} {self.describe()}"
                + (f": {self.error}" if self.error else "")
                + (f" ({self.note})" if self.note else ""))


@dataclass(frozen=True)
class Scope:
    """What to test: None = everything listed; a set = only these (a delta build)."""

    python: frozenset[str] | None = None
    r: frozenset[str] | None = None
    full_lab: bool = True  # start JupyterLab and run every kernel; else one kernel


@dataclass(frozen=True)
class ImageTest:
    image: str
    image_id: str
    checks: tuple[Check, ...]
    seconds: float
    marks_in: str = "pyrlab.toml"  # the config file that holds known-failure marks

    @property
    def failures(self) -> tuple[Check, ...]:
        """What blocks the image."""
        return tuple(c for c in self.checks if not c.ok)

    def having(self, *verdicts: Verdict) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.verdict in verdicts)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line per failure, for a build's error."""
        return "; ".join(f"{c.describe()}: {c.error}"
                         + (" (a regression)" if c.verdict == "regression" else "")
                         for c in self.failures)

    def accept_hint(self) -> str:
        """What to add to pyrlab.toml to accept the failing imports and libraries as known
        failures (broken upstream), written from their errors; "" when none is such."""
        return accept_hint(self.failures, self.marks_in)

    def to_data(self) -> dict[str, Any]:
        return {"image": self.image, "id": self.image_id, "ok": self.ok,
                "seconds": round(self.seconds, 2),
                "checks": [dataclasses.asdict(c) | {"ok": c.ok} for c in self.checks]}


def import_key(name: str) -> str:
    """A distribution's or module's name as compared for "named as the distribution is":
    lower case, `-` and `.` as `_` (mlflow, jupyterlab-widgets → jupyterlab_widgets)."""
    return name.lower().replace("-", "_").replace(".", "_")


def primary_modules(dist: str, modules: Iterable[str]) -> frozenset[str]:
    """The modules whose failure blocks: the one named as the distribution is; where
    none is, every one (PyYAML ships `yaml`, scikit-learn `sklearn`)."""
    modules = frozenset(modules)
    named = frozenset(m for m in modules if import_key(m) == import_key(dist))
    return named or modules


def mark_matches(expected: str, error: str, types: Sequence[str] = ()) -> bool:
    """A known-failure mark's expected error against an actual one: an exception type of
    it (ImportError matches a ModuleNotFoundError), or a text it contains."""
    return expected in types or expected in error


def expected_text(check: Check) -> str:
    """What a mark for `check`'s failure would expect: the error without its type."""
    head, sep, rest = check.error.partition(": ")
    if check.kind == "python" and sep and rest.strip() and " " not in head:
        return rest.strip()
    return check.error.strip()


def accept_hint(failures: Iterable[Check], config_name: str = "pyrlab.toml") -> str:
    tables: dict[str, dict[str, str]] = {"python": {}, "r": {}}
    for check in failures:
        if check.kind == "python" and check.what:
            tables["python"].setdefault(check.what, expected_text(check))
        elif check.kind == "r" and check.error:
            tables["r"].setdefault(check.name, expected_text(check))
    lines = []
    for kind, marks in tables.items():
        if marks:
            lines.append(f"[test.known_failures.{kind}]")
            lines += [f"{toml_key(name)} = {json.dumps(text, ensure_ascii=False)}"
                      for name, text in marks.items()]
    if not lines:
        return ""
    return (f"if this is broken upstream and you want the image all the same, accept it "
            f"as a known failure in {config_name}:\n" + "\n".join(f"    {line}" for line in lines))


def judge_imports(rows: Sequence[Sequence[Any]], lines: Mapping[str, ListedLine],
                  marks: Mapping[str, str], marks_in: str = "pyrlab.toml") -> list[Check]:
    """Checks from container/selftest.py's import rows ([dist, module, seconds, error,
    types]): primary modules block, others warn, marks accept what they name."""
    modules: dict[str, list[str]] = {}
    for row in rows:
        if row[1]:
            modules.setdefault(str(row[0]), []).append(str(row[1]))
    primary = {dist: primary_modules(dist, found) for dist, found in modules.items()}
    checks = []
    for row in rows:
        dist, module, seconds, error = str(row[0]), str(row[1]), float(row[2]), str(row[3])
        types = [str(t) for t in row[4]] if len(row) > 4 else []
        line = lines.get(dist, ListedLine(""))
        verdict: Verdict = "failed" if error else "ok"
        note = ""
        mark = marks.get(module) if module else None
        key = f"{marks_in}: test.known_failures.python.{toml_key(module)}"
        if not module and error == "not installed" and line.marker:
            verdict, note = "skipped", f"not installed: its marker ({line.marker}) leaves it out"
        elif error and mark is not None and mark_matches(mark, error, types):
            verdict, note = "known", f"a known failure ({key})"
        elif not error and mark is not None:
            verdict, note = "fixed", f"imports now, though {key} marks it as known to fail"
        elif error and module not in primary.get(dist, frozenset({module})):
            verdict, note = "warning", f"not {dist}'s own module: a warning, not a failure"
        elif error and mark is not None:
            note = f"fails otherwise than {key} expects ({mark!r})"
        checks.append(Check("python", dist, module, seconds, error, line.where, verdict, note))
    return checks


def judge_libraries(checks: Iterable[Check], marks: Mapping[str, str],
                    marks_in: str = "pyrlab.toml") -> list[Check]:
    """R's library() checks with the project's marks applied."""
    judged = []
    for check in checks:
        mark = marks.get(check.name)
        key = f"{marks_in}: test.known_failures.r.{toml_key(check.name)}"
        if mark is None:
            judged.append(check)
        elif check.error and mark_matches(mark, check.error):
            judged.append(dataclasses.replace(check, verdict="known",
                                              note=f"a known failure ({key})"))
        elif check.error:
            judged.append(dataclasses.replace(
                check, note=f"fails otherwise than {key} expects ({mark!r})"))
        else:
            judged.append(dataclasses.replace(
                check, verdict="fixed",
                note=f"attaches now, though {key} marks it as known to fail"))
    return judged


def _container_script() -> str:
    return resources.files("pyrlab.container").joinpath("selftest.py").read_text()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ListedLine:
    where: str  # FILE:LINE
    marker: str = ""  # its environment marker, "" when none
    extras: frozenset[str] = frozenset()


def python_lines(project: Project, name: str, inventory: Inventory | None,
                 ) -> dict[str, ListedLine]:
    """Distribution → its (first) line, for every Python entry of the image's lists and its
    ancestors'. A bare URL entry is matched to the distribution the manifest says it
    installed from that URL."""
    by_url = {d.url: d.name for d in inventory.python if d.url} if inventory else {}
    found: dict[str, ListedLine] = {}
    for image in project.order([name]):
        for entry in project.lists[image].requirements:
            if "://" in entry.name:
                found.setdefault(normalize_python_name(by_url.get(entry.name, entry.name)),
                                 ListedLine(entry.where))
                continue
            try:
                requirement = Requirement(entry.text)
                line = ListedLine(entry.where, str(requirement.marker or ""),
                                  frozenset(requirement.extras))
            except InvalidRequirement:  # a line with pip options or a direct reference
                line = ListedLine(entry.where)
            found.setdefault(normalize_python_name(entry.name), line)
    return found


def python_wanted(project: Project, name: str, inventory: Inventory | None,
                  ) -> dict[str, str]:
    """Distribution → FILE:LINE (see python_lines)."""
    return {dist: line.where for dist, line in python_lines(project, name, inventory).items()}


def r_wanted(project: Project, name: str) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for image in project.order([name]):
        for entry in project.lists[image].r_packages:
            wanted.setdefault(entry.name, entry.where)
    return wanted


def changed_packages(old: Inventory, new: Inventory) -> tuple[frozenset[str], frozenset[str]]:
    """Python distributions and R packages new, different or gone in `new`."""
    before_py = {d.name: d for d in old.python}
    before_r = {p.name: p for p in old.r}
    gone_py = set(before_py) - {d.name for d in new.python}
    gone_r = set(before_r) - {p.name for p in new.r}
    return (frozenset(d.name for d in new.python if before_py.get(d.name) != d) | gone_py,
            frozenset(p.name for p in new.r if before_r.get(p.name) != p) | gone_r)


def retest_after_delta(lines: Mapping[str, ListedLine], moved: frozenset[str],
                       graph: PythonGraph) -> frozenset[str]:
    """The listed distributions a delta may have changed: `moved` themselves (new, of
    another version, or gone), or depending on one of them, directly or not."""
    return frozenset(dist for dist, line in lines.items()
                     if dist in moved or graph.reachable(dist, frozenset(
                         canonicalize_name(e) for e in line.extras)) & moved)


def has_jupyterlab(lab_port: int | None, inventory: Inventory | None) -> bool:
    """A lab port, and a Jupyter server to serve it (a lab port alone may mean a user's own
    start script; an image without an inventory is trusted on its port)."""
    if lab_port is None:
        return False
    return inventory is None or any(d.name == "jupyter-server" for d in inventory.python)


class SelfTester:
    """Runs the checks of one project's images through one engine."""

    def __init__(self, project: Project, engine: Engine) -> None:
        self.project = project
        self.engine = engine
        self.config = project.config

    # ------------------------------------------------------------ one image
    def test(self, name: str, image_id: str, scope: Scope = Scope(),
             inventory: Inventory | None = None, container: str | None = None,
             started: float | None = None, previous: str | None = None) -> ImageTest:
        """`container`: a quiet container of the image already started (start_quiet), which
        the test then owns and removes; `started`: when the test began, if before this;
        `previous`: the image this one replaces, where a blocking failure is re-checked
        (it worked there: a regression)."""
        if container is not None:
            try:
                test = self._test(name, image_id, scope, inventory, container, started)
            finally:
                self.engine.remove_container(container)
        else:
            test = self._test(name, image_id, scope, inventory, None, started)
        if previous is None or previous == image_id or test.ok:
            return test
        return self.name_regressions(test, name, previous)

    def needs_container(self, name: str) -> bool:
        """Whether testing the image may need a container: anything listed, or a lab port
        (known from the project alone, before its manifest is read)."""
        return bool(python_wanted(self.project, name, None) or r_wanted(self.project, name)
                    or self.config.images[name].lab_port is not None)

    @property
    def marks_in(self) -> str:
        """The config file, as a known-failure mark is named in the report."""
        return self.config.file.name if self.config.file is not None else "pyrlab.toml"

    def _test(self, name: str, image_id: str, scope: Scope, inventory: Inventory | None,
              container: str | None, started: float | None) -> ImageTest:
        started = time.monotonic() if started is None else started
        config = self.config
        if inventory is None:
            try:
                inventory = image_inventory(self.engine, ImageSpec(name, image_id))
            except (EngineError, NotBuiltError, ManifestError):
                inventory = None  # built before manifests: its lists are tested all the same
        python = python_lines(self.project, name, inventory)
        r = r_wanted(self.project, name)
        if scope.python is not None:
            python = {k: v for k, v in python.items() if k in scope.python}
        if scope.r is not None:
            r = {k: v for k, v in r.items() if k in scope.r}
        has_lab = has_jupyterlab(config.images[name].lab_port, inventory)
        checks: list[Check] = []
        if not (python or r or has_lab):
            return ImageTest(name, image_id, (), time.monotonic() - started, self.marks_in)
        own = container is None
        if container is None:
            container = self.start_quiet(name, image_id)
        try:
            with ThreadPoolExecutor(max_workers=3, thread_name_prefix="pyrlab-test") as pool:
                jobs = []
                if python:
                    jobs.append(pool.submit(self._imports, container, python))
                if r:
                    jobs.append(pool.submit(self._libraries, container, r))
                if has_lab and scope.full_lab:
                    jobs.append(pool.submit(self._lab, name, image_id))
                elif has_lab:
                    # R's kernel for an R-only change, where the image has one (IRkernel
                    # is a package like any other: an rlab may do without it).
                    has_ir = inventory is not None and any(
                        package.name == "IRkernel" for package in inventory.r)
                    kernel = "ir" if r and not python and has_ir else "python3"
                    jobs.append(pool.submit(self._kernels, container, [kernel]))
                for job in jobs:
                    checks += job.result()
        finally:
            if own:
                self.engine.remove_container(container)
        return ImageTest(name, image_id, tuple(checks), time.monotonic() - started,
                         self.marks_in)

    def name_regressions(self, test: ImageTest, name: str, previous: str) -> ImageTest:
        """`test` with each blocking import or library that works in the image `previous`
        named a regression: one container of it, only the failures checked again."""
        python = {(c.name, c.what) for c in test.failures
                  if c.kind == "python" and c.what and c.verdict == "failed"}
        r = {c.name for c in test.failures if c.kind == "r" and c.verdict == "failed"}
        if not (python or r):
            return test
        try:
            container = self.start_quiet(name, previous)
        except RunError:  # the previous image is gone: nothing to compare with
            return test
        try:
            rows = (self._python(container, "imports", [[d, [m]] for d, m in sorted(python)])
                    if python else [])
            libraries = self._libraries(container, {n: "" for n in r}) if r else []
        finally:
            self.engine.remove_container(container)
        if isinstance(rows, str):  # no answer from the previous image: no comparison
            rows = []
        worked = {("python", str(row[0]), str(row[1])) for row in rows if not row[3]}
        worked |= {("r", c.name, c.what) for c in libraries if not c.error}
        note = f"worked in the image it replaces ({short_id(previous)}): a regression"
        checks = tuple(dataclasses.replace(c, verdict="regression", note=note)
                       if c.verdict == "failed" and (c.kind, c.name, c.what) in worked else c
                       for c in test.checks)
        return dataclasses.replace(test, checks=checks)

    # ------------------------------------------------------------ containers
    def _request(self, name: str, image_id: str) -> RunRequest:
        run = self.config.run
        return RunRequest(
            image=image_id,
            name=f"pyrlab-test-{name}-{secrets.token_hex(4)}",
            user=f"{run.uid}:{run.gid}",
            env={"HOME": "/tmp"},
            labels={TEST_LABEL: name},
            network_none=True,
            cap_drop=("ALL",),
            command=("sleep", "infinity"),
        )

    def start_quiet(self, name: str, image_id: str) -> str:
        """A container with no network that only sleeps: checks `exec` into it."""
        request = self._request(name, image_id)
        try:
            return self.engine.run(request).split()[-1]
        except EngineError as exc:
            raise RunError(f"cannot start a test container of {name} "
                           f"({short_id(image_id)}): {exc.message}") from None

    def _exec(self, container: str, command: list[str]) -> proc.Completed:
        try:
            return self.engine.exec(container, command, timeout=CHECK_TIMEOUT)
        except subprocess.TimeoutExpired:
            return proc.Completed(tuple(command), 124, "",
                                  f"no answer within {CHECK_TIMEOUT:g} s")

    def _python(self, container: str, mode: str, data: object) -> list[list[Any]] | str:
        """The rows container/selftest.py prints, or why there are none."""
        result = self._exec(container, [PYTHON, "-I", "-c", _container_script(), mode,
                                        json.dumps(data)])
        lines = result.stdout.strip().splitlines()
        try:
            rows = json.loads(lines[-1]) if lines else None
        except ValueError:
            rows = None
        if not isinstance(rows, list):
            detail = (result.stderr or result.stdout).strip().splitlines()
            return detail[-1] if detail else f"the check exited with code {result.returncode}"
        return rows

    def _imports(self, container: str, lines: dict[str, ListedLine]) -> list[Check]:
        rows = self._python(container, "imports", [[dist, None] for dist in sorted(lines)])
        if isinstance(rows, str):  # the interpreter died before it could answer
            return [Check("python", dist, "", 0.0, rows, lines[dist].where) for dist in lines]
        return judge_imports(rows, lines, dict(self.config.test.known_failures_python),
                             self.marks_in)

    def dependency_graph(self, container: str) -> PythonGraph | None:
        """The installed distributions' Requires-Dist in the image's marker environment, as
        container/requires.py (`pyrlab why`'s script) reports them; None when it cannot
        tell."""
        result = self._exec(container, list(requires_command()))
        try:
            return PythonGraph(parse_dump(result.stdout)) if result.ok else None
        except DumpError:
            return None

    def _kernels(self, container: str, names: list[str]) -> list[Check]:
        rows = self._python(container, "kernels", names)
        if isinstance(rows, str):
            return [Check("kernel", k, "6*7", 0.0, rows) for k in names]
        return [Check("kernel", str(k), str(code), float(s), str(e)) for k, code, s, e in rows]

    def _libraries(self, container: str, wanted: dict[str, str]) -> list[Check]:
        names = sorted(wanted)
        result = self._exec(container, [RSCRIPT, "-e", R_LIBRARY, *names])
        checks = []
        seen = set()
        for line in result.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] in wanted:
                seen.add(parts[0])
                checks.append(Check("r", parts[0], f"library({parts[0]})", float(parts[1]),
                                    parts[2].strip(), wanted[parts[0]]))
        if len(seen) < len(names):
            detail = (result.stderr or result.stdout).strip().splitlines()
            why = detail[-1] if detail else f"Rscript exited with code {result.returncode}"
            checks += [Check("r", n, f"library({n})", 0.0, why, wanted[n])
                       for n in names if n not in seen]
        return judge_libraries(checks, dict(self.config.test.known_failures_r), self.marks_in)

    def _lab(self, name: str, image_id: str) -> list[Check]:
        """Start JupyterLab as `up` does, without the home and notebooks mounts, wait for
        /api/status, then run a line in every kernel it offers."""
        started = time.monotonic()
        token = secrets.token_hex(16)
        port = free_port()
        plan = plan_lab(self.config, name, port=port, token=token,
                        unpublished=[p for p, _ in self.config.images[name].ports])
        kept = tuple(m for m in plan.request.mounts if m.target not in (HOME, WORK))
        # Nobody passed --allow-unsafe to the self-test: only harmless run arguments.
        request = dataclasses.replace(
            plan.request, image=image_id, name=f"pyrlab-test-{name}-{secrets.token_hex(4)}",
            mounts=kept, labels={TEST_LABEL: name}, extra_args=harmless_args(plan),
            ports=tuple(p for p in plan.request.ports if p.container_port == port),
            health_interval=None)
        try:
            container = self.engine.run(request).split()[-1]
        except EngineError as exc:
            return [Check("lab", "jupyterlab", "start", 0.0, exc.message)]
        try:
            base = f"http://{connect_host(self.config.run.bind)}:{port}"
            try:
                wait_ready(f"{base}/api/status", token, timeout=LAB_TIMEOUT, label=name,
                           stopped=lambda: self._stopped(container))
            except NotReady as exc:
                tail = self.engine.logs(container, tail=5).strip().splitlines()
                return [Check("lab", "jupyterlab", "/api/status",
                              time.monotonic() - started,
                              exc.reason + (f" ({tail[-1]})" if tail else ""))]
            checks = [Check("lab", "jupyterlab", "/api/status", time.monotonic() - started)]
            kernels = self._kernelspecs(f"{base}/api/kernelspecs", token)
            if isinstance(kernels, str):
                return [*checks, Check("lab", "jupyterlab", "/api/kernelspecs", 0.0, kernels)]
            if not kernels:
                return [*checks, Check("lab", "jupyterlab", "/api/kernelspecs", 0.0,
                                       "JupyterLab offers no kernel")]
            return checks + self._kernels(container, kernels)
        finally:
            self.engine.remove_container(container)

    def _stopped(self, container: str) -> str | None:
        data = self.engine.inspect_container(container)
        if data is None:
            return "the container disappeared"
        state = data.get("State") or {}
        if state.get("Running"):
            return None
        return f"the container exited with code {state.get('ExitCode')}"

    @staticmethod
    def _kernelspecs(url: str, token: str) -> list[str] | str:
        request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"cannot read {url}: {exc}"
        return sorted((data.get("kernelspecs") or {}).keys())



def listed_before(engine: Engine, old_id: str) -> frozenset[str] | None:
    """The Python distributions the image `old_id` was built from (its lists label): an
    added line naming something already installed as a dependency changes no version, and
    is tested all the same. None when the label cannot be read."""
    info = engine.image(old_id)
    try:
        lines = json.loads(info.labels.get(LABEL_LISTS, "{}")) if info else {}
        before = lines.get("python", {}).get("lines", [])
    except (ValueError, AttributeError):
        return None
    listed = set()
    for line in before:
        text = str(line).split(":", 1)[-1]
        try:
            listed.add(normalize_python_name(Requirement(text).name))
        except InvalidRequirement:
            listed.add(text)  # a bare URL: its own name, as in the lists
    return frozenset(listed)


def build_gate(project: Project, engine: Engine,
               ) -> Callable[[str, str, str | None], ImageTest]:
    """The self-test a build runs on each image it made, before the image's tags move.
    After a delta build (`delta_on`: the image it was built on), only what the delta may
    have changed is tested (retest_after_delta), plus one kernel start: seconds, not a
    full test. An unreadable manifest makes it a full test. A blocking failure is checked
    again in the image being replaced (`latest` until the tags move, or `delta_on`): where
    it worked there, it is named a regression."""
    tester = SelfTester(project, engine)

    def inventory(name: str, image_id: str) -> Inventory | None:
        try:
            return image_inventory(engine, ImageSpec(name, image_id))
        except (EngineError, NotBuiltError, ManifestError):
            return None

    def latest(name: str) -> str | None:
        info = engine.image(project.config.image_ref(name))
        return info.id if info is not None else None

    def gate(name: str, image_id: str, delta_on: str | None) -> ImageTest:
        # The test container starts while the manifests are read: the two take engine
        # round trips that do not depend on each other.
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pyrlab-gate") as pool:
            quiet = (pool.submit(tester.start_quiet, name, image_id)
                     if tester.needs_container(name) else None)
            new_read = pool.submit(inventory, name, image_id)
            old_read = pool.submit(inventory, name, delta_on) if delta_on else None
            listed = pool.submit(listed_before, engine, delta_on) if delta_on else None
            replaced = pool.submit(latest, name) if delta_on is None else None
            container = quiet.result() if quiet is not None else None
            try:
                new = new_read.result()
                old = old_read.result() if old_read is not None else None
                before = listed.result() if listed is not None else None
                previous = replaced.result() if replaced is not None else delta_on
            except BaseException:
                if container is not None:
                    engine.remove_container(container)
                raise
        if new is None or delta_on is None or old is None or container is None:
            return tester.test(name, image_id, inventory=new, container=container,
                               started=started, previous=previous)
        moved, r = changed_packages(old, new)
        lines = python_lines(project, name, new)
        try:
            graph = (tester.dependency_graph(container) if lines
                     else PythonGraph(Installed.of({}, [])))
        except BaseException:
            engine.remove_container(container)
            raise
        # Without the dependency graph, every listed distribution is tested again.
        python = (frozenset(lines) if graph is None
                  else retest_after_delta(lines, moved, graph))
        if before is not None:
            python |= frozenset(n for n in lines if n not in before)
        return tester.test(name, image_id, Scope(python, r, full_lab=False), inventory=new,
                           container=container, started=started, previous=previous)

    return gate
