"""pyrlab.pushed.toml: where `pyrlab push` last sent each image, by digest.

A file of its own beside pyrlab.lock, so that pushing never touches the lock or its diff
(`pyrlab diff` reads only the lock). One table per image, and one for the bootstrapped base
when it was pushed:

    [images.pylab]
    ref = "registry.example.org/team/pylab@sha256:…"     # what a deployment should pull
    digest = "sha256:…"
    image-id = "sha256:…"
    tags = ["registry.example.org/team/pylab:latest", "registry.example.org/team/pylab:trixie"]

`pushed_refs(root)` gives {image: ref@digest} for other writers (JupyterHub profiles,
compose files).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyrlab.errors import ConfigError, Problem
from pyrlab.safewrite import write_file

PUSHED_NAME = "pyrlab.pushed.toml"
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
BASE_KEY = "base"  # the table of the bootstrapped base image
HEADER = (f"# {PUSHED_NAME} — where `pyrlab push` last sent each image, by digest; written by"
          " `pyrlab push`.\n# Deployments pull `ref`: it names exactly the image that was"
          " pushed.\n")


@dataclass(frozen=True)
class Pushed:
    """One image as a registry now holds it."""

    repository: str  # REGISTRY/NAMESPACE/NAME, without tag
    digest: str  # the manifest digest the registry answered, "sha256:…"
    image_id: str  # the local image's ID, "sha256:…" (the same after a pull)
    tags: tuple[str, ...]  # every REPOSITORY:TAG pushed

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
    return Pushed(ref.removesuffix(f"@{digest}"), digest, image_id, tuple(tags))


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
    profile or a compose file should name."""
    return {name: pushed.ref for name, pushed in read_record(root).images.items()}
