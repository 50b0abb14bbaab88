"""The same base on every machine, without an engine or a mirror: the root file system made
deterministic (rootfs.normalize), the image archive and its ID (rootfs.write_archive),
[base] snapshot (its check, the bootstrap's mirror, the apt sources every apt step gets),
and a registry base recorded by digest and used by it in `build --locked`."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import FakeEngine
from labfiles import make_project

from pyrlab import rootfs
from pyrlab.baseimage import base_mirror
from pyrlab.config.project import load_project
from pyrlab.config.readers import load_config
from pyrlab.contents.model import Inventory, Meta
from pyrlab.dockerfile.render import render_context
from pyrlab.ecosystems.debian import gone_hint, snapshot_sources
from pyrlab.errors import BuildError, ConfigError
from pyrlab.imagebuild.executor import BaseOutcome, registry_base_id, use_locked_base
from pyrlab.imagebuild.pins import locked_base_ref

EPOCH = 1795252544  # Sat, 21 Nov 2026 09:15:44 UTC
DIGEST = "sha256:" + "ab" * 32


# --------------------------------------------------------------------------- rootfs
def entry(tar: tarfile.TarFile, name: str, *, data: bytes | None = None,
          kind: bytes = tarfile.REGTYPE, link: str = "", mtime: int = 0, uid: int = 0,
          uname: str = "root") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime, info.uid, info.uname = kind, link, mtime, uid, uname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def debootstrapped(path: Path, *, order: int, now: int, host: str) -> Path:
    """A tiny root file system as a bootstrap on some machine, at some time, might pack it:
    the same packages, in another order, with that moment's logs and that host's files."""
    entries: list[Callable[[tarfile.TarFile], None]] = [
        lambda t: entry(t, "./", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./etc/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./etc/os-release", data=b"ID=debian\n", mtime=1000),
        lambda t: entry(t, "./etc/hostname", data=host.encode(), mtime=now),
        lambda t: entry(t, "./etc/resolv.conf", data=f"search {host}\n".encode(), mtime=now),
        lambda t: entry(t, "./etc/shadow", data=f"root:*:{now // 86400}:0:99999:7:::\n"
                        .encode(), mtime=now),
        lambda t: entry(t, "./usr/", kind=tarfile.DIRTYPE, mtime=now),
        # A hard link whose name sorts before the file it links to.
        lambda t: entry(t, "./usr/zz-perl", data=b"#!perl\n", mtime=1000, uname=host),
        lambda t: entry(t, "./usr/aa-perl", kind=tarfile.LNKTYPE, link="./usr/zz-perl"),
        lambda t: entry(t, "./usr/sh", kind=tarfile.SYMTYPE, link="bash", mtime=now),
        lambda t: entry(t, "./var/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/log/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/log/dpkg.log", data=f"{now} install\n".encode(), mtime=now),
        lambda t: entry(t, "./var/lib/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/lib/apt/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/lib/apt/lists/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/lib/apt/lists/deb_trixie_InRelease", data=b"x", mtime=now),
        lambda t: entry(t, "./var/lib/dpkg/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/lib/dpkg/status", data=b"Package: bash\n", mtime=now),
        lambda t: entry(t, "./var/lib/dpkg/status-old", data=f"{now}".encode(), mtime=now),
        lambda t: entry(t, "./var/cache/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/cache/ldconfig/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./var/cache/ldconfig/aux-cache", data=f"{now}".encode()),
        lambda t: entry(t, "./dev/", kind=tarfile.DIRTYPE, mtime=now),
        lambda t: entry(t, "./dev/null", kind=tarfile.CHRTYPE, mtime=now),
        lambda t: entry(t, "./dev/fd", kind=tarfile.SYMTYPE, link="/proc/self/fd"),
    ]
    if order:
        entries = entries[:1] + entries[:0:-1]  # the root first, the rest reversed
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for add in entries:
            add(tar)
    return path


def names(layer: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_two_bootstraps_of_the_same_packages_give_the_same_layer(tmp_path: Path) -> None:
    one = rootfs.normalize(debootstrapped(tmp_path / "a.tar", order=0, now=EPOCH + 86400 * 9,
                                          host="laptop"), tmp_path / "a-layer.tar", EPOCH)
    two = rootfs.normalize(debootstrapped(tmp_path / "b.tar", order=1, now=EPOCH + 5,
                                          host="ci-runner"), tmp_path / "b-layer.tar", EPOCH)
    assert one == two
    assert (tmp_path / "a-layer.tar").read_bytes() == (tmp_path / "b-layer.tar").read_bytes()
    assert hashlib.sha256((tmp_path / "a-layer.tar").read_bytes()).hexdigest() == one


def test_the_layer_leaves_out_the_machine_and_the_moment(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    rootfs.normalize(debootstrapped(tmp_path / "a.tar", order=0, now=EPOCH + 86400 * 30,
                                    host="laptop"), layer, EPOCH)
    members = names(layer)
    assert list(members) == sorted(members)
    for gone in ("etc/hostname", "etc/resolv.conf", "var/log/dpkg.log", "dev/null",
                 "var/lib/apt/lists/deb_trixie_InRelease", "var/lib/dpkg/status-old",
                 "var/cache/ldconfig/aux-cache", "."):
        assert gone not in members
    for kept in ("var/log", "var/lib/apt/lists", "dev", "dev/fd", "var/lib/dpkg/status"):
        assert kept in members
    assert {m.mtime for m in members.values()} == {EPOCH}
    assert {(m.uname, m.gname) for m in members.values()} == {("", "")}
    # The hard link's data goes with the first name; the other links to it.
    assert members["usr/aa-perl"].isreg() and members["usr/zz-perl"].islnk()
    assert members["usr/zz-perl"].linkname == "usr/aa-perl"
    with tarfile.open(layer) as tar:
        shadow = tar.extractfile("etc/shadow")
        assert shadow is not None
        assert shadow.read() == f"root:*:{EPOCH // 86400}:0:99999:7:::\n".encode()


def test_the_image_id_is_the_digest_of_a_fixed_configuration(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    digest = rootfs.normalize(debootstrapped(tmp_path / "a.tar", order=0, now=EPOCH,
                                             host="h"), layer, EPOCH)
    config = rootfs.ImageConfig(labels={"org.pyrlab.bootstrap": "trixie"})
    first = rootfs.write_archive(layer, digest, config, EPOCH, tmp_path / "one.tar")
    second = rootfs.write_archive(layer, digest, config, EPOCH, tmp_path / "two.tar")
    assert first == second
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        blob = tar.extractfile(manifest[0]["Config"]).read()  # type: ignore[union-attr]
    assert hashlib.sha256(blob).hexdigest() == first
    image = json.loads(blob)
    assert image["created"] == "2026-11-21T09:15:44Z"
    assert image["rootfs"]["diff_ids"] == [f"sha256:{digest}"]
    assert image["config"]["Labels"] == {"org.pyrlab.bootstrap": "trixie"}
    assert manifest[0]["RepoTags"] is None  # tagged by ID after `load`


def test_the_epoch_is_that_of_the_release_file_apt_used(tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        entry(tar, "./var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
              data=b"Origin: Debian\nDate: Sat, 21 Nov 2026 09:15:44 UTC\n")
    assert rootfs.lists_release_epoch(tarball, "bookworm") == EPOCH
    assert rootfs.lists_release_epoch(tarball, "trixie") is None


def test_the_release_date_is_the_epoch() -> None:
    release = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\n"
               "Codename: trixie\nDate: Sat, 21 Nov 2026 09:15:44 UTC\nValid-Until: x\n")
    assert rootfs.release_epoch(release) == EPOCH
    with pytest.raises(ValueError, match="no Date"):
        rootfs.release_epoch("Origin: Debian\n")


# --------------------------------------------------------------------------- snapshot
SNAPSHOT = "20250601T000000Z"


def config_with(tmp_path: Path, base: str) -> Path:
    return make_project(tmp_path / "lab", {
        "pyrlab.toml": f'[base]\nbootstrap = "trixie"\n{base}\n[images.pylab]\n',
        "base_debs.txt": "",
    })


def test_snapshot_is_a_time_stamp_and_not_set_with_a_mirror(tmp_path: Path) -> None:
    root = config_with(tmp_path, f'snapshot = "{SNAPSHOT}"')
    assert load_config(root).base.snapshot == SNAPSHOT
    for bad in ("2025-06-01", "20251301T000000Z", "20250601T000000"):
        (root / "pyrlab.toml").write_text(f'[base]\nsnapshot = "{bad}"\n[images.pylab]\n')
        with pytest.raises(ConfigError, match="base.snapshot: expected a snapshot.debian.org"):
            load_config(root)
    (root / "pyrlab.toml").write_text(
        f'[base]\nsnapshot = "{SNAPSHOT}"\nmirror = "http://m.example/debian"\n'
        "[images.pylab]\n")
    with pytest.raises(ConfigError, match="base.snapshot: set together with base.mirror"):
        load_config(root)


def test_the_bootstrap_takes_debian_from_the_snapshot(tmp_path: Path) -> None:
    base = load_config(config_with(tmp_path, f'snapshot = "{SNAPSHOT}"')).base
    assert base_mirror(base) == (f"http://snapshot.debian.org/archive/debian/{SNAPSHOT}",
                                 "pyrlab.toml [base] snapshot")
    assert base_mirror(base, "http://other.example/debian")[1] == "--mirror"


def test_every_apt_step_gets_the_snapshots_sources(tmp_path: Path) -> None:
    project = load_project(config_with(tmp_path, f'snapshot = "{SNAPSHOT}"'), environ={})
    files = render_context(project, "pylab").files
    expected = snapshot_sources(SNAPSHOT)
    assert files["pyrlab/net/apt/snapshot.sources"][0] == expected
    assert files["pyrlab/net/r/snapshot.sources"][0] == expected  # r-cran-* through apt
    assert expected.decode().split("\n", 1)[1] == (
        "Types: deb\n"
        f"URIs: http://snapshot.debian.org/archive/debian/{SNAPSHOT}\n"
        "Suites: @VERSION_CODENAME@ @VERSION_CODENAME@-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "Check-Valid-Until: no\n"
        "\n"
        "Types: deb\n"
        f"URIs: http://snapshot.debian.org/archive/debian-security/{SNAPSHOT}\n"
        "Suites: @VERSION_CODENAME@-security\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "Check-Valid-Until: no\n")
    # Another snapshot is another input: the image is built again.
    other = load_project(config_with(tmp_path / "2", 'snapshot = "20240101T000000Z"'),
                         environ={})
    assert render_context(other, "pylab").input_hash != render_context(project, "pylab").input_hash
    plain = load_project(config_with(tmp_path / "3", ""), environ={})
    assert not any(p.endswith("snapshot.sources") for p in render_context(plain, "pylab").files)


def test_a_locked_version_gone_says_how_to_build_from_a_snapshot() -> None:
    hint = gone_hint("pyrlab.lock")
    assert 'snapshot = "YYYYMMDDTHHMMSSZ"' in hint and "snapshot.debian.org" in hint


# --------------------------------------------------------------------------- registry base
def test_a_registry_base_is_recorded_by_its_digest() -> None:
    digests = ["docker.io/library/python@" + DIGEST, "registry.example/python@sha256:" + "0" * 64]
    assert registry_base_id("python:3.14-trixie", digests) == "docker.io/library/python@" + DIGEST
    assert registry_base_id("docker.io/library/python:3.14", digests[:1]) == \
        "docker.io/library/python@" + DIGEST
    assert registry_base_id("registry.example/python:3", digests).endswith("0" * 64)
    assert registry_base_id("localhost:5000/python:3", digests) == ""  # none from there
    assert registry_base_id("python:3", []) == ""  # built or loaded here: its ID is recorded
    pulled = BaseOutcome("python:3", "pulled", "c" * 64, digest_ref="python@" + DIGEST)
    assert pulled.recorded == "python@" + DIGEST
    assert BaseOutcome("x:y", "bootstrapped", "c" * 64).recorded == "sha256:" + "c" * 64


def inventory(name: str, base_id: str) -> Inventory:
    return Inventory(Meta(image=name, input_hash="h", pyrlab_version="1", base_id=base_id,
                          os="Debian", os_id="debian", os_version="13", python="3.13"))


def test_locked_takes_the_base_the_lock_names_by_digest(tmp_path: Path) -> None:
    root = make_project(tmp_path / "lab", {
        "pyrlab.toml": '[base]\nimage = "python:3.14-trixie"\n[images.pyrlab-base]\n'
                       '[images.pylab]\nfrom = "pyrlab-base"\n',
        "base_debs.txt": ""})
    project = load_project(root, environ={})
    ref = "docker.io/library/python@" + DIGEST
    lock = {"pyrlab-base": inventory("pyrlab-base", ref),
            "pylab": inventory("pylab", "sha256:" + "d" * 64)}
    assert locked_base_ref(project, lock) == ref
    assert locked_base_ref(project, {"pyrlab-base": inventory("x", "sha256:" + "e" * 64)}) is None
    booted = load_project(config_with(tmp_path / "b", ""), environ={})
    assert locked_base_ref(booted, {"pylab": inventory("pylab", ref)}) is None


def registry_engine(registry: dict[str, str], local: dict[str, str]) -> FakeEngine:
    """An engine whose pulls come from a registry in memory; records what it was asked."""
    engine = FakeEngine(tags=local)
    engine.registry = registry
    return engine


def test_locked_pulls_the_base_by_digest_and_names_it_as_the_config_does() -> None:
    locked = "docker.io/library/python@" + DIGEST
    # The tag moved on in the registry and here; the lock's digest is what the build uses.
    engine = registry_engine({locked: "1" * 64}, {"python:3.14-trixie": "2" * 64})
    assert use_locked_base(engine, "python:3.14-trixie", locked, print) == "1" * 64
    assert engine.calls == [("pull", locked), ("tag", locked, "python:3.14-trixie")]
    assert engine.refs["python:3.14-trixie"] == "1" * 64
    engine.calls.clear()
    use_locked_base(engine, "python:3.14-trixie", locked, print)  # there already: nothing
    assert engine.calls == []
    gone = registry_engine({}, {})
    with pytest.raises(BuildError, match="the base image pyrlab.lock names, .* cannot be pulled"):
        use_locked_base(gone, "python:3.14-trixie", locked, print)
