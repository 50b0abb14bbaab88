"""A Debian base image from a Debian mirror, with no container registry involved.

`mmdebstrap` (when installed) writes a root file system tarball directly and needs no
root (`--mode=auto`: root as root, else an unprivileged user namespace); otherwise
`debootstrap` (root only) fills a temporary folder that `tar` packs. Both run with
SOURCE_DATE_EPOCH set to the Date of the suite's Release file, and pyrlab makes their
tarball into an image archive of its own (rootfs.py: sorted, every time stamp that date, no
logs, apt lists or host files) which the engine `load`s: bootstrapping the same suite from
the same mirror state gives the same image, with the same ID, on any machine and any day.
The mirror defaults to the one the host's own apt uses; `[base] snapshot` makes it a dated
state of snapshot.debian.org.

Bootstrapping again under a name that exists (`pyrlab upgrade`, `bootstrap --tag` of a
present base) moves the name to the new image; the one it named before is removed when
nothing names or uses it any more, so re-bootstrapping does not pile up untagged bases.

Another platform's base (`--platform linux/arm64` on an amd64 machine) is bootstrapped by
mmdebstrap `--arch`, which runs the packages' maintainer scripts under the host's qemu-user
emulation (binfmt_misc), and is named as platforms.platform_ref says
(`pyrlab/debian/arm64:trixie`); its image configuration says its architecture, which the
engines match a build's `--platform` against. A registry base is pulled for the platform
(pull_base). The host's platform bootstraps, names and pulls exactly as before.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pyrlab import proc, rootfs
from pyrlab.config.model import BaseConfig
from pyrlab.config.validators import IMAGE_REF_RE, SUITE_RE
from pyrlab.ecosystems.debian import SNAPSHOT_ARCHIVE, snapshot_mirror
from pyrlab.engines.base import BuildFailure, BuildOutput, Engine, ImageInfo, short_id
from pyrlab.engines.emulation import fix, host_problem
from pyrlab.errors import BuildError, ConfigError, EngineError, Problem, UsageError
from pyrlab.platforms import (
    NATIVE,
    Platform,
    debian_arch,
    host_platform,
    is_native,
    platform_ref,
    token,
)

DEFAULT_MIRROR = "http://deb.debian.org/debian"
VARIANT = "minbase"
SOURCES_FILES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# The suffixes of suites that are not a distribution on their own.
_SIDE_SUITE_RE = re.compile(r"[-/](security|updates|backports|proposed-updates)$")
LABEL_SUITE = "org.pyrlab.bootstrap"
RELEASE_TIMEOUT = 60
# Where the kernel lists the interpreters it runs other architectures' programs with.


def release_url(mirror: str, suite: str) -> str:
    return f"{mirror.rstrip('/')}/dists/{suite}/InRelease"


def fetch_release_epoch(mirror: str, suite: str) -> int:
    """The Date of the suite's Release file on the mirror: the time stamp of every file of
    the image (SOURCE_DATE_EPOCH), the same wherever and whenever the mirror holds that
    state. Proxies: the environment's, as apt's."""
    url = release_url(mirror, suite)
    try:
        with urllib.request.urlopen(url, timeout=RELEASE_TIMEOUT) as response:
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BuildError(f"cannot read {url}: {reason}",
                         hint="check the suite, the mirror and the proxy settings "
                         "(http_proxy in the environment)") from None
    try:
        return rootfs.release_epoch(text)
    except ValueError as exc:
        raise BuildError(f"{url}: {exc}", hint="is the mirror a Debian archive?") from None


@dataclass(frozen=True)
class BootstrapResult:
    ref: str
    image_id: str
    suite: str
    mirror: str
    tool: str
    seconds: float
    log: Path
    replaced: Replaced | None = None  # the image `ref` named before, when there was one
    platform: Platform = NATIVE  # what it was bootstrapped for; NATIVE: the engine's own


@dataclass(frozen=True)
class Replaced:
    """The image a bootstrap's name pointed to before: removed, or kept and why."""

    image_id: str
    removed: bool
    kept_because: str = ""  # when not removed: still named, or what the engine said

    def describe(self, ref: str) -> str:
        if self.removed:
            return f"removed the image {ref} named before ({short_id(self.image_id)})"
        return (f"kept the image {ref} named before ({short_id(self.image_id)}): "
                f"{self.kept_because}")


def base_mirror(base: BaseConfig | None, flag: str | None = None) -> tuple[str, str]:
    """The mirror a bootstrap uses and where it comes from: --mirror, [base] snapshot
    (snapshot.debian.org then), [base] mirror, the host's apt sources, Debian's default."""
    if flag:
        return flag, "--mirror"
    if base is not None and base.snapshot:
        return snapshot_mirror(base.snapshot), "pyrlab.toml [base] snapshot"
    if base is not None and base.mirror:
        return base.mirror, "pyrlab.toml [base] mirror"
    found = host_mirror()
    return (found, "the host's apt sources") if found else (DEFAULT_MIRROR,
                                                            "Debian's default mirror")


def host_mirror(paths: Iterable[Path] = SOURCES_FILES) -> str | None:
    """The Debian mirror the host's apt uses (its first main-suite `deb` source)."""
    for uri, suites in _host_sources(paths):
        if any(not _SIDE_SUITE_RE.search(s) for s in suites) and _is_debian_archive(uri):
            return uri.rstrip("/")
    return None


def _is_debian_archive(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and not parts.path.rstrip("/").endswith("-security")


def _host_sources(paths: Iterable[Path]) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled binary source, in apt's reading order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".list", ".sources"))
        elif path.is_file():
            files.append(path)
    found: list[tuple[str, list[str]]] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found += _deb822_sources(text) if file.suffix == ".sources" else _one_line_sources(text)
    return found


def _one_line_sources(text: str) -> list[tuple[str, list[str]]]:
    found = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            found.append((words[1], [words[2]]))
    return found


def _deb822_sources(text: str) -> list[tuple[str, list[str]]]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        found += [(uri, suites) for uri in fields.get("uris", "").split()]
    return found


# Lines that stand for one package: debootstrap's (`I: Retrieving libc6 2.41-12`,
# `I: Extracting libc6...`, `I: Unpacking libc6:amd64...`, `I: Configuring libc6...`), and
# apt's and dpkg's, which mmdebstrap --verbose passes on (`Get:12 http://… libc6 amd64 …`,
# `Unpacking libc6:amd64 (2.41-12) ...`, `Setting up libc6:amd64 (2.41-12) ...`). Each names
# what the count says and, for debootstrap's, the phase they are in: it announces no phase
# of its own before retrieving or extracting them.
_PER_PACKAGE: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^I: Retrieving \S+ \S+$"), "retrieved", "Retrieving packages"),
    (re.compile(r"^I: Validating \S+ \S+$"), "", ""),  # its Retrieving line counted it
    (re.compile(r"^I: Extracting \S+\.\.\.$"), "extracted", "Extracting packages"),
    (re.compile(r"^I: Unpacking \S+\.\.\.$"), "unpacked", ""),
    (re.compile(r"^I: Configuring \S+\.\.\.$"), "configured", ""),
    (re.compile(r"^Get:\d+ "), "retrieved", ""),
    (re.compile(r"^Unpacking \S+ "), "unpacked", ""),
    (re.compile(r"^Setting up \S+ "), "set up", ""),
)
# apt's summary before it fetches and installs: the total the counts after it go up to.
_APT_TOTAL = re.compile(r"^\d+ upgraded, (\d+) newly installed")


class BootstrapOutput:
    """Reads mmdebstrap's or debootstrap's output line by line for the display: their
    phases (`I: downloading packages with apt...`, `I: Configuring required packages...`),
    and how many packages the phase at hand has done. The hundreds of per-package lines
    go to the log only."""

    def __init__(self) -> None:
        self.phase = ""
        self.counts: dict[str, int] = {}
        self.total = 0  # packages apt said it installs; 0 when it has not said

    def feed(self, line: str) -> tuple[str, bool] | None:
        """(what to show, whether a new phase starts), or None for nothing new to show:
        a new phase is worth a line of its own; a count only updates a status line."""
        total = _APT_TOTAL.match(line)
        if total:
            self.total = int(total.group(1))
            return None
        for pattern, counted, phase in _PER_PACKAGE:
            if not pattern.match(line):
                continue
            if not counted:
                return None
            started = bool(phase) and phase != self.phase
            if started:
                self._start(phase)
            self.counts[counted] = self.counts.get(counted, 0) + 1
            return (self.phase, True) if started else (self.status(), False)
        if line.startswith("I: ") and line[3:].strip() != self.phase:
            self._start(line[3:].strip())
            return self.phase, True
        return None

    def _start(self, phase: str) -> None:
        self.phase = phase
        self.counts = {}

    def status(self) -> str:
        """The phase with its counts: `installing essential packages: 59/59 unpacked,
        12/59 set up` (out of apt's total while it holds), `Extracting packages: 57
        extracted`."""
        counts = ", ".join(f"{n}/{self.total} {what}" if 0 < n <= self.total else f"{n} {what}"
                           for what, n in self.counts.items())
        phase = self.phase.removesuffix("...")
        return f"{phase}: {counts}" if counts else phase


def phases(on_phase: Callable[[str], None],
           on_count: Callable[[str], None] = lambda text: None) -> Callable[[str], None]:
    """An `on_line` for the bootstrap's output: `on_phase` once per phase, `on_count` (a
    status line on a terminal) as the phase's package count grows."""
    parser = BootstrapOutput()

    def on_line(line: str) -> None:
        shown = parser.feed(line)
        if shown is not None:
            text, new_phase = shown
            (on_phase if new_phase else on_count)(text)

    return on_line


def check_arguments(suite: str, mirror: str, ref: str) -> None:
    problems = []
    if not SUITE_RE.match(suite):
        problems.append(Problem("--suite", f"expected a Debian suite such as 'trixie', got {suite!r}"))
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
            c.isspace() or ord(c) < 32 for c in mirror):
        problems.append(Problem("--mirror", f"expected an http(s) Debian mirror URL, got {mirror!r}"))
    if not IMAGE_REF_RE.match(ref) or "@" in ref:
        problems.append(Problem("--tag", f"not a valid image name: {ref!r}"))
    if problems:
        raise ConfigError(problems)


def choose_tool(platform: Platform = NATIVE) -> str:
    """mmdebstrap when installed (tarball out, no root needed), else debootstrap as root.
    Another machine's `platform` needs mmdebstrap (and arch-test, with which it checks the
    emulation): debootstrap would need a root-only `--foreign` second stage."""
    mmdebstrap = shutil.which("mmdebstrap")
    if not is_native(platform, host_platform()):
        if mmdebstrap is None:
            raise UsageError(f"bootstrapping {platform} needs mmdebstrap",
                             hint="apt-get install mmdebstrap arch-test")
        if shutil.which("arch-test") is None:
            raise UsageError(f"bootstrapping {platform} needs arch-test, with which "
                             "mmdebstrap checks that the host can run its programs",
                             hint="apt-get install arch-test")
    if mmdebstrap:
        return mmdebstrap
    debootstrap = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)), None)
    if debootstrap is None:
        raise UsageError("neither mmdebstrap nor debootstrap is installed",
                         hint="apt-get install mmdebstrap (or debootstrap)")
    if os.geteuid() != 0:
        raise UsageError("debootstrap needs root",
                         hint="run it as root (sudo pyrlab bootstrap …) or install mmdebstrap, "
                         "which works without root")
    return debootstrap


def check_emulation(platform: Platform) -> None:
    """Whether this machine can run `platform`'s programs, as mmdebstrap's maintainer
    scripts (run here, not in the engine) and every later build step for it need:
    natively, or through a qemu-user interpreter registered with binfmt_misc (see
    engines/emulation.py). A UsageError naming the platform and the fix otherwise, before
    anything is downloaded."""
    problem = host_problem(platform, host_platform())
    if problem is not None:
        raise UsageError(f"bootstrapping {problem}", hint=fix(platform))


def tool_argv(tool: str, suite: str, tarball: Path, mirror: str, *,
              platform: Platform = NATIVE) -> list[str]:
    """mmdebstrap's command line: the host's architecture unless `platform` is given (a
    Debian architecture then, `--arch=arm64`: the host's own argv is unchanged)."""
    # A dated state's Release files have long expired: apt must not check that.
    snapshot = mirror.startswith(SNAPSHOT_ARCHIVE + "/")
    options = ['--aptopt=Acquire::Check-Valid-Until "false"'] if snapshot else []
    if platform:
        options.append(f"--arch={debian_arch(platform)}")
    # apt's lists stay in the tarball until rootfs.normalize drops them: their Release
    # date is the state the packages came from.
    # --verbose: apt's and dpkg's own lines, for the log and the package count.
    return [tool, "--verbose", f"--variant={VARIANT}", "--mode=auto", "--format=tar",
            "--skip=cleanup/apt/lists", *options, suite, str(tarball), mirror]


def bootstrap(
    engine: Engine,
    *,
    suite: str,
    mirror: str,
    ref: str,
    log_path: Path,
    on_line: Callable[[str], None] = lambda line: None,
    workdir: Path | None = None,
    platform: Platform = NATIVE,
) -> BootstrapResult:
    """Make the root file system of Debian `suite` from `mirror` and load it as `ref`; for
    another `platform` than the engine's, that platform's Debian architecture, loaded as
    platform_ref(ref) (`pyrlab/debian/arm64:trixie`)."""
    check_arguments(suite, mirror, ref)
    host = engine.platform()
    target = NATIVE if is_native(platform, host) else platform
    if target:
        ref = platform_ref(ref, target, host)
    tool = choose_tool(target)
    check_emulation(target)
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    epoch = fetch_release_epoch(mirror, suite)
    env = {"SOURCE_DATE_EPOCH": str(epoch)}
    temp = Path(tempfile.mkdtemp(prefix="pyrlab-bootstrap-", dir=workdir or _temp_root()))
    tarball = temp / "rootfs.tar"
    with log_path.open("w", encoding="utf-8") as log:

        def out(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            on_line(line)

        out(f"SOURCE_DATE_EPOCH={epoch} (the Date of {release_url(mirror, suite)})")
        try:
            if Path(tool).name == "mmdebstrap":
                _run(out, tool_argv(tool, suite, tarball, mirror, platform=target),
                     "mmdebstrap", log_path, env)
            else:
                rootfs_dir = temp / "rootfs"
                _run(out, [tool, f"--variant={VARIANT}", suite, str(rootfs_dir), mirror],
                     "debootstrap", log_path, env)
                _run(out, ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs_dir), "-cf",
                           str(tarball), "."], "tar", log_path)
            used = rootfs.lists_release_epoch(tarball, suite)
            if used is not None and used != epoch:
                # The mirror published a new state between the two reads (or its servers
                # disagree): the image is stamped with the state its packages came from.
                out(f"the mirror's Release date changed during the bootstrap: "
                    f"{rootfs.timestamp(epoch)}, then {rootfs.timestamp(used)}; using the "
                    "latter")
                epoch = used
            image_id, replaced = import_base(engine, tarball, ref, suite, out, epoch=epoch,
                                             workdir=temp, platform=target)
        finally:
            _remove_tree(temp, out)
    return BootstrapResult(ref=ref, image_id=image_id, suite=suite, mirror=mirror,
                           tool=Path(tool).name, seconds=time.monotonic() - started, log=log_path,
                           replaced=replaced, platform=target)


def import_base(engine: Engine, tarball: Path, ref: str, suite: str,
                out: Callable[[str], None], *, epoch: int = 0,
                workdir: Path | None = None,
                platform: Platform = NATIVE) -> tuple[str, Replaced | None]:
    """Load the root file system `tarball` as `ref` (labelled with its suite), made
    deterministic (see rootfs.py: every time stamp `epoch`); the image `ref` named before
    goes when nothing else uses it (see remove_replaced). `platform`: the one its files
    are for, when not the engine's (its configuration says so). Returns the new image's
    ID and what became of the one it replaced."""
    before = engine.image(ref)
    with tempfile.TemporaryDirectory(prefix="pyrlab-image-", dir=workdir or _temp_root()) as t:
        layer, archive = Path(t) / "layer.tar", Path(t) / "image.tar"
        out(f"normalizing {tarball.name}: sorted, time stamps {rootfs.timestamp(epoch)}, "
            "no logs, apt lists or host files")
        digest = rootfs.normalize(tarball, layer, epoch)
        config = rootfs.ImageConfig(labels={LABEL_SUITE: suite})
        image_id = rootfs.write_archive(layer, digest, config, epoch, archive,
                                        token(platform) if platform else "")
        layer.unlink()
        out(f"+ {engine.binary} load --input {archive}")
        loaded = engine.load(archive)
    info = engine.image(image_id)
    if info is None and loaded:
        # An engine whose ID is not the configuration's digest (Docker's containerd image
        # store names an image by its manifest's): the ID it printed.
        image_id = loaded[-1]
        info = engine.image(image_id)
    if platform and info is not None and info.platform != platform:
        # Docker 20.10, Podman and containerd keep the configuration's architecture
        # (measured on 20.10: a build --platform linux/arm64 then starts FROM it, with no
        # registry asked). An engine that did not would run it as the host's.
        engine.remove_image(image_id)
        raise EngineError(f"{engine.name} loaded the {platform} base as "
                          f"{info.platform or 'an image of no platform'}: it cannot "
                          f"build {platform} images on it")
    engine.tag(image_id, ref)
    out(f"loaded {ref} ({image_id[:12]})")
    if before is None or before.id == image_id:
        return image_id, None
    replaced = remove_replaced(engine, before.id)
    out(replaced.describe(ref))
    return image_id, replaced


def pull_base(engine: Engine, ref: str, on_line: Callable[[str], None], *,
              platform: Platform = NATIVE) -> ImageInfo:
    """Pull a registry base for `platform` and return the image: the engine's own platform
    as `ref`, as always; another one named platform_ref(ref) (`python/arm64:3.13`), its
    image checked to be for that platform. EngineError when the pull fails or the registry
    has no image for the platform.

    An engine's store holds one image per name (Docker 20.10's does): pulling another
    platform's moves the tag `ref` to it, so `ref` is put back where it pointed before (or
    untagged when it named nothing), and the host's base stays what its name says. A
    digest (REPO@sha256:… of a multi-platform index) names one image too, and 20.10
    refuses to point it at another ("Cannot overwrite digest") until that reference is
    removed; the image it named keeps its other names."""
    host = engine.platform()
    want = host if is_native(platform, host) else platform
    before = engine.image(ref)
    if "@" in ref and before is not None and before.platform not in (NATIVE, want):
        engine.remove_image(ref)  # the reference only, where the image has another name
        before = None
    if want == host:
        engine.pull(ref, on_line)
        return _pulled(engine, ref)
    engine.pull(ref, on_line, platform=platform)
    info = _pulled(engine, ref)
    local = platform_ref(ref, platform, host)
    try:
        if info.platform != platform:
            raise EngineError(f"cannot pull {ref} for {platform}: the registry gave an "
                              f"image for {info.platform or 'no platform'}")
        if "@" not in local:
            engine.tag(info.id, local)
    finally:
        if "@" not in ref and (before is None or before.id != info.id):
            with proc.uninterruptible():  # the host's name: after an interrupt too
                if before is not None:
                    engine.tag(before.id, ref)
                else:
                    engine.remove_image(ref)  # untags: `local` names it
    return engine.image(local) or info


def _pulled(engine: Engine, ref: str) -> ImageInfo:
    info = engine.image(ref)
    if info is None:
        raise EngineError(f"cannot pull {ref}: the engine says it pulled it, but has no "
                          "image of that name")
    return info


def remove_replaced(engine: Engine, image_id: str) -> Replaced:
    """Remove the image a name pointed to before it moved, unless another name still points
    to it or the engine refuses (a container or a child image uses it): untagged and
    unused, nobody can reach it any more."""
    after = engine.image(image_id)
    if after is None:
        return Replaced(image_id, removed=False, kept_because="already gone")
    if after.tags:
        return Replaced(image_id, removed=False,
                        kept_because=f"still named {', '.join(after.tags)}")
    refused = engine.remove_image(image_id)
    if refused is not None:
        return Replaced(image_id, removed=False, kept_because=refused)
    return Replaced(image_id, removed=True)


def _temp_root() -> Path:
    # Not /tmp: that is often a small tmpfs, and debootstrap needs device nodes to work.
    var_tmp = Path("/var/tmp")
    return var_tmp if var_tmp.is_dir() and os.access(var_tmp, os.W_OK) else Path(tempfile.gettempdir())


class BootstrapFailed(BuildError):
    """A step of the bootstrap failed; `failure` holds its last lines for the display."""

    def __init__(self, failure: BuildFailure, log: Path) -> None:
        super().__init__(f"bootstrap failed at {failure.step}: {failure.error}",
                         hint=f"full log: {log}")
        self.failure = failure
        self.log = log


def _run(out: Callable[[str], None], argv: list[str], what: str, log_path: Path,
         env: dict[str, str] | None = None) -> None:
    out(f"+ {proc.describe(argv)}")
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        del lines[:-BuildOutput.TAIL]
        out(line)

    code = proc.stream(argv, on_line=keep, env=env)
    if code != 0:
        errors = [line for line in lines if line.startswith("E: ")]
        reason = errors[-1] if errors else f"exit code {code}"
        raise BootstrapFailed(BuildFailure(what, lines, reason), log_path)


def _mounts_under(folder: Path) -> list[str]:
    try:
        text = Path("/proc/mounts").read_text()
    except OSError:
        return []
    prefix = str(folder.resolve()) + "/"
    points = [line.split()[1] for line in text.splitlines() if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_tree(folder: Path, out: Callable[[str], None]) -> None:
    # A debootstrap that died can leave /proc or /sys mounted inside the target: unmount
    # them first, and never delete through a mount point.
    with proc.uninterruptible():  # cleanup: after an interrupt too
        for point in _mounts_under(folder):
            proc.run(["umount", "--lazy", point])
    remaining = _mounts_under(folder)
    if remaining:
        out(f"pyrlab: left {folder} in place: still mounted: {', '.join(remaining)}")
        return
    shutil.rmtree(folder, ignore_errors=True)
