"""Building a plan: the base image first, then every image after its parent.

Images whose parents are done build at the same time, up to `jobs` of them. Each build
runs by ID with no tag and its full output goes to a log file; tags move only after it
succeeded. After a failure nothing new starts, the builds already running finish, and the
failure is reported with its step, last lines and log path.

After a successful build, pyrlab.lock gets the inventory of every image built (read from
the manifest its last step wrote); a failed build leaves the lock as it was.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pyrlab import __version__, proc
from pyrlab.baseimage import BootstrapFailed, base_mirror, bootstrap, phases, pull_base
from pyrlab.config.model import Config, ProxyConfig
from pyrlab.config.paths import work_dir
from pyrlab.config.project import Project
from pyrlab.contents.images import (
    LABEL_DELTA_DEPTH,
    LABEL_INPUT_HASH,
    LABEL_INPUTS,
    LABEL_LISTS,
    LABEL_PARENT_ID,
    LABEL_PROJECT,
    ImageSpec,
    image_inventory,
    lock_file,
)
from pyrlab.contents.lockfile import Lock, on_platform, write_lock
from pyrlab.contents.model import Inventory
from pyrlab.credentials import Redactor, is_loopback_url
from pyrlab.dockerfile.context import secret_folder, write_context
from pyrlab.dockerfile.network import build_secrets, secret_id
from pyrlab.dockerfile.render import Delta, RenderOptions, render_context
from pyrlab.ecosystems.base import PinMode
from pyrlab.ecosystems.python import HeldBack, held_back_in
from pyrlab.engines.base import BuildFailure, BuildRequest, Engine, normalize_id, short_id
from pyrlab.errors import BuildError, EngineError, PyrlabError
from pyrlab.imagebuild.hints import timeout_hint
from pyrlab.imagebuild.logs import BuildLog, logs_dir, new_log_path
from pyrlab.imagebuild.pins import differs_from_lock, pins_for, preferring, with_pins
from pyrlab.imagebuild.planner import (
    BaseStatus,
    Decision,
    Plan,
    Planned,
    Target,
    decide,
    encode_lists,
    encode_parts,
)
from pyrlab.imagebuild.progress import Progress
from pyrlab.imagebuild.tagging import promote
from pyrlab.platforms import NATIVE, Platform, is_native, platform_ref, platform_tag, token

if TYPE_CHECKING:  # the self-test is imported by the gate: a no-op build runs none
    from pyrlab.gate import ImageTest

# The self-test gate: (image name, new image ID, the image a delta was built on or None)
# → its test. A delta build is tested for what it changed only (see gate.build_gate).
Gate = Callable[[str, str, str | None], "ImageTest"]
GATE_STEP = "self-test"
LOCK_STEP = "lock check"  # build --locked: the new image against its pyrlab.lock section
PROMOTION_STEP = "promotion"  # an image for several platforms: all its platforms, or none

# "passed": built and through its checks, its tags not moved yet: an image built for
# several platforms is promoted once every platform's has passed (see groups.py).
Action = Literal["built", "passed", "skipped", "failed", "not built"]
# The build argument that tells the inventory step the base image's ID (see Dockerfile.j2).
BASE_ID_ARG = "PYRLAB_BASE_ID"

NO_REGISTRY_HINT = (
    "without a reachable registry, make the base from a Debian mirror instead: "
    "`pyrlab init --base debian` for a new project, or set [base] bootstrap = \"trixie\" "
    "in pyrlab.toml (or run `pyrlab bootstrap --tag IMAGE` for the configured image)"
)


@dataclass(frozen=True)
class Settings:
    no_cache: bool = False
    network_host: bool = False
    jobs: int = 2
    build_args: dict[str, str] = field(default_factory=dict)
    gate: Gate | None = None  # None: images are tagged without a self-test (--no-test)
    # pyrlab.lock's Python versions for the install steps: "prefer" (a plain build),
    # "exact" (--locked), "fresh" (upgrade: resolve everything again); None: as rendered.
    pins: PinMode | None = None
    lock: dict[str, Inventory] = field(default_factory=dict)
    # Called with the base image's ID once it is there, before any image builds (the
    # checks of `build --locked` that need the base); raises to stop the build.
    before_build: Callable[[str], None] | None = None
    cache_from: tuple[str, ...] = ()  # registry images whose layer cache builds may reuse
    # An image that passed is left untagged ("passed"): a build for several platforms
    # promotes all of an image's platforms together, or none (see groups.py).
    defer_promotion: bool = False


@dataclass(frozen=True)
class Outcome:
    name: str
    ref: str
    action: Action
    reason: str
    image_id: str = ""
    tags: tuple[str, ...] = ()
    seconds: float = 0.0
    log: Path | None = None
    failed_step: str = ""
    error: str = ""
    hint: str = ""  # what the user can change, when the failure says (see hints.py)
    test: ImageTest | None = None  # the self-test gate's result, when it ran
    # A fresh resolution's listed packages left behind (or raised), from the build output.
    held_back: tuple[HeldBack, ...] = ()
    platform: Platform = NATIVE  # the image's: NATIVE (the engine's own) or another

    @property
    def shown(self) -> str:
        """Its name as output shows it: the platform after another platform's image."""
        return f"{self.name} ({self.platform})" if self.platform else self.name


@dataclass(frozen=True)
class BaseOutcome:
    ref: str
    action: Literal["used", "bootstrapped", "pulled"]
    image_id: str
    log: Path | None = None
    digest_ref: str = ""  # a registry base's NAME@sha256:… (see registry_base_id)
    platform: Platform = NATIVE  # the base's: NATIVE (the engine's own) or another

    @property
    def recorded(self) -> str:
        """What the inventory and pyrlab.lock record as the base (base-id)."""
        return self.digest_ref or base_id_value(self.image_id)


def _append(log: Path | None, line: str) -> None:
    """A line at the end of a build's log, after the build (promotion happens later)."""
    if log is not None:
        with log.open("a", encoding="utf-8") as file:
            file.write(line + "\n")


def shown(target: Target) -> str:
    """An image as progress and output name it: its platform after another platform's."""
    return f"{target.name} ({target.platform})" if target.platform else target.name


def base_id_value(image_id: str) -> str:
    """The base image's ID as the inventory records it."""
    return f"sha256:{normalize_id(image_id)}"


def registry_base_id(ref: str, repo_digests: list[str]) -> str:
    """A base image from a registry as pyrlab.lock records it: its name with the digest
    the registry gave it (REPOSITORY@sha256:…), which `build --locked` pulls; "" when the
    engine knows no digest of it from that repository (an image only built or loaded
    here: its ID is recorded then)."""
    wanted = _repository(ref)
    for entry in repo_digests:
        name, _, digest = entry.partition("@")
        if digest and _repository(name) == wanted:
            return f"{name}@{digest}"
    return ""


def use_locked_base(engine: Engine, ref: str, digest_ref: str,
                    on_line: Callable[[str], None], platform: Platform = NATIVE) -> str:
    """`build --locked` of a project whose base comes from a registry: the base is the
    image pyrlab.lock names by digest (REPOSITORY@sha256:…), pulled when missing and named
    `ref` here (platform_ref(ref) for another `platform` than the engine's), so that the
    Dockerfiles' FROM starts from it whatever the tag points to in the registry now. A
    multi-platform base's digest names its index, which the engine resolves to one
    platform's image: one of another platform is pulled again. Returns its ID."""
    host = engine.platform()
    want = host if is_native(platform, host) else platform
    info = engine.image(digest_ref)
    if info is None or info.platform not in (NATIVE, want):
        try:
            info = pull_base(engine, digest_ref, on_line,
                             platform=NATIVE if want == host else want)
        except EngineError as exc:
            raise BuildError(f"the base image pyrlab.lock names, {digest_ref}, cannot be "
                             f"pulled{'' if want == host else f' for {want}'}: {exc.message}",
                             hint="`pyrlab build` (without --locked) uses what [base] image "
                             "names now and records its digest") from None
    local = platform_ref(ref, want, host)
    current = engine.image(local)
    if current is None or current.id != info.id:
        engine.tag(digest_ref, local)
    return info.id


def _repository(ref: str) -> str:
    """A reference's repository, as Docker Hub's short names and Podman's long ones agree:
    "python:3.14" and "docker.io/library/python" are both "docker.io/library/python"."""
    name = ref.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.partition(":")[0]
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    return name


@dataclass(frozen=True)
class LockUpdate:
    shown: str  # the lock file, as messages name it
    recorded: tuple[str, ...]  # images whose section was read from the image now
    changed: bool  # whether the lock now says something else than before
    sections: dict[str, Inventory] = field(default_factory=dict)  # the lock as written
    # A build for several platforms: each other platform's sections, (its platform as its
    # plan names it, before, as written); `sections` are the first's.
    others: tuple[tuple[Platform, dict[str, Inventory], dict[str, Inventory]], ...] = ()


@dataclass(frozen=True)
class Built:
    base: BaseOutcome
    outcomes: tuple[Outcome, ...]
    lock: LockUpdate
    # A build for several platforms: the other platforms' bases (`base` is the first's).
    other_bases: tuple[BaseOutcome, ...] = ()


def network_mode(proxy: ProxyConfig, flag: bool) -> tuple[bool, str]:
    """(host networking?, why). A proxy on 127.0.0.1 is only reachable from the host's
    network namespace, so such a config builds with host networking unless it says not to."""
    if flag:
        return True, "--network-host"
    if proxy.network_host is not None:
        return proxy.network_host, "pyrlab.toml proxy.network_host"
    local = [u for u in proxy.urls() if is_loopback_url(u)]
    if local:
        # netloc without any user:password: the reason is printed.
        return True, f"a proxy is on this host ({urlsplit(local[0]).netloc.rsplit('@', 1)[-1]})"
    return False, "default"


class Executor:
    def __init__(self, project: Project, engine: Engine, settings: Settings,
                 progress: Progress) -> None:
        self.project = project
        self.engine = engine
        self.settings = settings
        self.progress = progress
        self.logs = logs_dir(project.root)
        self.build_dirs = work_dir(project.root) / "build"
        self.project_key = project.config.project_id
        self.base_id = ""  # known once the base image is there
        self.base_recorded = ""  # what the lock records of it (BaseOutcome.recorded)
        self.platform: Platform = NATIVE  # the plan's (Plan.platform), once `start` ran
        # [proxy]'s credentials: build secrets, and masked in whatever the engine prints.
        self.secrets = build_secrets(project)
        self.redact = Redactor(project.config.proxy.urls())

    # ------------------------------------------------------------ base image
    def ensure_base(self, status: BaseStatus, platform: Platform = NATIVE) -> BaseOutcome:
        """The base image of `platform`'s images (NATIVE: the engine's own), named
        status.ref (platforms.platform_ref of the configured one)."""
        if status.action == "use":
            assert status.image is not None
            return BaseOutcome(status.ref, "used", status.image.id,
                               digest_ref=self._digest_ref(status.ref), platform=platform)
        if status.action == "bootstrap":
            return self._bootstrap(status.ref, platform)
        return self._pull(status, platform)

    def _step(self, platform: Platform) -> str:
        """The progress line of a platform's base: "base", "base (linux/arm64)"."""
        return f"base ({platform})" if platform else "base"

    def _bootstrap(self, ref: str, platform: Platform) -> BaseOutcome:
        base = self.project.config.base
        assert base.bootstrap is not None
        mirror, _ = base_mirror(base)
        step = self._step(platform)
        log = new_log_path(self.logs, f"bootstrap-{base.bootstrap}"
                           + (f"-{platform.replace('/', '-')}" if platform else ""))
        self.progress.start(step, f"bootstrapping {ref} from Debian {base.bootstrap} ({mirror})"
                            + (" under emulation" if platform else ""))
        try:
            result = bootstrap(self.engine, suite=base.bootstrap, mirror=mirror, ref=base.image,
                               log_path=log, platform=platform,
                               on_line=phases(
                                   lambda text: self.progress.step(step, text),
                                   lambda text: self.progress.status(step, text)))
        except BootstrapFailed as exc:
            self.progress.failed(step, exc.failure, exc.log)
            raise
        self.progress.done(step, f"bootstrapped {result.ref} in {result.seconds:.0f}s "
                           f"({short_id(result.image_id)})")
        return BaseOutcome(result.ref, "bootstrapped", result.image_id, log, platform=platform)

    def _pull(self, status: BaseStatus, platform: Platform) -> BaseOutcome:
        configured = self.project.config.base.image
        step = self._step(platform)
        log_path = new_log_path(self.logs, "pull-base")
        self.progress.start(step, f"pulling {configured}"
                            + (f" for {platform}" if platform else "") + f" ({status.reason})")
        with BuildLog(log_path) as log:
            try:
                if platform:
                    pull_base(self.engine, configured, log.write, platform=platform)
                else:
                    self.engine.pull(status.ref, log.write)
            except EngineError as exc:
                self.progress.done(step, "pull failed")
                raise BuildError(f"the base image {configured} cannot be pulled"
                                 + (f" for {platform}" if platform else "") + ": "
                                 f"{exc.message.removeprefix(f'cannot pull {configured}: ')}",
                                 hint=NO_REGISTRY_HINT) from None
        info = self.engine.image(status.ref)
        if info is None:
            raise BuildError(f"the base image {status.ref} is still missing after pulling it",
                             hint=NO_REGISTRY_HINT)
        self.progress.done(step, f"pulled {status.ref} ({short_id(info.id)})")
        return BaseOutcome(status.ref, "pulled", info.id, log_path,
                           digest_ref=self._digest_ref(status.ref), platform=platform)

    def _digest_ref(self, ref: str) -> str:
        if self.project.config.base.bootstrap:
            return ""  # bootstrapped: the same ID everywhere (see baseimage.py)
        info = self.engine.image(ref)
        # Another platform's base is named REPO/arm64:TAG here; the registry's name is the
        # configured one.
        return (registry_base_id(self.project.config.base.image, list(info.digests))
                if info is not None else "")

    # ------------------------------------------------------------ the graph
    def start(self, plan: Plan) -> BaseOutcome:
        """The plan's base image, and what runs once it is there (Settings.before_build)."""
        self.platform = plan.platform
        base = self.ensure_base(plan.base, plan.platform)
        self.base_id = base.image_id
        self.base_recorded = base.recorded
        if self.settings.before_build is not None and any(
                item.decision.build for item in plan.images):
            self.settings.before_build(base.image_id)
        return base

    def run(self, plan: Plan) -> tuple[BaseOutcome, list[Outcome]]:
        base = self.start(plan)
        outcomes: dict[str, Outcome] = {}
        pending = list(plan.images)
        running: dict[Future[Outcome], str] = {}
        failed = False
        with ThreadPoolExecutor(max_workers=max(1, self.settings.jobs),
                                thread_name_prefix="pyrlab-build") as pool:
            while pending or running:
                for item in list(pending):
                    parent = item.target.parent
                    if parent is not None and parent not in outcomes:
                        continue  # its parent is still building, or waiting
                    parent_done = outcomes[parent] if parent is not None else None
                    if failed or (parent_done is not None and not parent_done.image_id):
                        why = "an earlier build failed" if failed else f"{parent} was not built"
                        outcomes[item.target.name] = Outcome(item.target.name, item.target.ref,
                                                             "not built", why,
                                                             platform=plan.platform)
                        pending.remove(item)
                    elif len(running) < max(1, self.settings.jobs):
                        parent_id = parent_done.image_id if parent_done else base.image_id
                        running[pool.submit(self.one, item, parent_id)] = item.target.name
                        pending.remove(item)
                if not running:
                    if pending:  # cannot happen: parents come first in a plan
                        raise RuntimeError(f"unschedulable: {[i.target.name for i in pending]}")
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    del running[future]
                    outcome = future.result()
                    outcomes[outcome.name] = outcome
                    failed = failed or outcome.action == "failed"
        ordered = [outcomes[item.target.name] for item in plan.images]
        return base, ordered

    def foreign(self, target: Target) -> Platform:
        """The target's platform where it is not the engine's own; NATIVE otherwise (the
        engine is asked only when the target names one)."""
        if not target.platform or is_native(target.platform, self.engine.platform()):
            return NATIVE
        return target.platform

    def cache_from(self, platform: Platform) -> tuple[str, ...]:
        """The registry images a build for `platform` (NATIVE: the engine's own) may take
        layers from. Another platform's build also asks for the tag `pyrlab push` gave
        that platform's image (REF-arm64, platforms.platform_tag), first: its inline cache
        is in that image's config, whatever the builder makes of an index's other entries."""
        if not platform:
            return self.settings.cache_from
        return tuple(dict.fromkeys(ref for source in self.settings.cache_from
                                   for ref in (platform_tag(source, platform), source)))

    def one(self, item: Planned, parent_id: str, prefer: Inventory | None = None) -> Outcome:
        """Build one image on `parent_id` (or keep it, when up to date) and check it.
        `prefer`: with "fresh" pins (`upgrade`), the versions to prefer where the lists
        allow them (the engine's own platform's new image of it; see pins.preferring)."""
        target = item.target
        decision = decide(target, item.current, parent_id, no_cache=self.settings.no_cache,
                          stale=item.stale)
        if not decision.build:
            assert item.current is not None
            return Outcome(target.name, target.ref, "skipped", decision.reason,
                           image_id=item.current.id, tags=target.refs,
                           platform=target.platform)
        self.progress.start(shown(target), f"building ({decision.reason})")
        # A new folder for every build: BuildKit keeps the last copy of a context folder
        # and re-sends only files whose size or mtime changed, and rendered contexts have
        # fixed mtimes, so an edit of the same size in a reused folder would go unseen.
        # (Separate folders also let two builds of one project run at the same time.)
        self.build_dirs.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=self.build_dirs))
        context, depth = target.context, 0
        if decision.delta:
            assert item.current is not None
            depth = int(item.current.labels.get(LABEL_DELTA_DEPTH, "0")) + 1
            foreign = self.foreign(target)
            options = RenderOptions.for_builder(
                self.engine, foreign, self.engine.platform() if foreign else NATIVE)
            context = render_context(self.project, target.name, options,
                                     Delta(decision.delta, depth, target.context.input_hash,
                                           decision.added))
        if self.settings.pins is not None:
            pins = pins_for(self.project, target.name, self.settings.lock, self.settings.pins)
            context = with_pins(context, pins if prefer is None else preferring(pins, prefer))
        try:
            with secret_folder(self.secrets) as secrets:
                return replace(self._build(item, decision, parent_id,
                                           write_context(context, folder), depth, secrets),
                               platform=target.platform)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _build(self, item: Planned, decision: Decision, parent_id: str,
               folder: Path, depth: int, secrets: Path) -> Outcome:
        target = item.target
        started = time.monotonic()
        labels = {
            LABEL_INPUT_HASH: target.context.input_hash,
            LABEL_INPUTS: encode_parts(target.parts),
            LABEL_LISTS: encode_lists(target.context),
            LABEL_DELTA_DEPTH: str(depth),
            LABEL_PARENT_ID: parent_id,
            LABEL_PROJECT: self.project_key,
        }
        platform = self.foreign(target)
        request = BuildRequest(
            context=folder,
            labels=labels,
            build_args={**self.settings.build_args, BASE_ID_ARG: self.base_recorded},
            secrets={secret_id(name): secrets / name for name in self.secrets},
            network_host=self.settings.network_host,
            no_cache=self.settings.no_cache,
            cache_from=self.cache_from(platform),
            platform=platform,
        )
        log_path = new_log_path(self.logs, target.name + (
            f"-{token(target.platform)}" if target.platform else ""))
        parser = self.engine.build_output()
        with BuildLog(log_path) as log:
            log.write(f"# pyrlab {__version__}: building {target.name} on {target.from_ref} "
                      f"({short_id(parent_id)}): {decision.reason}")
            log.write(f"# engine: {self.engine.describe()}")

            running = [""]  # the step that started last
            held: list[HeldBack] = []

            def on_line(line: str) -> None:
                line = self.redact(line)  # a tool may echo a URL it was given
                log.write(line)
                finding = held_back_in(line)
                if finding is not None and finding not in held:
                    held.append(finding)
                title = parser.feed(line)
                if title:
                    running[0] = title
                    self.progress.step(shown(target), title)

            code, image_id = self.engine.build(request, on_line)
            seconds = time.monotonic() - started
            try:
                proc.check_interrupted()
            except proc.Interrupted:
                self._interrupted(image_id, log)
                raise
            if code != 0 or not image_id:
                failure = parser.failure()
                if code == 0:
                    failure.error = failure.error or "the engine reported no image ID"
                if code < 0:  # killed (OOM killer, a user's kill): its output stops short
                    failure.step = failure.step or running[0]
                    failure.error = (f"the engine process ({self.engine.binary}) died with "
                                     f"signal {-code} ({proc.signal_name(-code)})")
                error = failure.error or f"exit code {code}"
                hint = timeout_hint(failure.tail, self.project.config.proxy) or ""
                if hint:
                    log.write(f"# pyrlab: {hint}")
                    failure.error = f"{failure.error}\n  {hint}" if failure.error else hint
                log.write(f"# pyrlab: build failed (exit {code}); no tag was changed")
                self.progress.failed(shown(target), failure, log_path)
                return Outcome(target.name, target.ref, "failed", decision.reason,
                               seconds=seconds, log=log_path, failed_step=failure.step,
                               error=error, hint=hint)
            for finding in held:  # on screen, not only in the log
                self.progress.note(f"{target.name}: {finding.describe()}")
            try:
                outcome = self._accept(item, decision, image_id, log, log_path, started)
                return replace(outcome, held_back=tuple(held))
            except proc.Interrupted:
                self._interrupted(image_id, log)
                raise

    def _interrupted(self, image_id: str, log: BuildLog) -> None:
        """pyrlab was interrupted: no tag moves, and the new image (built, not yet tagged)
        goes. One that got a tag in the meantime (NAME:failed, or promoted) stays."""
        removed = False
        if image_id:
            with proc.uninterruptible():
                info = self.engine.image(image_id)
                if info is not None and not info.tags:
                    removed = self.engine.remove_image(image_id) is None
        signum = proc.interrupted()
        log.write(f"# pyrlab: interrupted ({proc.signal_name(signum) if signum else '?'}); "
                  "no tag was changed"
                  + (f", the untagged {short_id(image_id)} was removed" if removed else ""))

    def _accept(self, item: Planned, decision: Decision, image_id: str, log: BuildLog,
                log_path: Path, started: float) -> Outcome:
        """The new image's checks (--locked's, the self-test), then its tags."""
        target = item.target
        section = self.settings.lock.get(target.name)
        if self.settings.pins == "exact" and section is not None:
            built = image_inventory(self.engine, ImageSpec(target.name, image_id))
            mismatch = differs_from_lock(built, section)
            log.write(f"# pyrlab: {LOCK_STEP}: "
                      + (f"FAILED {mismatch}" if mismatch else "the image holds the lock"))
            if mismatch:
                failure = BuildFailure(LOCK_STEP, [mismatch],
                                       f"{target.name} does not hold what pyrlab.lock says")
                return self._keep_failed(
                    item, decision, image_id, failure, log, log_path,
                    time.monotonic() - started, error=mismatch,
                    hint="`pyrlab build` (without --locked) takes what the sources "
                    "offer now and updates pyrlab.lock")
        test = None
        if self.settings.gate is not None:
            test = self._gate(item, decision, image_id, log)
            if not test.ok:
                return self._failed_test(item, decision, image_id, test, log, log_path,
                                         time.monotonic() - started)
        if self.settings.defer_promotion:
            log.write(f"# pyrlab: built {image_id}; its tags move once every platform's "
                      f"{target.name} has passed")
            self.progress.step(shown(target), "passed; waiting for the other platforms")
            return Outcome(target.name, target.ref, "passed", decision.reason,
                           image_id=image_id, seconds=time.monotonic() - started,
                           log=log_path, test=test)
        try:
            promotion = promote(self.engine, image_id, target.refs, target.previous_ref)
        except PyrlabError as exc:
            log.write(f"# pyrlab: tagging failed: {exc.message}")
            raise
        log.write(f"# pyrlab: built {image_id}, tagged {', '.join(promotion.tags)}"
                  + (f"; previous: {short_id(promotion.previous)}" if promotion.previous
                     else ""))
        seconds = time.monotonic() - started
        tested = f", self-test {test.seconds:.1f}s" if test is not None else ""
        self.progress.done(shown(target), f"built in {seconds:.0f}s{tested} "
                           f"({short_id(image_id)}) → {', '.join(target.refs)}")
        return Outcome(target.name, target.ref, "built", decision.reason, image_id=image_id,
                       tags=target.refs, seconds=seconds, log=log_path, test=test)

    def promote(self, item: Planned, passed: Outcome) -> Outcome:
        """Move the tags of an image that passed (Settings.defer_promotion) to it."""
        target = item.target
        promotion = promote(self.engine, passed.image_id, target.refs, target.previous_ref)
        _append(passed.log, f"# pyrlab: tagged {', '.join(promotion.tags)}"
                + (f"; previous: {short_id(promotion.previous)}" if promotion.previous else ""))
        tested = f", self-test {passed.test.seconds:.1f}s" if passed.test is not None else ""
        self.progress.done(shown(target), f"built in {passed.seconds:.0f}s{tested} "
                           f"({short_id(passed.image_id)}) → {', '.join(target.refs)}")
        return replace(passed, action="built", tags=target.refs)

    def withhold(self, item: Planned, passed: Outcome, why: str) -> Outcome:
        """An image that passed but is not promoted (another platform's failed): its new
        image goes (its layers stay in the engine's cache), its tags stay."""
        target = item.target
        with proc.uninterruptible():
            info = self.engine.image(passed.image_id)
            if info is not None and not info.tags:
                self.engine.remove_image(passed.image_id)
        error = f"passed, but not promoted: {why}"
        _append(passed.log, f"# pyrlab: {error}; {target.ref} unchanged, the new image "
                "was removed")
        self.progress.failed(shown(target), BuildFailure(PROMOTION_STEP, [], error), passed.log)
        return replace(passed, action="failed", failed_step=PROMOTION_STEP,
                       error=f"{error}; {target.ref} unchanged", image_id="")

    def _gate(self, item: Planned, decision: Decision, image_id: str, log: BuildLog,
              ) -> ImageTest:
        """Test the new image before any tag moves; every check goes to the build log."""
        assert self.settings.gate is not None
        name = item.target.name
        delta_on = item.current.id if decision.delta and item.current is not None else None
        self.progress.step(shown(item.target),
                           f"{GATE_STEP}{' of what the delta changed' if delta_on else ''}")
        log.write(f"# pyrlab: {GATE_STEP} of {short_id(image_id)}"
                  + (f" (what changed since {short_id(delta_on)})" if delta_on else ""))
        try:
            test = self.settings.gate(name, image_id, delta_on)
        except PyrlabError as exc:
            log.write(f"# pyrlab: {GATE_STEP} could not run: {exc.message}")
            raise
        for check in test.checks:
            log.write(f"# {GATE_STEP}: {check.seconds:.2f}s {check.line()}")
        log.write(f"# pyrlab: {GATE_STEP} {'passed' if test.ok else 'FAILED'} "
                  f"in {test.seconds:.1f}s")
        return test

    def _failed_test(self, item: Planned, decision: Decision, image_id: str, test: ImageTest,
                     log: BuildLog, log_path: Path, seconds: float) -> Outcome:
        """Keep the image for debugging as NAME:failed; `latest` stays where it was."""
        failure = BuildFailure(GATE_STEP, [c.line() for c in test.failures],
                               f"{len(test.failures)} of {len(test.checks)} checks failed")
        accept = test.accept_hint()
        no_test = "`--no-test` builds without the self-test"
        return self._keep_failed(item, decision, image_id, failure, log, log_path, seconds,
                                 error=test.summary(), test=test,
                                 hint=f"{accept}\n(or {no_test})" if accept else no_test)

    def _keep_failed(self, item: Planned, decision: Decision, image_id: str,
                     failure: BuildFailure, log: BuildLog, log_path: Path, seconds: float, *,
                     error: str, hint: str, test: ImageTest | None = None) -> Outcome:
        """An image built but refused (its self-test, or --locked's check against the lock):
        kept for debugging as NAME:failed; `latest` stays where it was."""
        target = item.target
        self.engine.tag(image_id, target.failed_ref)
        kept = f"the new image is kept as {target.failed_ref} ({short_id(image_id)})"
        log.write(f"# pyrlab: {failure.step} failed; {target.ref} unchanged; {kept}")
        failure.error = f"{failure.error}; {target.ref} unchanged; {kept}"
        self.progress.failed(shown(target), failure, log_path)
        return Outcome(target.name, target.ref, "failed", decision.reason,
                       tags=(target.failed_ref,), seconds=seconds, log=log_path,
                       failed_step=failure.step, error=error,
                       hint=f"look inside with `{self.engine.binary} run --rm -it "
                       f"{target.failed_ref} bash`; {hint}", test=test)


def failure_error(outcomes: list[Outcome]) -> BuildError | None:
    """The error to end with when a build failed (its details were shown as it happened)."""
    # A platform's image that passed but was not promoted is named after the failure
    # that stopped it (see groups.py).
    failed = sorted((o for o in outcomes if o.action == "failed"),
                    key=lambda o: o.failed_step == PROMOTION_STEP)
    if not failed:
        return None
    first = failed[0]
    at = f" at {first.failed_step}" if first.failed_step else ""
    others = f" (and {', '.join(o.shown for o in failed[1:])})" if len(failed) > 1 else ""
    log = f"full log: {first.log}" if first.log else ""
    hint = "; ".join(h for h in (first.hint, log) if h)
    if first.failed_step in (GATE_STEP, LOCK_STEP):
        what = "its self-test" if first.failed_step == GATE_STEP else "the check against the lock"
        return BuildError(f"{first.shown} failed {what}{others}: {first.error}; "
                          f"{first.ref} was not changed, the new image is {first.tags[0]}",
                          hint=hint or None)
    return BuildError(f"building {first.shown} failed{at}{others}: {first.error}; "
                      "no tag was changed", hint=hint or None)


def cache_sources(config: Config, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The registry images a build may take layers from: `[build] cache_from`, then the
    command line's. A prefix ("registry/team/") stands for every image of the graph under
    it, so one entry covers the images and the parents their cache keys start from."""
    refs: list[str] = []
    for source in (*config.build.cache_from, *extra):
        if source.endswith("/"):
            refs += [f"{source}{name}:latest" for name in config.images]
        else:
            refs.append(source)
    return tuple(dict.fromkeys(refs))


def build_plan(project: Project, engine: Engine, plan: Plan, progress: Progress, *,
               lock: dict[str, Inventory], network_host: bool, no_cache: bool = False,
               jobs: int = 2, gate: Gate | None = None, pins: PinMode | None = "prefer",
               before_build: Callable[[str], None] | None = None,
               cache_from: Sequence[str] = (), whole_lock: Lock | None = None,
               platform: Platform = NATIVE) -> Built:
    """Carry out a plan (see orchestration.py, which `build`, `upgrade` and `up` go
    through) and update pyrlab.lock; BuildError on failure, when the lock is left as it
    was. `lock`: pyrlab.lock's sections as read once for this build. With `gate`, each
    image built is tested before its tags move (a failure is a build failure). `pins`: how
    the install steps use the lock's versions, `before_build` what runs once the base is
    there (see Settings); `cache_from`: registry images to reuse layers of, besides the
    config's (none with `no_cache`). `whole_lock`, `platform`: the whole lock `lock` is
    `platform`'s view of, whose other platforms' sections the lock keeps (None: `lock` is
    all of it, written as one platform's)."""
    sources = () if no_cache else cache_sources(project.config, cache_from)
    if sources:
        progress.note(f"layer cache also from: {', '.join(sources)}")
    settings = Settings(no_cache=no_cache, network_host=network_host, jobs=max(1, jobs),
                        gate=gate, pins=pins, lock=lock, before_build=before_build,
                        cache_from=sources)
    base, outcomes = Executor(project, engine, settings, progress).run(plan)
    error = failure_error(outcomes)
    if error is not None:
        raise error
    return Built(base, tuple(outcomes),
                 record_inventories(project, engine, plan, base, outcomes, lock, progress,
                                    whole=whole_lock, platform=platform))


def record_inventories(project: Project, engine: Engine, plan: Plan, base: BaseOutcome,
                       outcomes: list[Outcome], before: dict[str, Inventory],
                       progress: Progress, *, whole: Lock | None = None,
                       platform: Platform = NATIVE) -> LockUpdate:
    """Write the inventory of each image built into pyrlab.lock. A skipped image keeps its
    section unless it has none, or the section is not of this image: its input hash or
    base differ (an earlier build of it succeeded while another failed, which left the
    lock as it was). `before` is `platform`'s part of the `whole` lock: only it is
    replaced."""
    return record_lanes(project, engine, [LaneResult(platform, plan, base, outcomes, before)],
                        progress, whole=whole)


@dataclass(frozen=True)
class LaneResult:
    """What one platform's plan built, for the lock: `before` is its part of the lock."""

    platform: Platform  # concrete (NATIVE only for a lock written as one platform's)
    plan: Plan
    base: BaseOutcome
    outcomes: Sequence[Outcome]
    before: dict[str, Inventory]


def record_lanes(project: Project, engine: Engine, lanes: Sequence[LaneResult],
                 progress: Progress, *, whole: Lock | None = None) -> LockUpdate:
    """record_inventories for the platforms of one build: each platform's sections are
    replaced, the lock's other platforms' kept, and the file written once. What it returns
    says the first lane's sections (the engine's own platform's)."""
    lock = lock_file(project.config)
    recorded: list[str] = []
    changed_any = False
    first: dict[str, Inventory] = {}
    others: list[tuple[Platform, dict[str, Inventory], dict[str, Inventory]]] = []
    for lane in lanes:
        hashes = {item.target.name: item.target.context.input_hash for item in lane.plan.images}
        changed: dict[str, Inventory] = {}
        for outcome in lane.outcomes:
            section = lane.before.get(outcome.name)
            if (outcome.action == "built" or section is None
                    or section.meta.input_hash != hashes[outcome.name]
                    or section.meta.base_id != lane.base.recorded):
                changed[outcome.name] = on_platform(image_inventory(
                    engine, ImageSpec(outcome.name, outcome.image_id)), lane.platform)
        recorded += [f"{name} ({lane.plan.platform})" if lane.plan.platform else name
                     for name in changed]
        after = {**lane.before, **changed}
        changed_any = changed_any or after != lane.before
        if lane is lanes[0]:
            first = after
        else:
            others.append((lane.plan.platform, lane.before, after))
        if whole is not None:
            whole = whole.with_platform(lane.platform, after)
        elif len(lanes) > 1:
            raise ValueError("the sections of several platforms go into a whole lock")
    if recorded:
        progress.note(f"{lock.shown}: recorded what {', '.join(recorded)} hold"
                      + ("s" if len(recorded) == 1 else ""))
    # The build lock is held since `before` was read: it is still what the file says.
    write_lock(lock.path, whole if whole is not None else first, shown=lock.shown)
    return LockUpdate(lock.shown, tuple(recorded), changed_any, first, tuple(others))
