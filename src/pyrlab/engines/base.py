"""The container engine contract. Every difference between engines lives behind it.

Engines only assemble argument lists and hand them to pyrlab.proc; the `*_argv` methods
are pure so that tests can check them without an engine. What an engine prints while it
builds differs too, so each engine also supplies the parser that reads its build output
(current step for the progress display, failing step and its last lines for the error):
BuildKit's in docker.py, buildah's in podman.py, on the shared helpers below.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrlab import proc
from pyrlab.errors import EngineError, RegistryError
from pyrlab.platforms import NATIVE, Platform, UnknownPlatform, normalize

# Every pyrlab cache mount id starts with this (see dockerfile/render.py `_Mounts.cache`).
CACHE_ID_PREFIX = "pyrlab-"


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    tags: tuple[str, ...] = ()  # empty: build by ID only, tags move after success
    labels: Mapping[str, str] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    # Build secrets: id → file, for RUN --mount=type=secret,id=… (credentials: never in a
    # layer, the cache key or the command line, which names only the file).
    secrets: Mapping[str, Path] = field(default_factory=dict)
    network_host: bool = False
    no_cache: bool = False
    pull: bool = False
    # Registry images whose layer cache the build may reuse (a teammate's or CI's push).
    cache_from: tuple[str, ...] = ()
    # The platform to build for ("linux/arm64"): another than the engine's own runs its
    # RUN steps under emulation. NATIVE: none asked, the argv of every build so far.
    platform: Platform = NATIVE


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: int
    container_port: int


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class RunRequest:
    image: str
    name: str
    user: str | None = None  # "UID:GID"
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    gpus: bool = False
    network_host: bool = False
    network_none: bool = False  # no network at all (self-tests)
    workdir: str | None = None
    extra_args: tuple[str, ...] = ()  # from the user's config, passed through as given
    command: tuple[str, ...] = ()
    detach: bool = True
    remove: bool = False
    security_opts: tuple[str, ...] = ("no-new-privileges",)
    cap_drop: tuple[str, ...] = ()  # e.g. ("ALL",): the lab needs no capability
    hostname: str | None = None
    health_interval: int | None = None  # seconds; overrides the image's HEALTHCHECK interval
    # The image's platform, when it is not the engine's own ("linux/arm64": run under
    # emulation); NATIVE asks for none, as every run so far.
    platform: Platform = NATIVE


@dataclass(frozen=True)
class ImageInfo:
    """What pyrlab needs to know about one local image."""

    id: str  # hex digest without "sha256:"
    labels: Mapping[str, str]
    tags: tuple[str, ...]  # as the engine reports them
    digests: tuple[str, ...] = ()  # REPOSITORY@sha256:… of the registries it came from
    # What its configuration says it runs on ("linux/arm64"; platforms.normalize), NATIVE
    # when it does not say.
    platform: Platform = NATIVE


@dataclass(frozen=True)
class HealthCheckRun:
    """What asking an engine to run a container's health check now came to."""

    ran: bool  # it ran and the engine recorded the result: inspect the container again
    problem: str = ""  # why it could not run ("" also when the engine's daemon runs checks)


def short_id(image_id: str) -> str:
    return normalize_id(image_id)[:12]


def normalize_id(image_id: str) -> str:
    """Docker says "sha256:<hex>", Podman often just "<hex>": compare the hex."""
    return image_id.strip().removeprefix("sha256:")


# --------------------------------------------------------------------------- build output


@dataclass
class BuildFailure:
    step: str  # e.g. "[3/5] RUN /run/pyrlab/bin/uv-install"; "" when unknown
    tail: list[str]  # the last lines of that step's output
    error: str  # the engine's own one-line reason


class BuildOutput(ABC):
    """Reads an engine's build output line by line."""

    TAIL = 15

    @abstractmethod
    def feed(self, line: str) -> str | None:
        """Take one line; return the new current step's title when a step starts."""

    @abstractmethod
    def failure(self) -> BuildFailure:
        """After a failed build: which step failed, its last lines, the engine's reason."""


def reported(instruction: str) -> bool:
    """Steps worth showing: those that take time (not ENV, LABEL, USER…)."""
    return instruction.split(" ", 1)[0].upper() in ("FROM", "RUN", "COPY", "ADD")


def step_label(stage: str, n: str, total: str) -> str:
    """`[2/4]` for a step of the image's own stage, `[pyrlab-tools 1/2]` for one of a named
    build-only stage: each stage counts its own steps, and with the stage named the display
    never shows two stages' numbers as one interleaved count ([1/2], [1/4], [2/2])."""
    unnamed = not stage or re.fullmatch(r"stage-\d+", stage) is not None
    return f"[{n}/{total}]" if unnamed else f"[{stage} {n}/{total}]"


def step_title(instruction: str) -> str:
    """A short title for a Dockerfile step: `RUN --mount=… /run/pyrlab/bin/uv-install`
    becomes `RUN uv-install` (the collector in /run/pyrlab/inventory/ likewise); anything
    else is cut to a readable length."""
    instruction = " ".join(instruction.split())
    match = re.search(r"/run/pyrlab/(?:bin|inventory)/([A-Za-z0-9._-]+)", instruction)
    if instruction.startswith("RUN ") and match:
        return f"RUN {match.group(1)}"
    return instruction if len(instruction) <= 60 else instruction[:59] + "…"


def request_args(request: BuildRequest) -> list[str]:
    """The build options Docker and Podman spell the same way (platform, tags, labels,
    args, secrets, network)."""
    argv: list[str] = ["--platform", request.platform] if request.platform else []
    for tag in request.tags:
        argv += ["--tag", tag]
    for key, value in sorted(request.labels.items()):
        argv += ["--label", f"{key}={value}"]
    for key, value in sorted(request.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for key, path in sorted(request.secrets.items()):
        if "," in str(path):  # the option's own separator
            raise EngineError(f"a build secret's file cannot be passed: {path} has a comma "
                              "(set TMPDIR to a folder without one)")
        argv += ["--secret", f"id={key},src={path}"]
    if request.network_host:
        argv += ["--network", "host"]
    if request.no_cache:
        argv.append("--no-cache")
    return argv


def _image_info(info: dict[str, Any]) -> ImageInfo:
    labels = (info.get("Config") or {}).get("Labels") or info.get("Labels") or {}
    return ImageInfo(id=normalize_id(str(info.get("Id", ""))), labels=dict(labels),
                     tags=tuple(info.get("RepoTags") or ()),
                     digests=tuple(info.get("RepoDigests") or ()),
                     platform=_image_platform(info))


def _image_platform(info: dict[str, Any]) -> Platform:
    """`image inspect`'s Os/Architecture[/Variant], one spelling (platforms.normalize)."""
    parts = [str(info.get(key) or "") for key in ("Os", "Architecture", "Variant")]
    if not parts[0] or not parts[1]:
        return NATIVE
    try:
        return normalize("/".join(filter(None, parts)))
    except UnknownPlatform:
        return NATIVE


def _plain_ref(ref: str) -> str:
    """NAME:TAG as a local tag list spells it, whatever the registry prefix."""
    for prefix in ("localhost/", "docker.io/library/", "docker.io/"):
        ref = ref.removeprefix(prefix)
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in last else f"{ref}:latest"


def inspect_many(engine: Engine, refs: Sequence[str]) -> dict[str, ImageInfo | None]:
    """Engine.images_by_ref with one `image inspect` for all refs. The engine answers with
    the images it found, matched here by tag; a ref not accounted for is asked alone."""
    wanted = list(dict.fromkeys(refs))
    found: dict[str, ImageInfo | None] = {}
    if len(wanted) > 1:
        result = engine._run(["image", "inspect", *wanted])
        try:
            data = json.loads(result.stdout or "[]")
        except ValueError:
            data = []
        items = [_image_info(item) for item in data] if isinstance(data, list) else []
        by_tag = {_plain_ref(tag): info for info in items for tag in info.tags}
        for ref in wanted:
            if _plain_ref(ref) in by_tag:
                found[ref] = by_tag[_plain_ref(ref)]
        if result.ok and len(items) == len(wanted):
            # Every ref exists: the rest (IDs, digests) in the order they were asked for.
            for ref, info in zip(wanted, items, strict=True):
                found.setdefault(ref, info)
        # "Error: No such image: REF" (Docker), "…: REF: image not known" (Podman).
        for ref in wanted:
            if ref not in found and (f"No such image: {ref}" in result.stderr
                                     or f"{ref}: image not known" in result.stderr):
                found[ref] = None
    for ref in wanted:
        if ref not in found:
            found[ref] = engine.image(ref)
    return found


DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def printed_digest(lines: Sequence[str]) -> str:
    """The digest `docker push` prints last: "latest: digest: sha256:… size: 1234"."""
    for line in reversed(lines):
        match = re.search(r"digest: (sha256:[0-9a-f]{64})", line)
        if match:
            return match.group(1)
    return ""


def push_refusal(ref: str, lines: Sequence[str]) -> tuple[str, str]:
    """(message, hint) for a push the registry or the network refused, from the engine's
    last lines: the reasons a user can fix get a hint of their own."""
    detail = [line.strip() for line in lines if line.strip() and not line.startswith("+ ")]
    last = detail[-1] if detail else "push failed"
    text = " ".join(detail).lower()
    host = ref.split("/", 1)[0]
    if any(word in text for word in ("no such host", "name or service not known",
                                     "server misbehaving", "temporary failure in name")):
        return (f"cannot push {ref}: the registry host {host} is unknown: {last}",
                "check the name in --registry (or `prefix` in pyrlab.toml)")
    if any(word in text for word in ("unauthorized", "authentication required",
                                     "no basic auth credentials", "denied", "401")):
        return (f"cannot push {ref}: {host} refused the credentials: {last}",
                f"log in first: `docker login {host}` (or `podman login {host}`)")
    if "server gave http response to https client" in text or "http: server gave" in text:
        return (f"cannot push {ref}: {host} speaks plain HTTP: {last}",
                ("give --registry http://HOST:PORT/NAMESPACE for a registry on this host; "
                 "one on another host needs TLS (or the engine's insecure-registries list)"))
    if any(word in text for word in ("connection refused", "i/o timeout", "no route to host",
                                     "connect: network is unreachable")):
        return (f"cannot push {ref}: {host} cannot be reached: {last}",
                "is the registry running, and is its port right?")
    return f"cannot push {ref}: {last}", "see the push log for the registry's answer"


def repository_of(ref: str) -> str:
    """REPOSITORY of REPOSITORY:TAG or REPOSITORY@DIGEST (a port's colon is not a tag's)."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


@dataclass(frozen=True)
class IndexSteps:
    """The engine commands (without the binary) that push one index, in order: each with
    whether it may fail (a list to forget that is not there); `cleanup` runs afterwards
    whatever happened."""

    steps: tuple[tuple[list[str], bool], ...]
    cleanup: tuple[list[str], ...]


class Engine(ABC):
    """One container engine, reached through its command line client."""

    name: str = ""
    # What its builder does with cache and bind mounts, which the rendering adapts to
    # (dockerfile.render.RenderOptions.for_builder): the engines know nothing of rendering.
    locked_cache_sharing: bool = True  # a second RUN --mount=type=cache,sharing=locked works
    cache_sees_bind_mounts: bool = True  # a RUN layer's cache key covers its bind mounts

    # What the engine is asked for its own platform: its server's OS and architecture.
    platform_query: tuple[str, ...] = ("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}")

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._platform: Platform | None = None

    # ------------------------------------------------------------ description
    def platform(self) -> Platform:
        """The platform the engine builds and runs natively ("linux/amd64"; on a Mac, its
        Linux VM's), asked once: what NATIVE stands for. EngineError when it cannot say."""
        if self._platform is None:
            answer = self._check(list(self.platform_query)).stdout.strip()
            try:
                self._platform = normalize(answer)
            except UnknownPlatform:
                raise EngineError(f"{self.name} did not say its platform: "
                                  f"{proc.describe([self.binary, *self.platform_query])} "
                                  f"answered {answer!r}") from None
        return self._platform

    def describe(self) -> str:
        return f"{self.name} ({self.binary})"

    def runs_here(self) -> bool:
        """Whether its containers run on this machine's Linux kernel, whose binfmt_misc then
        decides what another platform's programs run under (engines/emulation.py). False
        where they run elsewhere (a remote daemon; Docker Desktop's or Podman machine's VM,
        which bring emulation of their own) or where the engine cannot tell."""
        return False

    # ------------------------------------------------------------ build
    @abstractmethod
    def build_argv(self, request: BuildRequest, iidfile: Path) -> list[str]: ...

    def build_env(self) -> dict[str, str]:
        return {}

    @abstractmethod
    def build_output(self) -> BuildOutput:
        """A parser for what this engine prints while it builds."""

    def build(self, request: BuildRequest, on_line: Callable[[str], None]) -> tuple[int, str]:
        """Build; returns (exit code, image ID or ""). The first line is the argv."""
        iidfile = request.context.parent / f".{request.context.name}.iid"
        iidfile.unlink(missing_ok=True)
        argv = self.build_argv(request, iidfile)
        env = self.build_env()
        shown_env = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
        on_line(f"+ {shown_env + ' ' if shown_env else ''}{proc.describe(argv)}")
        code = self._stream(argv, on_line, env=env)
        image_id = iidfile.read_text().strip() if code == 0 and iidfile.exists() else ""
        iidfile.unlink(missing_ok=True)
        return code, normalize_id(image_id)

    # ------------------------------------------------------------ images
    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        result = self._run(["image", "inspect", ref])
        if not result.ok:
            return None
        data = json.loads(result.stdout or "[]")
        return data[0] if data else None

    def image(self, ref: str) -> ImageInfo | None:
        """ID, labels and tags of a local image; None when there is none by that name."""
        info = self.inspect_image(ref)
        return None if info is None else _image_info(info)

    def images_by_ref(self, refs: Sequence[str]) -> dict[str, ImageInfo | None]:
        """`image` of several refs with one engine command (a no-op build asks for every
        image of the graph); see inspect_many."""
        return inspect_many(self, refs)

    def tag(self, source: str, target: str) -> None:
        self._check(["tag", source, target])

    def remove_image(self, ref: str) -> str | None:
        """Remove an image (by name or ID); returns the engine's reason when it refused.
        Cleanup: runs after an interrupt too (see proc.uninterruptible)."""
        with proc.uninterruptible():
            result = self._run(["rmi", ref])
        if result.ok:
            return None
        detail = (result.stderr or result.stdout).strip().splitlines()
        return detail[-1] if detail else "refused"

    def image_ids(self, label: str) -> list[str]:
        """IDs of the images (tagged or not) carrying a label (key or key=value)."""
        result = self._check(["images", "--all", "--no-trunc", "--quiet", "--filter",
                              f"label={label}"])
        return list(dict.fromkeys(normalize_id(i) for i in result.stdout.split()))

    def pull_argv(self, ref: str, platform: Platform = NATIVE) -> list[str]:
        """`pull REF`; `--platform P` only for a platform named (Docker ≥ 20.10, Podman)."""
        return [self.binary, "pull", *(["--platform", platform] if platform else []), ref]

    def pull(self, ref: str, on_line: Callable[[str], None], platform: Platform = NATIVE) -> None:
        """Pull `ref`, for `platform` when one is named. The engine's store holds one image
        per name: pulling another platform's moves `ref` to it (see baseimage.pull_base)."""
        argv = self.pull_argv(ref, platform)
        on_line(f"+ {proc.describe(argv)}")
        lines: list[str] = []

        def keep(line: str) -> None:
            lines.append(line)
            on_line(line)

        if self._stream(argv, keep) != 0:
            detail = [line for line in lines if line.strip()]
            raise EngineError(f"cannot pull {ref}: {detail[-1] if detail else 'pull failed'}")

    def push_argv(self, ref: str, digestfile: Path, *, plain_http: bool) -> list[str]:
        """`push REF`; `plain_http`: the registry speaks HTTP (a loopback one, checked by
        the caller). Docker's daemon decides that itself (it treats 127.0.0.0/8 as an
        insecure registry), so only Podman has a flag for it."""
        return [self.binary, "push", ref]

    def push(self, ref: str, on_line: Callable[[str], None], *,
             plain_http: bool = False) -> str:
        """Push one tag; returns the manifest digest the registry stored ("sha256:…").
        A registry that refuses is a RegistryError saying why (unknown host, login…)."""
        with tempfile.TemporaryDirectory(prefix="pyrlab-push-") as folder:
            digestfile = Path(folder) / "digest"
            argv = self.push_argv(ref, digestfile, plain_http=plain_http)
            on_line(f"+ {proc.describe(argv)}")
            lines: list[str] = []

            def keep(line: str) -> None:
                lines.append(line)
                on_line(line)

            code = self._stream(argv, keep)
            if code != 0:
                message, hint = push_refusal(ref, lines)
                raise RegistryError(message, hint=hint)
            written = digestfile.read_text().strip() if digestfile.exists() else ""
        digest = written or printed_digest(lines)
        if not DIGEST_RE.fullmatch(digest):
            raise RegistryError(f"{self.name} pushed {ref} but printed no digest",
                                hint="see the push log")
        return digest

    def index_steps(self, ref: str, manifests: Sequence[str], digestfile: Path, *,
                    plain_http: bool) -> IndexSteps:
        """The commands that make `ref` (REPOSITORY:TAG) an index of `manifests`
        (REPOSITORY@DIGEST each, in the registry already) and push it. Docker's client
        keeps lists of its own (~/.docker/manifests): one left by an earlier push that
        stopped halfway goes first (none is fine); `create` reads each entry's platform
        from the registry, `push --purge` prints the index's digest and forgets the list.
        `--insecure`: the client itself speaks to the registry, and plain HTTP is only
        given for a registry on this host (checked by the caller)."""
        insecure = ["--insecure"] if plain_http else []
        return IndexSteps(
            steps=((["manifest", "rm", ref], True),
                   (["manifest", "create", *insecure, ref, *manifests], False),
                   (["manifest", "push", "--purge", *insecure, ref], False)),
            cleanup=())

    def push_index(self, ref: str, digests: Mapping[Platform, str],
                   on_line: Callable[[str], None], *, plain_http: bool = False) -> str:
        """Push one index (manifest list) at `ref` (REPOSITORY:TAG) that lists each
        platform's manifest, pushed to the same repository already ({platform: digest});
        returns the index's digest. A registry that refuses is a RegistryError, as `push`."""
        repository = repository_of(ref)
        manifests = [f"{repository}@{digests[p]}" for p in sorted(digests)]
        with tempfile.TemporaryDirectory(prefix="pyrlab-index-") as folder:
            digestfile = Path(folder) / "digest"
            plan = self.index_steps(ref, manifests, digestfile, plain_http=plain_http)
            lines: list[str] = []

            def keep(line: str) -> None:
                lines.append(line)
                on_line(line)

            try:
                for args, may_fail in plan.steps:
                    argv = [self.binary, *args]
                    on_line(f"+ {proc.describe(argv)}")
                    start = len(lines)
                    if self._stream(argv, keep) != 0 and not may_fail:
                        message, hint = push_refusal(ref, lines[start:])
                        raise RegistryError(message, hint=hint)
            finally:
                for args in plan.cleanup:
                    argv = [self.binary, *args]
                    on_line(f"+ {proc.describe(argv)}")
                    with proc.uninterruptible():
                        self._stream(argv, on_line)
            written = digestfile.read_text().strip() if digestfile.exists() else ""
        found = [m.group(0) for line in lines for m in [DIGEST_RE.search(line)] if m]
        digest = written or (found[-1] if found else "")
        if not DIGEST_RE.fullmatch(digest):
            raise RegistryError(f"{self.name} pushed the index {ref} but printed no digest",
                                hint="see the push log")
        return digest

    def import_tarball(self, tarball: Path, ref: str, changes: Sequence[str] = ()) -> str:
        """Import a root file system tarball as image `ref`; returns the image ID."""
        argv = ["import"]
        for change in changes:
            argv += ["--change", change]
        result = self._check([*argv, str(tarball), ref])
        lines = result.stdout.strip().splitlines()
        return normalize_id(lines[-1]) if lines else ""

    def load(self, archive: Path) -> list[str]:
        """Load the images of an archive `save` would write (manifest.json); returns the
        image IDs the engine says it loaded ("Loaded image ID: sha256:…")."""
        result = self._check(["load", "--input", str(archive)])
        return [normalize_id(m) for m in re.findall(r"sha256:[0-9a-f]{64}", result.stdout)]

    def read_file(self, image: str, path: str) -> bytes:
        """The bytes of the file at `path` in a local image.

        Copied out of a container that is created and never started: nothing in the image
        runs (its entrypoint, user, shell and network do not matter), the bytes arrive
        exactly as they are, and Docker and Podman spell `create`, `cp` and `rm` alike.
        Named before it exists, so that an interrupt during `create` removes it too."""
        container = f"pyrlab-read-{secrets.token_hex(6)}"
        try:
            self._check(["create", "--pull", "never", "--name", container, image])
            with tempfile.TemporaryDirectory(prefix="pyrlab-read-") as folder:
                copy = Path(folder) / "file"
                result = self._run(["cp", f"{container}:{path}", str(copy)])
                if not result.ok:
                    detail = (result.stderr or result.stdout).strip().splitlines()
                    raise EngineError(f"cannot read {path} in {image}: "
                                      f"{detail[-1] if detail else 'cp failed'}")
                if not copy.is_file():
                    raise EngineError(f"cannot read {path} in {image}: not a file")
                return copy.read_bytes()
        finally:
            self.remove_container(container)

    @abstractmethod
    def prune_build_cache(self, *, dry_run: bool = False) -> list[str]:
        """Remove pyrlab's build cache (download caches, layer cache) and nothing else;
        returns what was removed (`dry_run`: what would be, removing nothing)."""

    # ------------------------------------------------------------ containers
    def run_argv(self, request: RunRequest) -> list[str]:
        argv = [self.binary, "run"]
        if request.detach:
            argv.append("--detach")
        if request.remove:
            argv.append("--rm")
        argv += ["--name", request.name]
        if request.platform:
            argv += ["--platform", request.platform]
        if request.user:
            argv += ["--user", request.user]
        for opt in request.security_opts:
            argv += ["--security-opt", opt]
        for cap in request.cap_drop:
            argv += ["--cap-drop", cap]
        if request.hostname:
            argv += ["--hostname", request.hostname]
        if request.health_interval:
            argv += ["--health-interval", f"{request.health_interval}s"]
        for key, value in sorted(request.env.items()):
            argv += ["--env", f"{key}={value}"]
        for port in request.ports:
            argv += ["--publish", f"{port.host_ip}:{port.host_port}:{port.container_port}"]
        for mount in request.mounts:
            spec = f"type=bind,source={mount.source},target={mount.target}"
            argv += ["--mount", spec + (",readonly" if mount.read_only else "")]
        for key, value in sorted(request.labels.items()):
            argv += ["--label", f"{key}={value}"]
        if request.gpus:
            argv += self.gpu_args()
        if request.network_host:
            argv += ["--network", "host"]
        elif request.network_none:
            argv += ["--network", "none"]
        if request.workdir:
            argv += ["--workdir", request.workdir]
        argv += list(request.extra_args)
        argv.append(request.image)
        argv += list(request.command)
        return argv

    def gpu_args(self) -> list[str]:
        return ["--gpus", "all"]

    def run(self, request: RunRequest) -> str:
        result = proc.run(self.run_argv(request))
        if not result.ok:
            raise EngineError(f"{self.name} run failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout.strip()

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        result = self._run(["container", "inspect", name])
        if not result.ok:
            return None
        data = json.loads(result.stdout or "[]")
        return data[0] if data else None

    def list_containers(self, label: str, *, all: bool = True) -> list[str]:
        argv = ["ps", "--filter", f"label={label}", "--format", "{{.Names}}"]
        if all:
            argv.insert(1, "--all")
        return [n for n in self._check(argv).stdout.split() if n]

    # Stopping and removing are cleanup: they run after an interrupt too.
    def stop(self, name: str, timeout: int = 10) -> None:
        with proc.uninterruptible():
            self._run(["stop", "--time", str(timeout), name])

    def remove_container(self, name: str) -> None:
        with proc.uninterruptible():
            self._run(["rm", "--force", name])

    def check_health(self, name: str) -> HealthCheckRun:
        """Run a running container's health check now, for an engine that may not run it on
        its own. Docker's daemon always does: nothing to do."""
        return HealthCheckRun(ran=False)

    def logs_argv(self, name: str, *, follow: bool = False, tail: int | None = None) -> list[str]:
        argv = [self.binary, "logs"]
        if follow:
            argv.append("--follow")
        if tail is not None:
            argv += ["--tail", str(tail)]
        return argv + [name]

    def logs(self, name: str, tail: int | None = None) -> str:
        result = proc.run(self.logs_argv(name, tail=tail))
        return result.stdout + result.stderr

    def exec_argv(self, name: str, command: Sequence[str], *, interactive: bool = False,
                  tty: bool | None = None, user: str | None = None,
                  workdir: str | None = None) -> list[str]:
        """`exec`; `tty` defaults to `interactive` (a pipe as stdin needs tty=False)."""
        argv = [self.binary, "exec"]
        if interactive:
            argv.append("--interactive")
        if interactive if tty is None else tty:
            argv.append("--tty")
        if user:
            argv += ["--user", user]
        if workdir:
            argv += ["--workdir", workdir]
        return argv + [name, *command]

    def exec(self, container: str, command: Sequence[str], *,
             timeout: float | None = None) -> proc.Completed:
        """Run `command` in a running container and capture its output (self-tests); an
        interrupt stops it."""
        return proc.run(self.exec_argv(container, command), timeout=timeout, stoppable=True)

    # ------------------------------------------------------------ availability
    def check_available(self) -> None:
        """Raise EngineError naming the fix when the engine cannot be used."""
        try:
            result = proc.run([self.binary, "info", "--format", "{{json .}}"], timeout=30)
        except FileNotFoundError:
            raise EngineError(f"{self.binary} is not installed") from None
        if not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise EngineError(
                f"{self.name} is not usable: {detail[-1] if detail else 'info failed'}",
                hint=self.start_hint(),
            )

    def start_hint(self) -> str:
        return f"start the {self.name} engine and try again"

    # ------------------------------------------------------------ helpers
    def _run(self, args: Sequence[str]) -> proc.Completed:
        try:
            return proc.run([self.binary, *args])
        except FileNotFoundError:
            raise EngineError(f"{self.binary} is not installed") from None

    def _check(self, args: Sequence[str]) -> proc.Completed:
        result = self._run(args)
        if not result.ok:
            message = (result.stderr or result.stdout).strip()
            raise EngineError(f"{proc.describe([self.binary, *args])} failed: {message}")
        return result

    def _stream(self, argv: Sequence[str], on_line: Callable[[str], None],
                env: Mapping[str, str] | None = None) -> int:
        try:
            return proc.stream(argv, on_line=on_line, env=env)
        except FileNotFoundError:
            raise EngineError(f"{argv[0]} is not installed") from None
