"""A Debian base for another platform, for real (issue 23, step 2): `pyrlab bootstrap
--platform linux/arm64` on an amd64 machine (linux/amd64 on an arm64 one) runs mmdebstrap
under qemu-user emulation and loads an image that the engine says is arm64, named
`PREFIX/debian/arm64:trixie`. Its programs are arm64's, and a build for linux/arm64
starts FROM it without asking a registry (there is none here).

It needs emulation registered with binfmt_misc (`.ci/setup-host.sh`): skipped without it,
failed in CI. About 2.5 minutes on the 2-core CI machine (mmdebstrap under qemu: 130 s).

A registry base for each platform, for real against Debian's `docker-registry` on
127.0.0.1 (test_push.py's): a two-platform index of two tiny images (FROM scratch, so no
emulation is needed), pulled by tag and by the index digest for each platform in turn.
Docker 20.10 keeps one image per name and per digest: the host's name must still be the
host's image after each pull of the other platform's (pyrlab puts it back). Seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labtools import BASE_REF, EngineCli, ForeignBase
from test_push import start_registry, stop

from pyrlab.baseimage import pull_base
from pyrlab.engines.select import select_engine
from pyrlab.imagebuild.executor import use_locked_base
from pyrlab.platforms import SUPPORTED, host_platform, qemu_name, token

pytestmark = pytest.mark.integration

HOST = host_platform()
FOREIGN = next((p for p in SUPPORTED if p != HOST), "")


@pytest.fixture
def made(engine: EngineCli) -> Iterator[list[str]]:
    """Images the test makes, removed after it (by name or ID)."""
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        if engine.image(ref) is not None:
            engine("rmi", ref, check=False)


def test_bootstrap_for_another_platform_gives_its_base(
        engine: EngineCli, engine_name: str, foreign_bases: Callable[[str], ForeignBase],
        made: list[str], tmp_path: Path) -> None:
    foreign = foreign_bases(engine_name)  # the session's, which the platform's labs use
    emulated, local = foreign.platform, foreign.ref
    arch = token(emulated)
    assert local == BASE_REF.replace(":", f"/{arch}:")
    if foreign.bootstrap:  # (a base kept from an earlier session was not made now)
        data = foreign.bootstrap
        assert (data["ref"], data["platform"], data["tool"]) == (local, emulated,
                                                                 "mmdebstrap")
        inspect = json.loads(engine("image", "inspect", local).stdout)[0]
        assert inspect["Id"].removeprefix("sha256:") == data["id"]
        print(f"bootstrap of trixie for {emulated}: {foreign.seconds:.0f}s "
              f"(pyrlab said {data['seconds']}s)")
    inspect = json.loads(engine("image", "inspect", local).stdout)[0]
    assert f"{inspect['Os']}/{inspect['Architecture']}" == emulated
    # The host's name is the host's image (the session's base), not this one.
    host_id = engine.image_id(BASE_REF)
    assert host_id is None or host_id != inspect["Id"].removeprefix("sha256:")

    ran = engine("run", "--rm", "--network", "none", "--platform", emulated, local,
                 "sh", "-c", "uname -m; dpkg --print-architecture").stdout.split()
    assert ran == [qemu_name(emulated), arch]

    # A build for the platform starts FROM it: the engine takes the local image (no
    # registry is reachable here), and runs the step under emulation.
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {local}\nRUN uname -m > /built-on\n")
    iidfile = tmp_path / "iid"
    engine("buildx", "build", "--load", "--platform", emulated, "--iidfile", str(iidfile),
           str(context))
    child = iidfile.read_text().strip()
    made.insert(0, child)
    child_inspect = json.loads(engine("image", "inspect", child).stdout)[0]
    assert child_inspect["Architecture"] == arch
    assert engine("run", "--rm", "--network", "none", "--platform", emulated, child,
                  "cat", "/built-on").stdout.strip() == qemu_name(emulated)


def pushed_index(engine: EngineCli, repo: str, tmp_path: Path) -> tuple[dict[str, str], str]:
    """({platform: image ID}, index digest) of a tiny image per supported platform, pushed
    to `repo` and listed in one index at `repo:multi`."""
    ids, digests = {}, []
    for platform in SUPPORTED:
        context = tmp_path / token(platform)
        context.mkdir(parents=True)
        (context / "arch").write_text(platform)
        (context / "Dockerfile").write_text("FROM scratch\nCOPY arch /arch\n")
        iidfile = tmp_path / f"{token(platform)}.iid"
        engine("buildx", "build", "--load", "--platform", platform, "--iidfile", str(iidfile),
               str(context))
        ids[platform] = iidfile.read_text().strip().removeprefix("sha256:")
        tag = f"{repo}:{token(platform)}"
        engine("tag", ids[platform], tag)
        pushed = engine("push", tag).stdout
        digests.append(f"{repo}@" + pushed.rsplit("digest: ", 1)[1].split()[0])
        engine("rmi", tag)  # the pulls below start with no name on it
    engine("manifest", "create", "--insecure", f"{repo}:multi", *digests)
    index = engine("manifest", "push", "--insecure", "--purge", f"{repo}:multi").stdout.strip()
    assert index.startswith("sha256:"), index
    return ids, index


def test_a_registry_base_is_pulled_for_each_platform(
        engine: EngineCli, lab_prefix: str, tmp_path: Path) -> None:
    if not FOREIGN or HOST not in SUPPORTED:
        pytest.skip(f"no other platform on {HOST}")
    registry = start_registry(tmp_path / "registry")
    repo = f"{registry.host}/{lab_prefix.rstrip('/')}/base"
    made: list[str] = []
    try:
        ids, index = pushed_index(engine, repo, tmp_path / "images")
        made += ids.values()
        pyrlab = select_engine(engine.name, "auto").engine
        ref, foreign_ref = f"{repo}:multi", f"{repo}/{token(FOREIGN)}:multi"

        assert pull_base(pyrlab, ref, print).id == ids[HOST]
        got = pull_base(pyrlab, ref, print, platform=FOREIGN)
        assert (got.id, got.platform) == (ids[FOREIGN], FOREIGN)
        assert engine.image_id(foreign_ref) == ids[FOREIGN]
        # The pull moved the tag to the other platform's image; pyrlab put it back.
        assert engine.image_id(ref) == ids[HOST]

        # Locked by the index digest: one digest, each platform its own image, in turn.
        locked = f"{repo}@{index}"
        for platform in (HOST, FOREIGN, HOST):
            assert use_locked_base(pyrlab, ref, locked, print, platform) == ids[platform]
            assert engine.image_id(ref) == ids[HOST]
            assert engine.image_id(foreign_ref) == ids[FOREIGN]
    finally:
        for image_id in made:
            engine("rmi", "--force", image_id, check=False)  # every name on it goes too
        stop(registry)
