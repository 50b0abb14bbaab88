"""Another platform's image on this machine's engines, through pyrlab's engine classes
(issue 23, step 4): a build with BuildRequest.platform gives an image of that platform, a
build FROM it needs the platform too (else BuildKit looks for it in a registry), and a run
with RunRequest.platform runs its programs under emulation, as the machine's binfmt_misc
promises (engines/emulation.py).

The image is one file, busybox, from Debian's busybox-static package for the other platform
(no registry needed): `FROM scratch` + `COPY busybox /`."""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from labtools import EngineCli, engine_unavailable

from pyrlab.baseimage import host_mirror
from pyrlab.engines.base import BuildRequest, Engine, RunRequest
from pyrlab.engines.docker import find as find_docker
from pyrlab.engines.emulation import host_problem
from pyrlab.engines.podman import Podman
from pyrlab.platforms import SUPPORTED, debian_arch, host_platform, qemu_name

HOST = host_platform()
FOREIGN = next((p for p in SUPPORTED if p != HOST), "")


def _fetch_deb(arch: str, to: Path) -> None:
    """The busybox-static .deb for `arch` from the host's mirror: the host's own version,
    named as apt names the host's (without the binNMU suffix where `arch` has none)."""
    shown = subprocess.run(["apt-cache", "show", "--no-all-versions", "busybox-static"],
                           capture_output=True, text=True, check=False).stdout
    found = re.search(r"^Filename: (\S+)_[a-z0-9]+\.deb$", shown, re.MULTILINE)
    if found is None:
        pytest.skip("apt knows no busybox-static here (a Debian host's apt does)")
    mirror = host_mirror() or "http://deb.debian.org/debian"
    stem = found.group(1)
    for name in dict.fromkeys([stem, re.sub(r"\+b\d+$", "", stem)]):
        try:
            with urllib.request.urlopen(f"{mirror}/{name}_{arch}.deb", timeout=120) as answer:
                to.write_bytes(answer.read())
            return
        except urllib.error.HTTPError:
            continue
    pytest.fail(f"{mirror} has no {stem}_{arch}.deb")


@pytest.fixture(scope="module")
def busybox_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build context with the other platform's busybox as its only file."""
    if not FOREIGN:
        pytest.skip(f"pyrlab builds no other platform on {HOST}")
    problem = host_problem(FOREIGN, HOST)
    if problem is not None:  # .ci/setup-host.sh --tests sets emulation up
        engine_unavailable(f"no emulation here: {problem}")
    folder = tmp_path_factory.mktemp("busybox")
    deb = folder / "busybox-static.deb"
    _fetch_deb(debian_arch(FOREIGN), deb)
    unpacked = folder / "x"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    context = folder / "context"
    context.mkdir()
    (unpacked / "bin" / "busybox").rename(context / "busybox")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY busybox /\n")
    return context


@pytest.fixture
def made(engine: EngineCli) -> Iterator[list[str]]:
    """The images (IDs, tags) a test makes, removed after it, last first."""
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        engine("rmi", "--force", ref, check=False)


def pyrlab_engine(engine: EngineCli) -> Engine:
    """pyrlab's own class for the engine under test."""
    return find_docker() if engine.name == "docker" else Podman(engine.binary)


def build(engine: Engine, context: Path, platform: str, made: list[str]) -> str:
    lines: list[str] = []
    code, image_id = engine.build(BuildRequest(context, platform=platform), lines.append)
    assert code == 0 and image_id, "\n".join(lines[-20:])
    made.append(image_id)
    assert f"--platform {platform}" in lines[0]  # the argv, as the build log shows it
    return image_id


def uname(engine: Engine, image: str, platform: str, name: str) -> str:
    argv = engine.run_argv(RunRequest(image=image, name=name, platform=platform, detach=False,
                                      remove=True, command=("/busybox", "uname", "-m")))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("engine_name", ["docker", "podman"], indirect=True)
def test_an_image_of_another_platform_is_built_and_runs_under_emulation(
        engine: EngineCli, made: list[str], busybox_context: Path, tmp_path: Path) -> None:
    real_engine = pyrlab_engine(engine)
    image_id = build(real_engine, busybox_context, FOREIGN, made)
    info = real_engine.image(image_id)
    assert info is not None and info.platform == FOREIGN
    assert uname(real_engine, image_id, FOREIGN, f"pyrlab-emulation-{tmp_path.name}") == \
        qemu_name(FOREIGN)
    # A step of a build FROM it runs under emulation too; the local parent is found only
    # with the platform named (BuildKit looks for another platform's parent in a registry).
    ref = f"localhost/pyrlab-test-emulation-{tmp_path.name}/{FOREIGN.split('/')[1]}:busybox"
    real_engine.tag(image_id, ref)
    made.append(ref)
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text(
        f'FROM {ref}\nRUN ["/busybox", "sh", "-c", "/busybox uname -m > /machine"]\n'
        'CMD ["/busybox", "cat", "/machine"]\n')
    child_id = build(real_engine, child, FOREIGN, made)
    argv = real_engine.run_argv(RunRequest(image=child_id, platform=FOREIGN, detach=False,
                                           name=f"pyrlab-emulation-c-{tmp_path.name}",
                                           remove=True))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, qemu_name(FOREIGN)), done.stderr
