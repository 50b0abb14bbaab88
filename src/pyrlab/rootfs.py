"""A root file system tarball made into an image archive that is the same, byte for byte,
wherever and whenever it is made from the same packages.

`normalize` rewrites the tarball mmdebstrap or debootstrap wrote: entries sorted by name,
every time stamp the given epoch (the Release file's date), owners as numbers only, and
what describes the machine or the moment of the bootstrap left out (logs, apt's lists and
caches, ld.so's aux-cache, the host's resolv.conf and hostname, device nodes, the day in
/etc/shadow). `write_archive` packs that layer with a fixed image configuration into the
archive `docker load` and `podman load` read (manifest.json). An image's ID is the digest
of its configuration, which names the layer's digest: same bytes, same ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from pyrlab.platforms import goarch

# Left out: the files in these folders (the folders stay).
EMPTIED = ("var/log/", "var/lib/apt/lists/", "var/cache/apt/", "tmp/", "var/tmp/", "run/",
           "dev/")
# Left out: these files.
DROPPED = frozenset({
    "etc/machine-id", "var/lib/dbus/machine-id", "etc/hostname", "etc/resolv.conf",
    "var/cache/ldconfig/aux-cache", "etc/apt/apt.conf.d/99mmdebstrap",
})
# `dpkg` and debconf keep the previous version of their databases: the bootstrap's steps.
OLD_SUFFIX = "-old"
SHADOW = frozenset({"etc/shadow", "etc/shadow-"})
CHUNK = 1 << 20


def release_epoch(release: str) -> int:
    """The `Date:` of a Debian Release (or InRelease) file, in seconds since 1970."""
    for line in release.splitlines():
        if line.startswith("Date:"):
            return int(parsedate_to_datetime(line[5:].strip()).timestamp())
    raise ValueError("the Release file has no Date field")


def lists_release_epoch(tarball: Path, suite: str) -> int | None:
    """The Date of the suite's Release file that apt used inside the bootstrap (its lists,
    still in the tarball): the mirror state the packages came from. None without one."""
    ends = (f"_dists_{suite}_InRelease", f"_dists_{suite}_Release")
    with tarfile.open(tarball, "r:") as tar:
        for member in tar:
            name = _name(member.name)
            if (member.isreg() and name.startswith("var/lib/apt/lists/")
                    and name.endswith(ends)):
                data = tar.extractfile(member)
                if data is not None:
                    try:
                        return release_epoch(data.read().decode("utf-8", errors="replace"))
                    except ValueError:
                        return None
    return None


def _name(raw: str) -> str:
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/").rstrip("/")
    return "" if name == "." else name


def _dropped(name: str, member: tarfile.TarInfo) -> bool:
    if name in DROPPED:
        return True
    if any(name.startswith(folder) for folder in EMPTIED):
        # Folders stay (/run/lock, /var/log/apt, apt's partial/), and /dev's links.
        return not (member.isdir() or (name.startswith("dev/") and member.issym()))
    parent, _, base = name.rpartition("/")
    if base.endswith(OLD_SUFFIX) and parent in ("var/lib/dpkg", "var/cache/debconf"):
        return True
    return member.ischr() or member.isblk() or member.isfifo()


def shadow_days(content: bytes, epoch: int) -> bytes:
    """/etc/shadow with each entry's "last changed" day set to the epoch's day."""
    day = str(epoch // 86400).encode()
    lines = []
    for line in content.split(b"\n"):
        fields = line.split(b":")
        if len(fields) >= 3 and fields[2].isdigit():
            fields[2] = day
        lines.append(b":".join(fields))
    return b"\n".join(lines)


def _xattrs(member: tarfile.TarInfo) -> dict[str, str]:
    return {k: v for k, v in sorted(member.pax_headers.items())
            if k.startswith("SCHILY.xattr.") and k != "SCHILY.xattr.security.selinux"}


def normalize(source: Path, target: Path, epoch: int) -> str:
    """Write `source`'s entries to `target` as a deterministic layer; returns its sha256."""
    with tarfile.open(source, "r:") as tar:
        members: dict[str, tarfile.TarInfo] = {}
        for member in tar:
            name = _name(member.name)
            if name and not _dropped(name, member):
                members[name] = member  # a later entry of the same name wins, as on unpacking
        first_of: dict[str, str] = {}  # a hard link's target -> the name written in full
        with target.open("wb") as out, tarfile.open(
                fileobj=out, mode="w:", format=tarfile.PAX_FORMAT,
                encoding="utf-8") as layer:
            for name in sorted(members):
                member = members[name]
                info = tarfile.TarInfo(name)
                info.mode = member.mode
                info.uid, info.gid = member.uid, member.gid
                info.uname = info.gname = ""
                info.mtime = epoch
                info.pax_headers = _xattrs(member)
                data: io.BufferedReader | io.BytesIO | None = None
                if member.islnk():
                    linked = _name(member.linkname)
                    if linked in first_of:
                        info.type, info.linkname = tarfile.LNKTYPE, first_of[linked]
                    else:
                        # Its target sorts later (or is left out): this one carries the data.
                        original = members.get(linked)
                        if original is None or not original.isreg():
                            continue
                        first_of[linked] = name
                        info.type, info.size = tarfile.REGTYPE, original.size
                        data = tar.extractfile(original)  # type: ignore[assignment]
                elif member.isreg() and first_of.get(name, name) != name:
                    # An earlier hard link to it carried the data.
                    info.type, info.linkname = tarfile.LNKTYPE, first_of[name]
                elif member.isreg():
                    first_of[name] = name
                    info.type, info.size = tarfile.REGTYPE, member.size
                    data = tar.extractfile(member)  # type: ignore[assignment]
                elif member.isdir():
                    info.type = tarfile.DIRTYPE
                elif member.issym():
                    info.type, info.linkname = tarfile.SYMTYPE, member.linkname
                else:
                    continue
                if info.isreg() and name in SHADOW and data is not None:
                    content = shadow_days(data.read(), epoch)
                    info.size, data = len(content), io.BytesIO(content)
                layer.addfile(info, data)
    return file_digest(target)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def architecture() -> str:
    return goarch(platform.machine())


def timestamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ImageConfig:
    labels: dict[str, str]
    cmd: tuple[str, ...] = ("/bin/bash",)
    comment: str = ""

    def render(self, layer_digest: str, epoch: int, arch: str = "") -> bytes:
        """The image configuration: no host name, no time but the epoch. `arch`: the
        GOARCH its files are built for ("arm64"), what the engines match a build's or a
        run's --platform against; "" for the host's. Written without a variant, as an
        arm64 host writes its own: the same packages give the same ID wherever they were
        bootstrapped."""
        config = {
            "architecture": arch or architecture(),
            "config": {"Cmd": list(self.cmd), "Labels": dict(sorted(self.labels.items()))},
            "created": timestamp(epoch),
            "history": [{"created": timestamp(epoch), "created_by": "pyrlab bootstrap",
                         **({"comment": self.comment} if self.comment else {})}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        }
        return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _entries(config: bytes, config_digest: str, layer: Path,
             layer_digest: str) -> Iterator[tuple[str, bytes | Path]]:
    yield "blobs/sha256/" + config_digest, config
    yield "blobs/sha256/" + layer_digest, layer
    manifest = [{"Config": f"blobs/sha256/{config_digest}", "RepoTags": None,
                 "Layers": [f"blobs/sha256/{layer_digest}"]}]
    yield "manifest.json", json.dumps(manifest, separators=(",", ":")).encode()


def write_archive(layer: Path, layer_digest: str, config: ImageConfig, epoch: int,
                  target: Path, arch: str = "") -> str:
    """An archive for `docker load`/`podman load` of one untagged image with that layer,
    for `arch` (GOARCH; "" for the host's); returns the image's ID (the configuration's
    sha256)."""
    config_bytes = config.render(layer_digest, epoch, arch)
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    with tarfile.open(target, "w:", format=tarfile.USTAR_FORMAT) as tar:
        for folder in ("blobs/", "blobs/sha256/"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for name, content in _entries(config_bytes, config_digest, layer, layer_digest):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o644, epoch
            if isinstance(content, Path):
                info.size = content.stat().st_size
                with content.open("rb") as f:
                    tar.addfile(info, f)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return config_digest
