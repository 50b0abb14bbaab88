"""A lab for two platforms on this machine, for real (issue 23): cases/platforms, built for
the engine's own platform and the other supported one under emulation (arm64 on amd64),
on the session's bases (the other one's made by `pyrlab bootstrap --platform`).

One build of the lab is shared by the module's tests (several minutes: the other
platform's steps run under qemu-user). What they show:
- the other platform's images are that platform's (`uname -m` in them, numpy computes),
  its self-test ran there (its kernel answered), and pyrlab.lock's section for it is what
  its images hold (`diff --platform` finds nothing);
- pushed to a local registry, one tag names an index of both platforms, whose digest
  pyrlab.pushed.toml records, and each platform's manifest is the image built here; with
  the other platform's image and build records gone, `build --cache-from` the index takes
  its install step from the registry (the registry cache works per platform);
- an added line is a layer on each platform's image (a delta), tested there;
- `--locked` with a Debian version the other platform's sources no longer offer stops
  before anything builds (apt asked in that platform's base, under emulation), naming it
  and the platform;
- without emulation, a build for the platform stops before anything, naming the fix.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labtools import EngineCli, ForeignBase, Lab, run_pyrlab
from test_push import (
    new_pyrlab_records,
    record_ids,
    remove_records,
    start_registry,
    steps,
    stop,
    uv_install_lines,
)

from pyrlab.container import pyc_cache
from pyrlab.contents.lockfile import read_lock_all, update_lock
from pyrlab.ecosystems.debian import Deb
from pyrlab.engines.buildcache import docker_records
from pyrlab.platforms import host_platform, qemu_name, token

pytestmark = pytest.mark.integration

# Start the image's python3 kernel (ipykernel's kernelspec) and run one cell in it.
KERNEL_CELL = """
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="python3", startup_timeout=300)
out = []
def hook(msg):
    if msg["msg_type"] == "stream":
        out.append(msg["content"]["text"])
kc.execute_interactive("import platform; print(platform.machine(), 6 * 7)", timeout=300,
                       output_hook=hook)
kc.stop_channels()
km.shutdown_kernel(now=True)
print("".join(out).strip())
"""
INDEX_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json, "
               "application/vnd.oci.image.index.v1+json")


@dataclass(frozen=True)
class Built:
    lab: Lab
    foreign: ForeignBase
    data: dict[str, Any]  # `build --json`
    seconds: float
    records: set[str]  # the BuildKit records the build made (pyrlab's steps)

    def ref(self, image: str, tag: str = "latest") -> str:
        """The other platform's image's local name: PREFIXIMAGE/arm64:TAG."""
        return f"{self.lab.prefix}{image}/{token(self.foreign.platform)}:{tag}"


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine("docker")


@pytest.fixture(scope="module")
def built(make_module_lab: Callable[..., Lab], foreign_bases: Callable[[str], ForeignBase],
          engine: EngineCli) -> Iterator[Built]:
    foreign = foreign_bases("docker")
    lab = make_module_lab("platforms", "docker")
    before = record_ids(engine)
    started = time.monotonic()
    done = lab.pyrlab("build", "--json", timeout=2400)
    seconds = time.monotonic() - started
    records = new_pyrlab_records(engine, before)
    try:
        assert done.returncode == 0, done.stderr
        print(f"cases/platforms for {host_platform()} and {foreign.platform}: {seconds:.0f}s")
        yield Built(lab, foreign, json.loads(done.stdout), seconds, records)
    finally:
        remove_records(engine, records)


def test_the_other_platform_s_images_are_its_own_and_tested_there(
        built: Built, engine: EngineCli) -> None:
    other = built.foreign.platform
    images = built.data["images"]
    assert [(i["name"], i["platform"], i["action"]) for i in images] == [
        ("pyrlab-base", None, "built"), ("pylab", None, "built"),
        ("pyrlab-base", other, "built"), ("pylab", other, "built")]
    for image in images:
        print(f"{image['name']} ({image['platform'] or 'native'}): {image['seconds']}s, "
              f"self-test {image['test']['seconds']}s")
    ref = built.ref("pylab")
    inspect = engine.image(ref)
    assert inspect is not None and f"{inspect['Os']}/{inspect['Architecture']}" == other
    # Its self-test ran in it, under emulation: its listed modules imported there.
    [pylab] = [i for i in images if i["name"] == "pylab" and i["platform"] == other]
    checks = {(c["kind"], c["name"]): c for c in pylab["test"]["checks"]}
    assert checks[("python", "numpy")]["ok"] and checks[("python", "ipykernel")]["ok"], checks
    ran = engine("run", "--rm", "--network", "none", "--platform", other, ref, "sh", "-c",
                 "uname -m; python -c 'import numpy; print(numpy.arange(6).reshape(2, 3)"
                 ".sum(axis=0).tolist())'").stdout.split("\n")
    assert ran[:2] == [qemu_name(other), "[3, 5, 7]"]
    # Its kernel starts and runs a cell, as a lab's would (no JupyterLab in this lab).
    kernel = engine("run", "--rm", "--network", "none", "--platform", other,
                    "--env", "JUPYTER_RUNTIME_DIR=/tmp", "--interactive", ref, "python", "-",
                    input=KERNEL_CELL).stdout.strip().splitlines()
    assert kernel[-1] == f"{qemu_name(other)} 42", kernel
    # pyrlab.lock holds both platforms, and the other one's section is what its images
    # hold: `diff` of that platform finds nothing.
    lock = read_lock_all(built.lab.root / "pyrlab.lock", host=host_platform())
    assert set(lock.platforms) == {host_platform(), other} and lock.recorded
    assert {d.name for d in lock.view(other)["pylab"].packages("python")} >= {"numpy",
                                                                             "ipykernel"}
    assert {d.arch for d in lock.view(other)["pylab"].packages("debian")} <= {
        token(other), "all"}
    diff = built.lab.pyrlab("diff", "--platform", other, "--json")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert json.loads(diff.stdout)["platform"] == other


def test_one_tag_names_an_index_of_both_platforms(built: Built, engine: EngineCli,
                                                  tmp_path: Path) -> None:
    registry = start_registry(tmp_path / "registry")
    try:
        namespace = f"{registry.host}/platforms-{token(built.foreign.platform)}"
        done = built.lab.pyrlab("push", "pylab", "--registry", f"http://{namespace}",
                                "--json", timeout=900)
        assert done.returncode == 0, done.stderr
        pushed = (built.lab.root / "pyrlab.pushed.toml").read_text()
        request = urllib.request.Request(
            f"http://{registry.host}/v2/platforms-{token(built.foreign.platform)}/pylab/"
            "manifests/latest", headers={"Accept": INDEX_TYPES})
        with urllib.request.urlopen(request, timeout=30) as response:
            index = json.loads(response.read())
            digest = response.headers["Docker-Content-Digest"]
        assert digest in pushed  # the record names the index
        by_platform = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                       for m in index["manifests"]}
        assert set(by_platform) == {host_platform(), built.foreign.platform}
        for platform, manifest_digest in by_platform.items():
            request = urllib.request.Request(
                f"http://{registry.host}/v2/platforms-{token(built.foreign.platform)}/pylab/"
                f"manifests/{manifest_digest}",
                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                config = json.loads(response.read())["config"]["digest"]
            local = (built.lab.ref("pylab") if platform == host_platform()
                     else built.ref("pylab"))
            assert config.removeprefix("sha256:") == engine.image_id(local), platform

        # A teammate without the other platform's pylab and without this build's layer
        # records (its cache mounts, downloads, stay) builds it `--cache-from` the
        # namespace: its install step comes from the registry. pyrlab also names the tag
        # push gave the arm64 image (pylab:latest-arm64), first; pyrlab-base was not
        # pushed: a name the registry lacks is passed over. Its checkout is the one the
        # pushed images were built from: the lock the first build wrote was not there yet
        # (its versions are the install step's input).
        other = built.foreign.platform
        engine.remove_by_prefix(built.ref("pylab").rsplit(":", 1)[0])
        remove_records(engine, {r["ID"] for r in docker_records(engine.binary)
                                if r["ID"] in built.records
                                and r.get("CacheType") != "exec.cachemount"})
        lock = built.lab.root / "pyrlab.lock"
        recorded = lock.read_text()
        lock.unlink()
        before = record_ids(engine)
        started = time.monotonic()
        done = built.lab.pyrlab("build", "--platform", other, "--no-test", "--cache-from",
                                f"{namespace}/", "--json", timeout=900)
        built.records.update(new_pyrlab_records(engine, before))
        lock.write_text(recorded)
        assert done.returncode == 0, done.stderr
        print(f"build --cache-from the index for {other}: {time.monotonic() - started:.0f}s")
        images = {(i["name"], i["platform"]): i for i in json.loads(done.stdout)["images"]}
        assert images[("pyrlab-base", other)]["action"] == "skipped"
        assert images[("pylab", other)]["action"] == "built"
        log = Path(images[("pylab", other)]["log"]).read_text()
        assert f"importing cache manifest from {namespace}/pylab:latest-arm64" in log, \
            log[-3000:]
        vertex, lines = uv_install_lines(log)
        assert f"#{vertex} CACHED" in lines, steps(log)
        rebuilt = engine.image(built.ref("pylab"))
        assert rebuilt is not None and f"{rebuilt['Os']}/{rebuilt['Architecture']}" == other
    finally:
        stop(registry)


def test_bytecode_compiled_on_each_platform_is_the_same_bytes(built: Built,
                                                                 engine: EngineCli,
                                                                 tmp_path: Path) -> None:
    """Why one bytecode cache serves every platform (Cache.every_platform): pyc_cache.py
    compiles the same installed files in the engine's own pylab and, under emulation, in
    the other platform's, each into an empty cache; every entry both hold (same interpreter,
    path and content) is the same bytes past its header (the installed file's mtime and
    size, which a hit writes anew)."""
    script = Path(pyc_cache.__file__)
    site = "/opt/venv/lib/python3.13/site-packages"
    listed = engine("run", "--rm", "--network", "none", "--workdir", site,
                    built.lab.ref("pylab"), "sh", "-c",
                    "ls IPython/core/*.py jedi/api/*.py traitlets/*.py numpy/*.py "
                    "numpy/lib/*.py").stdout.split()
    assert len(listed) > 100, listed
    (tmp_path / "files.txt").write_text("".join(f"{site}/{name}\n" for name in listed))
    caches = {}
    for platform, ref in ((host_platform(), built.lab.ref("pylab")),
                          (built.foreign.platform, built.ref("pylab"))):
        cache = tmp_path / token(platform)
        cache.mkdir()
        started = time.monotonic()
        engine("run", "--rm", "--network", "none", "--user", "root", "--platform", platform,
               "--volume", f"{cache}:/cache", "--volume", f"{script}:/pyc_cache.py:ro",
               "--volume", f"{tmp_path / 'files.txt'}:/files.txt:ro", ref,
               "/opt/venv/bin/python", "-I", "/pyc_cache.py", "/cache", site, "/files.txt")
        print(f"{len(listed)} files compiled for {platform}: {time.monotonic() - started:.1f}s")
        caches[platform] = {p.name: p.read_bytes() for p in cache.rglob("*.pyc")}
    native, other = caches.values()
    both = set(native) & set(other)
    # Only files whose content differs per platform (numpy's build configuration) differ.
    assert len(both) >= 0.95 * len(listed), (len(both), len(listed))
    assert {name: native[name][:4] for name in both} == {name: other[name][:4] for name in both}
    differ = sorted(name for name in both if native[name][16:] != other[name][16:])
    assert not differ, f"{len(differ)} of {len(both)} entries differ, e.g. {differ[:3]}"


def test_an_added_line_is_a_layer_on_each_platform_s_image(built: Built,
                                                            engine: EngineCli) -> None:
    before = {p: engine.image_id(r) for p, r in ((None, built.lab.ref("pylab")),
                                                 (built.foreign.platform, built.ref("pylab")))}
    requirements = built.lab.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "six\n")
    started = time.monotonic()
    done = built.lab.pyrlab("build", "--json", timeout=1800)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    images = {(i["name"], i["platform"]): i for i in json.loads(done.stdout)["images"]}
    print(f"add one line, both platforms: {seconds:.0f}s")
    for platform in before:
        pylab = images[("pylab", platform)]
        assert pylab["action"] == "built" and "a layer on" in pylab["reason"], pylab
        assert images[("pyrlab-base", platform)]["action"] == "skipped"
    # The other platform's new image is a layer on its own previous one.
    new = engine.image(built.ref("pylab"))
    old = engine.image(before[built.foreign.platform] or "")
    assert new is not None and old is not None
    old_layers = old["RootFS"]["Layers"]  # type: ignore[index]
    assert new["RootFS"]["Layers"][:len(old_layers)] == old_layers  # type: ignore[index]
    assert f"{new['Os']}/{new['Architecture']}" == built.foreign.platform


def test_locked_with_a_debian_version_gone_for_the_other_platform_stops_before_building(
        built: Built, engine: EngineCli) -> None:
    """As on the engine's own platform (test_lock_flow): apt is asked in a container of
    the other platform's base, under emulation, before anything builds; the error names
    the package, its version, what the sources offer and the platform. No tag moves."""
    other = built.foreign.platform
    path = built.lab.root / "pyrlab.lock"
    good = path.read_text()
    refs = [built.lab.ref("pyrlab-base"), built.lab.ref("pylab"), built.ref("pyrlab-base"),
            built.ref("pylab")]
    ids = {ref: engine.image_id(ref) for ref in refs}
    logs = sorted((built.lab.root / ".pyrlab" / "logs").iterdir())
    try:
        sections = read_lock_all(path, host=host_platform()).view(other)
        assert any(d.name == "tini" for d in sections["pyrlab-base"].packages("debian"))
        update_lock(path, {name: dataclasses.replace(section, debs=tuple(
            Deb(d.name, "0.0.1-1", d.arch) if d.name == "tini" else d
            for d in section.packages("debian"))) for name, section in sections.items()},
            platform=other)
        started = time.monotonic()
        done = built.lab.pyrlab("build", "--locked", timeout=900)
        print(f"--locked preflight for both platforms: {time.monotonic() - started:.0f}s")
        assert done.returncode == 5, done.stdout + done.stderr
        assert f"on {other}): Debian package tini 0.0.1-1: the sources offer" in done.stderr
        assert "--locked cannot pin it" in done.stderr
        assert sorted((built.lab.root / ".pyrlab" / "logs").iterdir()) == logs  # none built
        assert {ref: engine.image_id(ref) for ref in refs} == ids
    finally:
        path.write_text(good)


def test_without_emulation_a_build_for_the_platform_stops_naming_the_fix(
        built: Built, tmp_path: Path) -> None:
    empty = tmp_path / "binfmt_misc"
    empty.mkdir()
    done = run_pyrlab("build", "-C", str(built.lab.root), "--engine", "docker",
                      "--platform", built.foreign.platform,
                      env={"PYRLAB_BINFMT_DIR": str(empty)})
    assert done.returncode == 4, done.stderr
    assert (f"pyrlab: error: building for {built.foreign.platform} needs emulation of "
            f"{qemu_name(built.foreign.platform)}") in done.stderr
    assert "sudo apt-get install qemu-user-static binfmt-support" in done.stderr
