"""Self-tests of built images: does everything the lists ask for load, does every kernel run?

For each image, in throwaway containers removed by ID afterwards:
- a container with no network, as a non-root UID, without the user's home: every Python
  distribution of the image's lists (and its ancestors') is imported under the names its
  metadata gives (see container/selftest.py; IMPORT_OVERRIDES for the odd ones), and every
  listed R package is attached with library(); the two run side by side.
- an image with JupyterLab is also started as `up` starts it, without the home and
  notebooks mounts, on a free 127.0.0.1 port; once /api/status answers, a line of code runs
  in every kernel its /api/kernelspecs lists. The kernels are driven with jupyter_client
  inside the container (`exec`): it ships with every kernel, while the REST API would need a
  websocket client on the host that pyrlab does not otherwise depend on.

A delta build (only lines added) is gated by a `Scope`: just the distributions and
packages its manifest shows new or changed, plus one kernel started in the no-network
container. Every failure is collected and reported together; nothing stops at the first.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement

from pyrlab import proc
from pyrlab.config.project import Project
from pyrlab.engines.base import Engine, RunRequest, short_id
from pyrlab.errors import EngineError, NotBuiltError, RunError
from pyrlab.imagebuild.planner import LABEL_LISTS
from pyrlab.inventory.images import ImageSpec, image_inventory
from pyrlab.inventory.model import Inventory, ManifestError, normalize_python_name
from pyrlab.run.plan import HOME, WORK, connect_host, plan_lab
from pyrlab.run.ready import NotReady, wait_ready
from pyrlab.run.safety import harmless_args

CheckKind = Literal["python", "r", "kernel", "lab"]

# Distributions whose import names the metadata does not tell right. () = nothing to import.
IMPORT_OVERRIDES: dict[str, tuple[str, ...]] = {
    "jupyter": (),  # a meta-package
    "pywinpty": (),  # Windows only
    "jupyterlab-widgets": ("jupyterlab_widgets",),  # lists only its labextension folder
    # Also ships adbc_driver_duckdb, which needs the optional adbc-driver-manager.
    "duckdb": ("duckdb",),
}
PYTHON = "/opt/venv/bin/python"
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

    @property
    def ok(self) -> bool:
        return not self.error

    def describe(self) -> str:
        label = {"python": "import", "r": "library", "kernel": "kernel", "lab": ""}[self.kind]
        target = {"python": f"{self.what} ({self.name})" if self.what else self.name,
                  "r": self.name, "kernel": self.name, "lab": self.name}[self.kind]
        at = f" [{self.where}]" if self.where else ""
        return f"{label} {target}{at}".strip()


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

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line per failure, for a build's error."""
        return "; ".join(f"{c.describe()}: {c.error}" for c in self.failures)

    def to_data(self) -> dict[str, Any]:
        return {"image": self.image, "id": self.image_id, "ok": self.ok,
                "seconds": round(self.seconds, 2),
                "checks": [dataclasses.asdict(c) | {"ok": c.ok} for c in self.checks]}


def _container_script() -> str:
    return resources.files("pyrlab.container").joinpath("selftest.py").read_text()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def python_wanted(project: Project, name: str, inventory: Inventory | None,
                  ) -> dict[str, str]:
    """Distribution → FILE:LINE for every Python entry of the image's lists and its
    ancestors'. A bare URL entry is matched to the distribution the manifest says it
    installed from that URL."""
    by_url = {d.url: d.name for d in inventory.python if d.url} if inventory else {}
    wanted: dict[str, str] = {}
    for image in project.order([name]):
        for entry in project.lists[image].requirements:
            dist = by_url.get(entry.name, entry.name) if "://" in entry.name else entry.name
            wanted.setdefault(normalize_python_name(dist), entry.where)
    return wanted


def r_wanted(project: Project, name: str) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for image in project.order([name]):
        for entry in project.lists[image].r_packages:
            wanted.setdefault(entry.name, entry.where)
    return wanted


def changed_packages(old: Inventory, new: Inventory) -> tuple[frozenset[str], frozenset[str]]:
    """Python distributions and R packages new or different in `new`."""
    before_py = {d.name: d for d in old.python}
    before_r = {p.name: p for p in old.r}
    return (frozenset(d.name for d in new.python if before_py.get(d.name) != d),
            frozenset(p.name for p in new.r if before_r.get(p.name) != p))


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
             started: float | None = None) -> ImageTest:
        """`container`: a quiet container of the image already started (start_quiet), which
        the test then owns and removes; `started`: when the test began, if before this."""
        if container is not None:
            try:
                return self._test(name, image_id, scope, inventory, container, started)
            finally:
                self.engine.remove_container(container)
        return self._test(name, image_id, scope, inventory, None, started)

    def needs_container(self, name: str) -> bool:
        """Whether testing the image may need a container: anything listed, or a lab port
        (known from the project alone, before its manifest is read)."""
        return bool(python_wanted(self.project, name, None) or r_wanted(self.project, name)
                    or self.config.images[name].lab_port is not None)

    def _test(self, name: str, image_id: str, scope: Scope, inventory: Inventory | None,
              container: str | None, started: float | None) -> ImageTest:
        started = time.monotonic() if started is None else started
        config = self.config
        if inventory is None:
            try:
                inventory = image_inventory(self.engine, ImageSpec(name, image_id))
            except (EngineError, NotBuiltError, ManifestError):
                inventory = None  # built before manifests: its lists are tested all the same
        python = python_wanted(self.project, name, inventory)
        r = r_wanted(self.project, name)
        if scope.python is not None:
            python = {k: v for k, v in python.items() if k in scope.python}
        if scope.r is not None:
            r = {k: v for k, v in r.items() if k in scope.r}
        has_lab = has_jupyterlab(config.images[name].lab_port, inventory)
        checks: list[Check] = []
        if not (python or r or has_lab):
            return ImageTest(name, image_id, (), time.monotonic() - started)
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
        return ImageTest(name, image_id, tuple(checks), time.monotonic() - started)

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

    def _imports(self, container: str, wanted: dict[str, str]) -> list[Check]:
        data = [[dist, list(IMPORT_OVERRIDES[dist]) if dist in IMPORT_OVERRIDES else None]
                for dist in sorted(wanted)]
        rows = self._python(container, "imports", data)
        if isinstance(rows, str):  # the interpreter died (a crash in an extension module…)
            return [Check("python", dist, "", 0.0, rows, wanted[dist]) for dist in wanted]
        return [Check("python", str(dist), str(module), float(seconds), str(error),
                      wanted.get(str(dist), "")) for dist, module, seconds, error in rows]

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
        return checks

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
    After a delta build (`delta_on`: the image it was built on), only the distributions and
    packages its manifest shows new or changed are tested, plus one kernel start: seconds,
    not a full test. An unreadable manifest makes it a full test."""
    tester = SelfTester(project, engine)

    def inventory(name: str, image_id: str) -> Inventory | None:
        try:
            return image_inventory(engine, ImageSpec(name, image_id))
        except (EngineError, NotBuiltError, ManifestError):
            return None

    def gate(name: str, image_id: str, delta_on: str | None) -> ImageTest:
        # The test container starts while the manifests are read: the two take engine
        # round trips that do not depend on each other.
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="pyrlab-gate") as pool:
            quiet = (pool.submit(tester.start_quiet, name, image_id)
                     if tester.needs_container(name) else None)
            new_read = pool.submit(inventory, name, image_id)
            old_read = pool.submit(inventory, name, delta_on) if delta_on else None
            listed = pool.submit(listed_before, engine, delta_on) if delta_on else None
            container = quiet.result() if quiet is not None else None
            try:
                new = new_read.result()
                old = old_read.result() if old_read is not None else None
                before = listed.result() if listed is not None else None
            except BaseException:
                if container is not None:
                    engine.remove_container(container)
                raise
        if new is None:
            return tester.test(name, image_id, container=container, started=started)
        if delta_on is None or old is None:
            return tester.test(name, image_id, inventory=new, container=container,
                               started=started)
        python, r = changed_packages(old, new)
        if before is not None:
            python |= frozenset(n for n in python_wanted(project, name, new)
                                if n not in before)
        return tester.test(name, image_id, Scope(python, r, full_lab=False), inventory=new,
                           container=container, started=started)

    return gate
