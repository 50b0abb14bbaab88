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

What is checked, and how a result is judged, is each ecosystem's (its Checks part; the
gate runs every registered ecosystem's checks side by side):
- Python (ecosystems/python.py): a distribution's primary modules are those named as the
  distribution is (lower case, `-` and `.` as `_`: `mlflow` for mlflow); where none is,
  all its public top-level modules (`yaml` for PyYAML). A primary module that fails blocks
  the image; another top-level module the distribution ships (mlflow 1.27's
  `pylint_plugins`) only warns.
- [test.known_failures] in pyrlab.toml accepts a module's (or R package's) failure with the
  error it names: reported as known, the image goes through. Any other error still blocks,
  and a marked module that imports again is noted.
- a blocking failure that worked in the image being replaced is re-checked there and
  named a regression.

A delta build (only lines added) is gated by a `Scope`: the listed packages it changed,
or (an ecosystem with a dependency-graph retest: Python) whose installed dependencies
(transitively) changed, plus one kernel started in the no-network container. Every failure is
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
from typing import Any

from pyrlab import ecosystems, proc
from pyrlab.config.model import Mark
from pyrlab.config.project import Project
from pyrlab.config.tomlread import toml_key
from pyrlab.contents.dependencies import (
    PYTHON,
    DumpError,
    PythonGraph,
    parse_dump,
    requires_command,
)
from pyrlab.contents.images import LABEL_LISTS, ImageSpec, image_inventory
from pyrlab.contents.model import Inventory, ManifestError
from pyrlab.ecosystems.base import Ecosystem, Entry, Finding, Listed, Package, Verdict, json_rows
from pyrlab.engines.base import Engine, RunRequest, short_id
from pyrlab.errors import EngineError, NotBuiltError, RunError
from pyrlab.launch.plan import HOME, WORK, connect_host, plan_lab
from pyrlab.launch.ready import NotReady, wait_ready
from pyrlab.launch.safety import harmless_args
from pyrlab.platforms import NATIVE, Platform, is_native

# A check's kind: an ecosystem's name ("python", "r"), "kernel" or "lab". Its verdict: see
# ecosystems/base.py Verdict.
BLOCKING = ("failed", "regression")
VERDICT_LABELS: dict[Verdict, str] = {
    "ok": "ok", "failed": "FAIL", "regression": "REGRESSION", "known": "KNOWN",
    "warning": "WARN", "fixed": "NOTE", "skipped": "SKIP"}
CHECK_TIMEOUT = 600.0  # seconds for one batch of imports or kernels
LAB_TIMEOUT = 120.0
# Under emulation (another platform's image, through qemu-user) Python imports and a
# server start take several times as long: the same checks get longer.
EMULATED_CHECK_TIMEOUT = 1800.0
EMULATED_LAB_TIMEOUT = 600.0
TEST_LABEL = "org.pyrlab.selftest"


@dataclass(frozen=True)
class Check:
    kind: str  # an ecosystem's name, "kernel" or "lab"
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

    @classmethod
    def of(cls, eco: Ecosystem, finding: Finding) -> Check:
        return cls(eco.name, finding.name, finding.what, finding.seconds, finding.error,
                   finding.where, finding.verdict, finding.note)

    def describe(self) -> str:
        if self.kind in ("kernel", "lab"):
            label, target = ("kernel" if self.kind == "kernel" else ""), self.name
        else:
            checks = ecosystems.named(self.kind).checks
            label, target = checks.label, checks.target(self.name, self.what)
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
    """What to test: None = everything listed; else, by ecosystem name, only these
    packages (a delta build; an ecosystem left out is tested in full)."""

    only: Mapping[str, frozenset[str]] | None = None
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


def accept_hint(failures: Iterable[Check], config_name: str = "pyrlab.toml") -> str:
    """TOML for the marks that would accept these failures, one table per ecosystem."""
    tables: dict[str, dict[str, str]] = {}
    for eco in ecosystems.registered():
        table = marks_table(eco)
        if table is None:
            continue
        marks = tables.setdefault(table, {})
        for check in failures:
            if check.kind == eco.name:
                mark = eco.checks.accepts(Finding(check.name, check.what, check.seconds,
                                                  check.error))
                if mark is not None:
                    marks.setdefault(*mark)
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


MARKS = "test.known_failures."


def marks_table(eco: Ecosystem) -> str | None:
    """Its table of accepted failures, test.known_failures.<table>: the one it owns (its
    Grammar.keys), None where it owns none."""
    return next((key.removeprefix(MARKS) for key in eco.grammar.keys
                 if key.startswith(MARKS)), None)


def marks_of(project: Project, eco: Ecosystem, platform: Platform) -> dict[str, str]:
    """The project's known failures of one ecosystem that hold on `platform` (a concrete
    one): name -> the expected error."""
    table = marks_table(eco)
    if table is None:
        return {}
    marks: tuple[Mark, ...] = getattr(project.config.test, f"known_failures_{table}", ())
    return {mark.name: mark.expected for mark in marks if mark.holds_on(platform)}


def mark_key(eco: Ecosystem, marks_in: str) -> Callable[[str], str]:
    """How a note names a mark: "pyrlab.toml: test.known_failures.python.NAME"."""
    return lambda name: f"{marks_in}: {MARKS}{marks_table(eco)}.{toml_key(name)}"


def held(inventory: Inventory, eco: Ecosystem) -> tuple[Package, ...]:
    """An image's packages of one ecosystem."""
    return inventory.packages(eco.name)


def _entries(project: Project, name: str, eco: Ecosystem) -> list[Entry]:
    """The list entries of an image and its ancestors, root first."""
    return [entry for image in project.order([name])
            for entry in project.lists[image].of(eco.name)]


def checked(project: Project, name: str, inventory: Inventory | None,
            ) -> list[tuple[Ecosystem, dict[str, Listed]]]:
    """What the self-test checks in an image, by ecosystem: package -> its (first) line in
    the lists of the image and its ancestors (see each ecosystem's `Checks.wanted`)."""
    found: list[tuple[Ecosystem, dict[str, Listed]]] = []
    for eco in ecosystems.registered():
        if eco.checks.wanted is not None:
            packages = held(inventory, eco) if inventory is not None else ()
            found.append((eco, eco.checks.wanted(_entries(project, name, eco), packages)))
    return found


def changed_packages(old: Inventory, new: Inventory) -> dict[str, frozenset[str]]:
    """By ecosystem name (those with checks): its packages new, different or gone in `new`."""
    changed: dict[str, frozenset[str]] = {}
    for eco in ecosystems.registered():
        if eco.checks.wanted is None:
            continue
        before = {p.name: p for p in held(old, eco)}
        after = held(new, eco)
        gone = set(before) - {p.name for p in after}
        changed[eco.name] = frozenset(p.name for p in after if before.get(p.name) != p) | gone
    return changed


def _container_script() -> str:
    return resources.files("pyrlab.container").joinpath("selftest.py").read_text()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def has_jupyterlab(lab_port: int | None, inventory: Inventory | None) -> bool:
    """A lab port, and a Jupyter server to serve it (a lab port alone may mean a user's own
    start script; an image without an inventory is trusted on its port)."""
    if lab_port is None:
        return False
    return inventory is None or any(d.name == "jupyter-server" for d in inventory.packages("python"))


class SelfTester:
    """Runs the checks of one project's images through one engine."""

    def __init__(self, project: Project, engine: Engine, platform: Platform = NATIVE,
                 host: Platform = NATIVE) -> None:
        """`platform`: the images' (NATIVE, or the engine's own `host`: tested as before;
        another's run under emulation, with longer timeouts, judged by its marks)."""
        self.project = project
        self.engine = engine
        self.config = project.config
        self.foreign = not is_native(platform, host)
        self.platform = platform if self.foreign else NATIVE
        self.host = host
        self.check_timeout = EMULATED_CHECK_TIMEOUT if self.foreign else CHECK_TIMEOUT
        self.lab_timeout = EMULATED_LAB_TIMEOUT if self.foreign else LAB_TIMEOUT

    def judged_on(self) -> Platform:
        """The platform whose known failures hold: the images' (concrete)."""
        return self.platform or self.engine.platform()

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
        return bool(any(lines for _, lines in checked(self.project, name, None))
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
        wanted = checked(self.project, name, inventory)
        if scope.only is not None:
            only = scope.only
            wanted = [(eco, {k: v for k, v in lines.items() if k in only[eco.name]}
                       if eco.name in only else lines) for eco, lines in wanted]
        wanted = [(eco, lines) for eco, lines in wanted if lines]
        has_lab = has_jupyterlab(config.images[name].lab_port, inventory)
        checks: list[Check] = []
        if not (wanted or has_lab):
            return ImageTest(name, image_id, (), time.monotonic() - started, self.marks_in)
        own = container is None
        if container is None:
            container = self.start_quiet(name, image_id)
        try:
            with ThreadPoolExecutor(max_workers=len(wanted) + 1,
                                    thread_name_prefix="pyrlab-test") as pool:
                jobs = [pool.submit(self._check, container, eco, lines,
                                    [(package, "") for package in sorted(lines)])
                        for eco, lines in wanted]
                if has_lab and scope.full_lab:
                    jobs.append(pool.submit(self._lab, name, image_id))
                elif has_lab:
                    kernel = self._delta_kernel(wanted, inventory)
                    jobs.append(pool.submit(self._kernels, container, [kernel]))
                for job in jobs:
                    checks += job.result()
        finally:
            if own:
                self.engine.remove_container(container)
        return ImageTest(name, image_id, tuple(checks), time.monotonic() - started,
                         self.marks_in)

    @staticmethod
    def _delta_kernel(wanted: Sequence[tuple[Ecosystem, object]],
                      inventory: Inventory | None) -> str:
        """The kernel a delta starts: an ecosystem's own (R's "ir") when the delta changed
        only that ecosystem and the image holds its kernel's package (IRkernel is a package
        like any other: an rlab may do without it); else Python's."""
        if len(wanted) == 1 and inventory is not None:
            eco = wanted[0][0]
            if eco.checks.kernel is not None:
                package, kernel = eco.checks.kernel
                if any(p.name == package for p in held(inventory, eco)):
                    return kernel
        return "python3"

    def name_regressions(self, test: ImageTest, name: str, previous: str) -> ImageTest:
        """`test` with each blocking check that works in the image `previous` named a
        regression: one container of it, only the failures checked again."""
        failed = [(eco, sorted({(c.name, c.what) for c in test.failures
                                if c.kind == eco.name and c.what and c.verdict == "failed"}))
                  for eco in ecosystems.registered() if eco.checks.command is not None]
        failed = [(eco, pairs) for eco, pairs in failed if pairs]
        if not failed:
            return test
        try:
            container = self.start_quiet(name, previous)
        except RunError:  # the previous image is gone: nothing to compare with
            return test
        try:
            again = [self._check(container, eco, {n: Listed("") for n, _ in pairs}, pairs,
                                 judged=False)
                     for eco, pairs in failed]
        finally:
            self.engine.remove_container(container)
        # No answer from the previous image (every check failed there): no comparison.
        worked = {(c.kind, c.name, c.what) for checks in again for c in checks if not c.error}
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
            platform=self.platform,
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
            return self.engine.exec(container, command, timeout=self.check_timeout)
        except subprocess.TimeoutExpired:
            return proc.Completed(tuple(command), 124, "",
                                  f"no answer within {self.check_timeout:g} s")

    def _python(self, container: str, mode: str, data: object) -> list[Any] | str:
        """The rows container/selftest.py prints, or why there are none."""
        return json_rows(self._exec(container, [PYTHON, "-I", "-c", _container_script(),
                                                mode, json.dumps(data)]))

    def _check(self, container: str, eco: Ecosystem, wanted: Mapping[str, Listed],
               pairs: list[tuple[str, str]], judged: bool = True) -> list[Check]:
        """One ecosystem's checks of `pairs` (package, what: "" for all of it), judged
        with the project's marks (or, `judged=False`, without them)."""
        command, judge = eco.checks.command, eco.checks.judge
        assert command is not None and judge is not None
        answer = self._exec(container, command(pairs))
        marks = marks_of(self.project, eco, self.judged_on()) if judged else {}
        return [Check.of(eco, finding) for finding in
                judge(answer, wanted, marks, mark_key(eco, self.marks_in))]

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

    def _lab(self, name: str, image_id: str) -> list[Check]:
        """Start JupyterLab as `up` does, without the home and notebooks mounts, wait for
        /api/status, then run a line in every kernel it offers."""
        started = time.monotonic()
        token = secrets.token_hex(16)
        port = free_port()
        plan = plan_lab(self.config, name, port=port, token=token,
                        unpublished=[p for p, _ in self.config.images[name].ports],
                        platform=self.platform, host=self.host)
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
                wait_ready(f"{base}/api/status", token, timeout=self.lab_timeout, label=name,
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



def listed_before(engine: Engine, old_id: str) -> dict[str, frozenset[str]] | None:
    """By ecosystem name (those that retest by dependency graph): the packages the image
    `old_id` was built from (its lists label). An added line naming something already
    installed as a dependency changes no version, and is tested all the same. None when the
    label cannot be read."""
    info = engine.image(old_id)
    listed: dict[str, frozenset[str]] = {}
    try:
        label = json.loads(info.labels.get(LABEL_LISTS, "{}")) if info else {}
        for eco in ecosystems.registered():
            if eco.checks.retest is not None:
                lines = label.get(eco.step, {}).get("lines", [])
                listed[eco.name] = frozenset(eco.checks.retest.listed_name(
                    str(line).split(":", 1)[-1]) for line in lines)
    except (ValueError, AttributeError):
        return None
    return listed


def build_gate(project: Project, engine: Engine, platform: Platform = NATIVE,
               host: Platform = NATIVE) -> Callable[[str, str, str | None], ImageTest]:
    """The self-test a build runs on each image it made, before the image's tags move.
    After a delta build (`delta_on`: the image it was built on), only what the delta may
    have changed is tested (`delta_scope`), plus one kernel start: seconds, not a
    full test. An unreadable manifest makes it a full test. A blocking failure is checked
    again in the image being replaced (`latest` until the tags move, or `delta_on`): where
    it worked there, it is named a regression."""
    tester = SelfTester(project, engine, platform, host)

    def inventory(name: str, image_id: str) -> Inventory | None:
        try:
            return image_inventory(engine, ImageSpec(name, image_id))
        except (EngineError, NotBuiltError, ManifestError):
            return None

    def latest(name: str) -> str | None:
        info = engine.image(project.config.image_ref(name, "latest", platform, host))
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
        try:
            only = delta_scope(tester, container, checked(project, name, new),
                               changed_packages(old, new), before)
        except BaseException:
            engine.remove_container(container)
            raise
        return tester.test(name, image_id, Scope(only, full_lab=False), inventory=new,
                           container=container, started=started, previous=previous)

    return gate


def delta_scope(tester: SelfTester, container: str,
                wanted: Sequence[tuple[Ecosystem, Mapping[str, Listed]]],
                moved: Mapping[str, frozenset[str]],
                before: Mapping[str, frozenset[str]] | None) -> dict[str, frozenset[str]]:
    """What a delta build's gate checks, by ecosystem name: the listed packages it changed;
    for an ecosystem that retests by dependency graph (Python), also those depending on a
    changed one, and those whose line is new (without the graph: all of them)."""
    only: dict[str, frozenset[str]] = {}
    for eco, lines in wanted:
        retest = eco.checks.retest
        if retest is None:
            only[eco.name] = moved.get(eco.name, frozenset())
            continue
        if not lines:
            only[eco.name] = frozenset()
            continue
        graph = tester.dependency_graph(container)
        chosen = (frozenset(lines) if graph is None
                  else retest.affected(lines, moved.get(eco.name, frozenset()), graph.reachable))
        if before is not None:
            chosen |= frozenset(n for n in lines if n not in before.get(eco.name, frozenset()))
        only[eco.name] = chosen
    return only
