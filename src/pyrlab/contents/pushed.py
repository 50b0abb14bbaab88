"""pyrlab.pushed.toml: where `pyrlab push` last sent each image, by digest.

A file of its own beside pyrlab.lock, so that pushing never touches the lock or its diff
(`pyrlab diff` reads only the lock). One table per image, and one for the bootstrapped base
when it was pushed:

    [images.pylab]
    ref = "registry.example.org/team/pylab@sha256:…"     # what a deployment should pull
    digest = "sha256:…"
    image-id = "sha256:…"
    tags = ["registry.example.org/team/pylab:latest", "registry.example.org/team/pylab:trixie"]

An image pushed for several platforms is one index (manifest list) per tag: `ref` and
`digest` name that index, from which each machine pulls its own platform's image, and
`image-id` is the engine's own platform's image. Each platform's image, pushed under tags
of its own (`latest-arm64`), gets a table below the image's:

    [images.pylab.platforms."linux/arm64"]
    digest = "sha256:…"                                   # that platform's manifest
    image-id = "sha256:…"
    tags = ["registry.example.org/team/pylab:latest-arm64", …]

A pyrlab that knows no platforms reads the four keys above and ignores that table.

`pushed_refs(root)` gives {image: ref@digest} for other writers (JupyterHub profiles,
compose files).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyrlab.errors import ConfigError, Problem
from pyrlab.platforms import Platform, UnknownPlatform, parse
from pyrlab.safewrite import write_file

PUSHED_NAME = "pyrlab.pushed.toml"
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
BASE_KEY = "base"  # the table of the bootstrapped base image
HEADER = (f"# {PUSHED_NAME} — where `pyrlab push` last sent each image, by digest; written by"
          " `pyrlab push`.\n# Deployments pull `ref`: it names exactly the image that was"
          " pushed.\n")


@dataclass(frozen=True)
class PlatformPushed:
    """One platform's image of an image pushed for several, as the registry holds it."""

    digest: str  # its manifest's digest, "sha256:…" (an entry of the index)
    image_id: str  # the local image's ID, "sha256:…" (the same after a pull for it)
    tags: tuple[str, ...]  # the REPOSITORY:TAG-ARCH it was pushed as


@dataclass(frozen=True)
class Pushed:
    """One image as a registry now holds it."""

    repository: str  # REGISTRY/NAMESPACE/NAME, without tag
    # The digest the registry answered: the image's manifest, or, for several platforms,
    # the index that lists each platform's manifest ("sha256:…").
    digest: str
    image_id: str  # the local image's ID, "sha256:…" (the same after a pull)
    tags: tuple[str, ...]  # every REPOSITORY:TAG pushed
    # Pushed for several platforms: each one's image, the index's entries ({} for one).
    platforms: Mapping[Platform, PlatformPushed] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class PushRecord:
    images: Mapping[str, Pushed]  # graph image name → what was pushed
    base: Pushed | None = None


def pushed_path(root: Path) -> Path:
    return root / PUSHED_NAME


def _quoted(value: str) -> str:
    # Refs, digests and tags are [A-Za-z0-9._:/@-]; quote anything else safely all the same.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_record(record: PushRecord) -> str:
    """The file's text: sorted, so that the same pushes give the same bytes."""
    out = [HEADER]

    def table(header: str, pushed: Pushed) -> None:
        out.append(f"\n[{header}]\n")
        out.append(f"ref = {_quoted(pushed.ref)}\n")
        out.append(f"digest = {_quoted(pushed.digest)}\n")
        out.append(f"image-id = {_quoted(pushed.image_id)}\n")
        out.append("tags = [" + ", ".join(_quoted(t) for t in pushed.tags) + "]\n")
        for platform in sorted(pushed.platforms):
            one = pushed.platforms[platform]
            out.append(f"\n[{header}.platforms.{_quoted(platform)}]\n")
            out.append(f"digest = {_quoted(one.digest)}\n")
            out.append(f"image-id = {_quoted(one.image_id)}\n")
            out.append("tags = [" + ", ".join(_quoted(t) for t in one.tags) + "]\n")

    if record.base is not None:
        table(BASE_KEY, record.base)
    for name in sorted(record.images):
        key = name if _BARE_KEY_RE.fullmatch(name) else _quoted(name)
        table(f"images.{key}", record.images[name])
    return "".join(out)


def _pushed(data: object, where: str, shown: str) -> Pushed:
    if not isinstance(data, dict):
        raise ConfigError(Problem(shown, f"{where}: expected a table"))
    ref, digest, image_id, tags = (data.get(k) for k in ("ref", "digest", "image-id", "tags"))
    if not (isinstance(ref, str) and isinstance(digest, str) and isinstance(image_id, str)
            and isinstance(tags, list) and all(isinstance(t, str) for t in tags)
            and ref.endswith(f"@{digest}")):
        raise ConfigError(Problem(shown, f"{where}: expected ref = REPOSITORY@DIGEST, digest, "
                                  "image-id and tags"),
                          hint=f"delete {PUSHED_NAME}; the next `pyrlab push` writes it again")
    return Pushed(ref.removesuffix(f"@{digest}"), digest, image_id, tuple(tags),
                  _platforms(data.get("platforms", {}), f"{where}.platforms", shown))


def _platforms(data: object, where: str, shown: str) -> dict[Platform, PlatformPushed]:
    if not isinstance(data, dict):
        raise ConfigError(Problem(shown, f"{where}: expected a table"))
    found = {}
    for key, value in data.items():
        try:
            platform = parse(key)
        except UnknownPlatform as exc:
            raise ConfigError(Problem(shown, f"{where}: {exc}")) from None
        digest, image_id, tags = (value.get(k) for k in ("digest", "image-id", "tags")) \
            if isinstance(value, dict) else (None, None, None)
        if not (isinstance(digest, str) and isinstance(image_id, str)
                and isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise ConfigError(Problem(shown, f"{where}.{_quoted(key)}: expected digest, "
                                      "image-id and tags"),
                              hint=f"delete {PUSHED_NAME}; the next `pyrlab push` writes it "
                              "again")
        found[platform] = PlatformPushed(digest, image_id, tuple(tags))
    return found


def read_record(root: Path) -> PushRecord:
    """The record, or an empty one when nothing was pushed yet. ConfigError (naming the
    file) when it cannot be read."""
    path = pushed_path(root)
    shown = PUSHED_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return PushRecord({})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(Problem(shown, f"cannot read: {exc}"),
                          hint=f"delete {PUSHED_NAME}; the next `pyrlab push` writes it again"
                          ) from None
    images = data.get("images", {})
    if not isinstance(images, dict):
        raise ConfigError(Problem(shown, "images: expected a table"))
    base = data.get(BASE_KEY)
    return PushRecord(
        {name: _pushed(value, f"images.{name}", shown) for name, value in images.items()},
        _pushed(base, BASE_KEY, shown) if base is not None else None)


def write_record(root: Path, record: PushRecord) -> Path:
    """Write the record atomically (readers see the old file or the new one); the file is
    pyrlab's own, replaced by every push."""
    path = pushed_path(root)
    write_file(path, render_record(record), force=True, shown=PUSHED_NAME)
    return path


def record_pushes(root: Path, images: Mapping[str, Pushed], base: Pushed | None) -> Path:
    """Add what one push sent to the record: its images replace their tables, the others
    stay (an image pushed earlier, alone)."""
    before = read_record(root)
    return write_record(root, PushRecord({**before.images, **images},
                                         base if base is not None else before.base))


def pushed_refs(root: Path) -> dict[str, str]:
    """{image name: REPOSITORY@DIGEST} of every image the project pushed: what a JupyterHub
    profile or a compose file should name (an image pushed for several platforms: its
    index, from which each machine pulls its own)."""
    return {name: pushed.ref for name, pushed in read_record(root).images.items()}
