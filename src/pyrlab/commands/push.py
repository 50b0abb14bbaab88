"""`pyrlab push [IMAGE…] [--registry HOST[:PORT]/NAMESPACE]`: send built images to a registry.

Each image goes as `latest` and as its base tag (`pylab:3.14-trixie`), parents before
children, and with them the base image when it was bootstrapped here (`pyrlab bootstrap`):
a teammate who pulls it builds on the very same base, so their build's cache keys match
(see `build --cache-from`). The digests the registry answered go to pyrlab.pushed.toml
beside pyrlab.lock (the lock and its diff are not touched).

Nothing local changes: where the registry is not the config's `prefix`, the images are
tagged for it only while they are pushed, and those tags go again (a tag that existed
before points where it pointed), whether the push worked or not.

Platforms: the ones a build is for (`--platform`, repeatable, `all`; else `[build]
platforms`; else those pyrlab.lock records; else the engine's own: see
orchestration.target_platforms), so that what one tag names is what the lock describes.
An image built for some of them but not all is refused (an index without a platform the
lock has would leave its machines without an image); one built for none is left out, as
today. One platform is pushed as before, plainly. Several: each platform's image goes
first under tags of its own (`latest-amd64`, `latest-arm64`), then one index (manifest
list) per tag lists them (`latest`, the base tag), so `REPOSITORY:latest` never names one
platform alone. The record's `digest` is the index's; each platform's manifest is
recorded beside it (contents/pushed.py). The bootstrapped base goes for the platforms it
was bootstrapped for.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrlab.baseimage import LABEL_SUITE
from pyrlab.commands._args import platform_argument
from pyrlab.commands._common import project_from
from pyrlab.config.model import Config
from pyrlab.config.project import build_order
from pyrlab.config.validators import PREFIX_RE
from pyrlab.contents.images import lock_file, shown_path
from pyrlab.contents.lockfile import read_lock_all
from pyrlab.contents.pushed import PlatformPushed, Pushed, record_pushes
from pyrlab.credentials import is_loopback_url
from pyrlab.engines.base import Engine, ImageInfo, short_id
from pyrlab.engines.select import Selection, add_engine_argument, select_engine
from pyrlab.errors import NotBuiltError, RegistryError, UsageError
from pyrlab.imagebuild.logs import BuildLog, logs_dir, new_log_path
from pyrlab.imagebuild.orchestration import recorded_platforms, target_platforms
from pyrlab.imagebuild.planner import RESERVED_TAGS
from pyrlab.imagebuild.progress import Progress
from pyrlab.platforms import (
    ALL,
    NATIVE,
    SUPPORTED,
    Platform,
    host_platform,
    platform_ref,
    platform_tag,
)

INSECURE_HINT = (
    "plain HTTP is refused for a registry on another host: serve it with TLS and give "
    "--registry HOST[:PORT]/NAMESPACE (no scheme); a registry you trust without TLS must be "
    "listed in the engine's insecure registries (Docker: \"insecure-registries\" in "
    "/etc/docker/daemon.json; Podman: insecure = true in registries.conf) and is then given "
    "without http://"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="images to push, with their parents (default: every built "
                        "image of the graph)")
    parser.add_argument("--registry", metavar="HOST[:PORT]/NAMESPACE",
                        help="where to push (default: `prefix` in pyrlab.toml); "
                        "http://HOST:PORT/NAMESPACE for a plain-HTTP registry on this host")
    parser.add_argument("--platform", action="append", default=[], dest="platforms",
                        metavar="PLATFORM", type=_platform_or_all,
                        help="push the images built for PLATFORM (linux/amd64, linux/arm64; "
                        "`all`: every one of [build] platforms); repeatable; several go as "
                        "one index per tag; default: the platforms a build is for ([build] "
                        "platforms, else pyrlab.lock's, else the engine's own)")
    add_engine_argument(parser)


def _platform_or_all(text: str) -> Platform:
    return ALL if text.strip().lower() == ALL else platform_argument(text)


@dataclass(frozen=True)
class Registry:
    """Where images go: REGISTRY/NAMESPACE/ + NAME:TAG."""

    prefix: str  # "HOST[:PORT]/NAMESPACE/"
    plain_http: bool  # given as http://: a registry on this host without TLS
    source: str  # "--registry", or the config's prefix

    @property
    def host(self) -> str:
        """The registry host[:port], or "" where the engine's default registry is meant."""
        first = self.prefix.split("/", 1)[0]
        return first if ("." in first or ":" in first or first == "localhost") else ""


def parse_registry(text: str, source: str = "--registry") -> Registry:
    """`[http://|https://]HOST[:PORT]/NAMESPACE[/…]` → Registry. Plain HTTP to a host that
    is not this machine is a RegistryError before anything is tried."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    elif scheme not in ("http", "https"):
        raise UsageError(f"{source}: {text!r}: the scheme can only be http:// or https://")
    prefix = rest.strip("/") + "/"
    if prefix == "/" or not PREFIX_RE.match(prefix) or prefix.startswith("/"):
        raise UsageError(f"{source}: {text!r} is not HOST[:PORT]/NAMESPACE "
                         "(e.g. registry.example.org/team or 127.0.0.1:5000/me)")
    registry = Registry(prefix, scheme == "http", source)
    if registry.plain_http and not (registry.host
                                    and is_loopback_url(f"http://{registry.host}")):
        raise RegistryError(f"{source}: {text!r} is plain HTTP to "
                            f"{registry.host or 'the default registry'}, which is not this "
                            "machine: images and credentials would cross the network "
                            "unencrypted", hint=INSECURE_HINT)
    return registry


def registry_for(config: Config, given: str | None) -> Registry:
    if given:
        return parse_registry(given)
    if not config.prefix:
        raise UsageError("nowhere to push: pyrlab.toml has no `prefix`",
                         hint="give --registry HOST[:PORT]/NAMESPACE, or set prefix = "
                         "\"HOST[:PORT]/NAMESPACE/\" in pyrlab.toml")
    return parse_registry(config.prefix, "pyrlab.toml prefix")


@dataclass(frozen=True)
class Upload:
    """One image to push: its local ID and the tags it gets in the registry."""

    name: str  # graph image name, or "base"
    image: ImageInfo  # the one pushed; for several platforms, the engine's own (else first)
    repository: str  # REGISTRY/NAMESPACE/NAME
    tags: tuple[str, ...]  # e.g. ("latest", "3.14-trixie")
    is_base: bool = False  # the bootstrapped base image, not one of the graph
    # Two platforms or more: each one's local image, pushed as REPOSITORY:TAG-ARCH and
    # listed by one index per tag. {} for one platform: `image` is pushed as REPOSITORY:TAG.
    platforms: Mapping[Platform, ImageInfo] = field(default_factory=dict)

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(f"{self.repository}:{tag}" for tag in self.tags)


def _image_tags(config: Config) -> tuple[str, ...]:
    """The tags every graph image is pushed as: latest and the base tag (as builds tag)."""
    base_tag = config.base.tag
    return ("latest",) if base_tag in RESERVED_TAGS else ("latest", base_tag)


def push_platforms(config: Config, flag: Sequence[Platform] = ()) -> tuple[Platform, ...]:
    """The platforms to push, as a build decides them (target_platforms): --platform
    (`all`: [build] platforms), [build] platforms, the lock's (version 2), else (NATIVE,),
    the engine's own. The lock is read only when the others say nothing."""
    recorded: tuple[Platform, ...] = ()
    if not flag and not config.build.platforms:
        lock = lock_file(config)
        recorded = recorded_platforms(read_lock_all(lock.path, shown=lock.shown,
                                                    host=host_platform()))
    return target_platforms(config, flag, recorded=recorded).platforms


def _check_platform(ref: str, info: ImageInfo, platform: Platform) -> None:
    """An index must not list an image under a platform it is not for."""
    if platform != NATIVE and info.platform not in (NATIVE, platform):
        raise NotBuiltError(f"{ref} is an image for {info.platform}, not {platform}",
                            hint=f"build it again: `pyrlab build --platform {platform}`")


def _upload(name: str, built: Mapping[Platform, ImageInfo], repository: str,
            tags: tuple[str, ...], host: Platform, *, is_base: bool = False) -> Upload:
    shown = built.get(host) or next(iter(built.values()))
    return Upload(name, shown, repository, tags, is_base,
                  dict(built) if len(built) > 1 else {})


def uploads(config: Config, engine: Engine, names: list[str] | None, registry: Registry,
            platforms: Sequence[Platform] = (NATIVE,)) -> tuple[Upload | None, list[Upload]]:
    """(the bootstrapped base or None, the graph images), parents first, for `platforms`
    (concrete ones, or (NATIVE,): the engine's own, the local names it has always had).
    Named images must be built for every platform; without names, the graph's images
    built for any must be built for all, and those built for none are left out. The base
    goes for the platforms it was bootstrapped for."""
    host = engine.platform() if list(platforms) != [NATIVE] else NATIVE
    order = build_order(config, names)
    refs = {(name, p): config.image_ref(name, "latest", p, host)
            for name in order for p in platforms}
    bases = {p: platform_ref(config.base.image, p, host) for p in platforms}
    infos = engine.images_by_ref([*bases.values(), *refs.values()])
    images = []
    missing = []
    partial = []
    for name in order:
        built = {p: info for p in platforms if (info := infos[refs[name, p]]) is not None}
        if not built:
            missing.append(name)
            continue
        lacking = [p for p in platforms if p not in built]
        if lacking:
            partial.append(f"{name} for {', '.join(lacking)}")
            continue
        for p, info in built.items():
            _check_platform(refs[name, p], info, p)
        images.append(_upload(name, built, f"{registry.prefix}{name}", _image_tags(config),
                              host))
    foreign = [p for p in platforms if p not in (NATIVE, host)]
    again = "".join(f" --platform {p}" for p in platforms) if foreign else ""
    if partial:
        raise NotBuiltError(f"not built: {'; '.join(partial)} (pushed for "
                            f"{' and '.join(platforms)}, each tag names one image per "
                            "platform)",
                            hint=f"`pyrlab build{again}` first, or push fewer platforms "
                            "with --platform")
    if missing and (names or not images):
        first = platforms[0]
        raise NotBuiltError(f"not built: {', '.join(refs[n, first] for n in missing)}",
                            hint=f"`pyrlab build{again} {' '.join(missing)}` first")
    base_built = {p: info for p in platforms if (info := infos[bases[p]]) is not None
                  and LABEL_SUITE in info.labels}
    base = None
    if base_built:
        for p, info in base_built.items():
            _check_platform(bases[p], info, p)
        repository, tag = split_ref(config.base.image)
        base = _upload("base", base_built, f"{registry.prefix}{repository.rsplit('/', 1)[-1]}",
                       (tag,), host, is_base=True)
    return base, images


def split_ref(ref: str) -> tuple[str, str]:
    """(REPOSITORY, TAG) of a ref; a port's colon is not a tag's; no tag: latest."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    name, colon, tag = last.partition(":")
    return (f"{head}/{name}" if head else name), (tag if colon else "latest")


class Tags:
    """Tags made for the push, undone afterwards: a ref that named another image before
    names it again, a new one goes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.made: list[tuple[str, str | None]] = []  # (ref, the ID it named before)

    def point(self, ref: str, image_id: str) -> None:
        before = self.engine.image(ref)
        if before is not None and before.id == image_id:
            return
        self.made.append((ref, before.id if before else None))
        self.engine.tag(image_id, ref)

    def undo(self) -> list[str]:
        """Put every tag back; returns what could not be (the engine's reasons)."""
        problems = []
        for ref, before in reversed(self.made):
            if before is not None:
                self.engine.tag(before, ref)
                continue
            refused = self.engine.remove_image(ref)
            if refused is not None:
                problems.append(f"{ref}: {refused}")
        self.made.clear()
        return problems


@dataclass(frozen=True)
class PushResult:
    selection: Selection
    registry: Registry
    pushed: tuple[tuple[str, Pushed], ...]  # (name, what was pushed), base first
    record: str  # the record file, as messages name it
    log: Path

    def to_data(self) -> Any:
        return {"engine": self.selection.engine.describe(), "registry": self.registry.prefix,
                "record": self.record, "log": str(self.log),
                "images": [{"name": name, "ref": p.ref, "digest": p.digest,
                            "image_id": p.image_id, "tags": list(p.tags),
                            "platforms": {platform: {"digest": one.digest,
                                                     "image_id": one.image_id,
                                                     "tags": list(one.tags)}
                                          for platform, one in sorted(p.platforms.items())}}
                           for name, p in self.pushed]}

    def to_text(self) -> str:
        width = max(len(name) for name, _ in self.pushed)
        lines = [f"{name:<{width}}  {p.ref}  ({', '.join(t.rsplit(':', 1)[1] for t in p.tags)}"
                 + (f"; index of {', '.join(sorted(p.platforms))}" if p.platforms else "")
                 + ")"
                 for name, p in self.pushed]
        lines.append(f"{self.record}: recorded {len(self.pushed)} digests")
        return "\n".join(lines)


def push_all(engine: Engine, registry: Registry, todo: list[Upload], log: BuildLog,
             progress: Progress) -> list[tuple[Upload, Pushed]]:
    """Push every upload (tagging for the registry where needed); the first refusal stops
    it. The tags made for it are undone in every case."""
    tags = Tags(engine)
    done: list[tuple[Upload, Pushed]] = []
    try:
        for upload in todo:
            progress.start(upload.name, f"pushing {upload.repository}")
            if upload.platforms:
                done.append((upload, _push_index(engine, registry, upload, tags, log,
                                                 progress)))
                continue
            digests = []
            for ref in upload.refs:
                tags.point(ref, upload.image.id)
                digests.append(engine.push(ref, log.write, plain_http=registry.plain_http))
            progress.done(upload.name, f"pushed {short_id(upload.image.id)} as "
                          f"{upload.repository}@{digests[0]}")
            if len(set(digests)) > 1:
                log.write(f"# pyrlab: the tags of {upload.name} got different digests: "
                          f"{', '.join(digests)}")
            done.append((upload, Pushed(upload.repository, digests[0],
                                        f"sha256:{upload.image.id}", upload.refs)))
    except RegistryError as exc:
        progress.done(upload.name, "push refused")
        log.write(f"# pyrlab: {exc.message}")
        raise
    finally:
        for problem in tags.undo():
            log.write(f"# pyrlab: could not remove the push tag {problem}")
    return done


def _push_index(engine: Engine, registry: Registry, upload: Upload, tags: Tags,
                log: BuildLog, progress: Progress) -> Pushed:
    """Each platform's image as REPOSITORY:TAG-ARCH, then one index per tag listing them:
    REPOSITORY:TAG is only ever moved to the whole index."""
    entries: dict[Platform, PlatformPushed] = {}
    for platform in sorted(upload.platforms):
        info = upload.platforms[platform]
        refs = tuple(platform_tag(ref, platform) for ref in upload.refs)
        digests = []
        for ref in refs:
            tags.point(ref, info.id)
            digests.append(engine.push(ref, log.write, plain_http=registry.plain_http))
        if len(set(digests)) > 1:
            log.write(f"# pyrlab: the {platform} tags of {upload.name} got different "
                      f"digests: {', '.join(digests)}")
        entries[platform] = PlatformPushed(digests[0], f"sha256:{info.id}", refs)
    indexes = [engine.push_index(ref, {p: e.digest for p, e in entries.items()}, log.write,
                                 plain_http=registry.plain_http)
               for ref in upload.refs]
    if len(set(indexes)) > 1:
        log.write(f"# pyrlab: the indexes of {upload.name} got different digests: "
                  f"{', '.join(indexes)}")
    progress.done(upload.name, f"pushed {', '.join(sorted(entries))} as "
                  f"{upload.repository}@{indexes[0]}")
    return Pushed(upload.repository, indexes[0], f"sha256:{upload.image.id}", upload.refs,
                  entries)


def _resolved(engine: Engine, platforms: Sequence[Platform]) -> tuple[Platform, ...]:
    """Concrete platforms, the engine's own first; (NATIVE,) when that is all there is
    (the local names and the push as they have always been)."""
    if list(platforms) == [NATIVE]:
        return (NATIVE,)
    host = engine.platform()
    concrete = dict.fromkeys(p or host for p in platforms)
    ordered = sorted(concrete, key=lambda p: (p != host, SUPPORTED.index(p)
                                              if p in SUPPORTED else len(SUPPORTED), p))
    return (NATIVE,) if ordered == [host] else tuple(ordered)


def run(args: argparse.Namespace) -> PushResult:
    project = project_from(args)
    config = project.config
    registry = registry_for(config, args.registry)  # refusals before the engine is asked
    wanted = push_platforms(config, getattr(args, "platforms", None) or ())
    selection = select_engine(args.engine, config.engine,
                              config_source=config.source_of("engine"))
    engine = selection.engine
    progress = Progress()
    try:
        progress.note(selection.describe())
        platforms = _resolved(engine, wanted)
        if len(platforms) > 1:
            progress.note(f"pushing {' and '.join(platforms)}: one index per tag")
        base, images = uploads(config, engine, args.images or None, registry, platforms)
        log_path = new_log_path(logs_dir(project.root), "push")
        with BuildLog(log_path) as log:
            try:
                done = push_all(engine, registry, [*([base] if base else []), *images], log,
                                progress)
            except RegistryError as exc:
                raise RegistryError(exc.message, hint=f"{exc.hint}; full log: {log_path}"
                                    if exc.hint else f"full log: {log_path}") from None
    finally:
        progress.close()
    pushed_base = next((p for upload, p in done if upload.is_base), None)
    record = record_pushes(project.root, {u.name: p for u, p in done if not u.is_base},
                           pushed_base)
    return PushResult(selection, registry, tuple((u.name, p) for u, p in done),
                      shown_path(record), log_path)
