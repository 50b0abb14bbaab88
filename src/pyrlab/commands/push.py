"""`pyrlab push [IMAGE…] [--registry HOST[:PORT]/NAMESPACE]`: send built images to a registry.

Each image goes as `latest` and as its base tag (`pylab:3.14-trixie`), parents before
children, and with them the base image when it was bootstrapped here (`pyrlab bootstrap`):
a teammate who pulls it builds on the very same base, so their build's cache keys match
(see `build --cache-from`). The digests the registry answered go to pyrlab.pushed.toml
beside pyrlab.lock (the lock and its diff are not touched).

Nothing local changes: where the registry is not the config's `prefix`, the images are
tagged for it only while they are pushed, and those tags go again (a tag that existed
before points where it pointed), whether the push worked or not.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.baseimage import LABEL_SUITE
from pyrlab.commands._common import project_from
from pyrlab.config.model import Config
from pyrlab.config.project import build_order
from pyrlab.config.validators import PREFIX_RE
from pyrlab.contents.images import shown_path
from pyrlab.contents.pushed import Pushed, record_pushes
from pyrlab.credentials import is_loopback_url
from pyrlab.engines.base import Engine, ImageInfo, short_id
from pyrlab.engines.select import Selection, add_engine_argument, select_engine
from pyrlab.errors import NotBuiltError, RegistryError, UsageError
from pyrlab.imagebuild.logs import BuildLog, logs_dir, new_log_path
from pyrlab.imagebuild.planner import RESERVED_TAGS
from pyrlab.imagebuild.progress import Progress

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
    add_engine_argument(parser)


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
    image: ImageInfo
    repository: str  # REGISTRY/NAMESPACE/NAME
    tags: tuple[str, ...]  # e.g. ("latest", "3.14-trixie")
    is_base: bool = False  # the bootstrapped base image, not one of the graph

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(f"{self.repository}:{tag}" for tag in self.tags)


def _image_tags(config: Config) -> tuple[str, ...]:
    """The tags every graph image is pushed as: latest and the base tag (as builds tag)."""
    base_tag = config.base.tag
    return ("latest",) if base_tag in RESERVED_TAGS else ("latest", base_tag)


def uploads(config: Config, engine: Engine, names: list[str] | None,
            registry: Registry) -> tuple[Upload | None, list[Upload]]:
    """(the bootstrapped base or None, the graph images), parents first. Named images must
    be built; without names, the graph's built images."""
    order = build_order(config, names)
    infos = engine.images_by_ref([config.base.image,
                                  *(config.image_ref(name) for name in order)])
    images = []
    missing = []
    for name in order:
        info = infos[config.image_ref(name)]
        if info is None:
            missing.append(name)
            continue
        images.append(Upload(name, info, f"{registry.prefix}{name}", _image_tags(config)))
    if missing and (names or not images):
        raise NotBuiltError(f"not built: {', '.join(config.image_ref(n) for n in missing)}",
                            hint=f"`pyrlab build {' '.join(missing)}` first")
    base_info = infos[config.base.image]
    base = None
    if base_info is not None and LABEL_SUITE in base_info.labels:
        repository, tag = split_ref(config.base.image)
        base = Upload("base", base_info,
                      f"{registry.prefix}{repository.rsplit('/', 1)[-1]}", (tag,), is_base=True)
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
                            "image_id": p.image_id, "tags": list(p.tags)}
                           for name, p in self.pushed]}

    def to_text(self) -> str:
        width = max(len(name) for name, _ in self.pushed)
        lines = [f"{name:<{width}}  {p.ref}  ({', '.join(t.rsplit(':', 1)[1] for t in p.tags)})"
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


def run(args: argparse.Namespace) -> PushResult:
    project = project_from(args)
    config = project.config
    registry = registry_for(config, args.registry)  # refusals before the engine is asked
    selection = select_engine(args.engine, config.engine,
                              config_source=config.source_of("engine"))
    engine = selection.engine
    progress = Progress()
    try:
        progress.note(selection.describe())
        base, images = uploads(config, engine, args.images or None, registry)
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
