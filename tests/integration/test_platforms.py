"""A lab for two platforms on this machine, for real (issue 23): cases/platforms, built for
the engine's own platform and the other supported one under emulation (arm64 on amd64),
on the session's bases (the other one's made by `pyrlab bootstrap --platform`).

One build of the lab is shared by the module's tests (several minutes: the other
platform's steps run under qemu-user). What they show:
- the other platform's images are that platform's (`uname -m` in them, numpy computes),
  its self-test ran there (its kernel answered), and pyrlab.lock's section for it is what
  its images hold (`diff --platform` finds nothing);
- pushed to a local registry, one tag names an index of both platforms, whose digest
  pyrlab.pushed.toml records, and each platform's manifest is the image built here;
- an added line is a layer on each platform's image (a delta), tested there;
- without emulation, a build for the platform stops before anything, naming the fix.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labtools import EngineCli, ForeignBase, Lab, run_pyrlab
from test_push import start_registry, stop

from pyrlab.contents.lockfile import read_lock_all
from pyrlab.platforms import host_platform, qemu_name, token

pytestmark = pytest.mark.integration

INDEX_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json, "
               "application/vnd.oci.image.index.v1+json")


@dataclass(frozen=True)
class Built:
    lab: Lab
    foreign: ForeignBase
    data: dict[str, Any]  # `build --json`
    seconds: float

    def ref(self, image: str, tag: str = "latest") -> str:
        """The other platform's image's local name: PREFIXIMAGE/arm64:TAG."""
        return f"{self.lab.prefix}{image}/{token(self.foreign.platform)}:{tag}"


@pytest.fixture(scope="module")
def built(make_module_lab: Callable[..., Lab],
          foreign_bases: Callable[[str], ForeignBase]) -> Built:
    foreign = foreign_bases("docker")
    lab = make_module_lab("platforms", "docker")
    started = time.monotonic()
    done = lab.pyrlab("build", "--json", timeout=2400)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    print(f"cases/platforms for {host_platform()} and {foreign.platform}: {seconds:.0f}s")
    return Built(lab, foreign, json.loads(done.stdout), seconds)


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
    # Its self-test ran in it, under emulation: the kernel answered, numpy imported.
    [pylab] = [i for i in images if i["name"] == "pylab" and i["platform"] == other]
    checks = {(c["kind"], c["name"]): c for c in pylab["test"]["checks"]}
    assert checks[("kernel", "python3")]["ok"], checks
    assert checks[("python", "numpy")]["ok"], checks
    ran = engine("run", "--rm", "--network", "none", "--platform", other, ref, "sh", "-c",
                 "uname -m; python -c 'import numpy; print(numpy.arange(6).reshape(2, 3)"
                 ".sum(axis=0).tolist())'").stdout.split("\n")
    assert ran[:2] == [qemu_name(other), "[3, 5, 7]"]
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
    finally:
        stop(registry)


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
