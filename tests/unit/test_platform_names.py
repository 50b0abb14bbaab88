"""Local names per platform (issue 23, step 3). The engine's own platform keeps every name
of today, byte for byte (pinned here); another platform's image adds its token as the
repository's last path component (t/pylab/arm64:latest, every tag kept), its lab its token
after the port (t__pylab-8888__arm64) and a label, its run-time installs a folder of
their own. `inspect`, `diff` and `ps` say which platform they show; `clean` removes every
platform's images."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import ORDER, FakeEngine
from labfiles import init_lab, pyrlab

from pyrlab.commands.ps import PsResult
from pyrlab.config.model import Config
from pyrlab.config.project import load_project
from pyrlab.config.readers import load_config
from pyrlab.contents.images import (
    LABEL_PROJECT,
    current_inventories,
    image_inventory,
    image_spec,
)
from pyrlab.dockerfile.render import RenderOptions
from pyrlab.engines.docker import DockerClassic
from pyrlab.errors import EXIT_CONFIG
from pyrlab.imagebuild.planner import RESERVED_TAGS, targets
from pyrlab.launch.plan import LABEL_PLATFORM, container_name, plan_lab
from pyrlab.platforms import NATIVE
from pyrlab.run.labs import Lab

HOST = "linux/amd64"  # the FakeEngine's own
ARM = "linux/arm64"


@pytest.fixture
def named(tmp_path: Path) -> Config:
    return load_config(init_lab(tmp_path / "lab"), environ={})  # its name is "lab"


@pytest.fixture
def bare(tmp_path: Path) -> Config:
    return load_config(init_lab(tmp_path / "bare"), environ={"PYRLAB_NAME": ""},
                       sets=['prefix="ghcr.io/me/"'])


# --------------------------------------------------------------------------- the names


@pytest.mark.parametrize("platform", [NATIVE, HOST])
def test_the_engine_s_own_platform_keeps_today_s_names(named: Config, bare: Config,
                                                       platform: str) -> None:
    for tag in (*RESERVED_TAGS, "trixie"):
        assert named.image_ref("pylab", tag, platform, HOST) == f"lab/pylab:{tag}"
        assert bare.image_ref("pylab", tag, platform, HOST) == f"ghcr.io/me/pylab:{tag}"
    assert named.layer_key("pylab", platform, HOST) == "lab/pylab"
    assert bare.layer_key("pylab", platform, HOST) == "pylab"
    assert container_name(named, "pylab", 8888, platform, HOST) == "lab__pylab-8888"
    assert container_name(bare, "pylab", 8888, platform, HOST) == "pyrlab-pylab-8888"
    # Every call of today (no platform named) gives the same strings.
    assert named.image_ref("pylab") == "lab/pylab:latest"
    assert bare.image_ref("rlab", "previous") == "ghcr.io/me/rlab:previous"
    assert (named.layer_key("pylab"), bare.layer_key("pylab")) == ("lab/pylab", "pylab")
    assert container_name(named, "rlab", 8787) == "lab__rlab-8787"


def test_another_platform_s_names_carry_its_token(named: Config, bare: Config) -> None:
    for tag in (*RESERVED_TAGS, "trixie"):  # every tag means on arm64 what it means here
        assert named.image_ref("pylab", tag, ARM, HOST) == f"lab/pylab/arm64:{tag}"
        assert bare.image_ref("pylab", tag, ARM, HOST) == f"ghcr.io/me/pylab/arm64:{tag}"
    assert named.layer_key("pylab", ARM, HOST) == "lab/pylab/arm64"
    assert bare.layer_key("pylab", ARM, HOST) == "pylab/arm64"
    assert container_name(named, "pylab", 8888, ARM, HOST) == "lab__pylab-8888__arm64"
    assert container_name(bare, "pylab", 8888, ARM, HOST) == "pyrlab-pylab-8888__arm64"
    # A registry's name has no platform in it (one index per tag, when pushed).
    assert bare.registry_ref("pylab") == "ghcr.io/me/pylab:latest"
    # On an arm64 machine, amd64 is the other platform.
    arm_host = ARM
    assert named.image_ref("pylab", "latest", ARM, arm_host) == "lab/pylab:latest"
    assert named.image_ref("pylab", "latest", HOST, arm_host) == "lab/pylab/amd64:latest"
    assert container_name(named, "pylab", 8888, HOST, arm_host) == "lab__pylab-8888__amd64"


def test_another_platform_s_names_are_no_other_image_s(named: Config) -> None:
    """An image called pylab-arm64 (or arm64) is not pylab's arm64 image, nor its lab."""
    for image in ("pylab-arm64", "arm64", "pylab"):
        assert named.image_ref(image) != named.image_ref("pylab", "latest", ARM, HOST)
        assert named.layer_key(image) != named.layer_key("pylab", ARM, HOST)
        assert container_name(named, image, 8888) != \
            container_name(named, "pylab", 8888, ARM, HOST)


def test_no_two_labs_share_a_name_across_projects_images_ports_and_platforms(
        named: Config) -> None:
    """Among them project pyrlab-pylab's lab of an image called arm64, which an infix
    (pyrlab-pylab__arm64-8888 for the bare names' arm64 pylab) would have taken."""
    projects = ("", "a", "a-b", "pyrlab", "pyrlab-pylab", "pyrlab-pylab-8888")
    images = ("pylab", "b-pylab", "arm64", "pylab-arm64", "pylab-8888", "8888")
    labs = [(project, image, port, platform) for project in projects for image in images
            for port in (8888, 88) for platform in (NATIVE, ARM, HOST)]
    names = {(p, i, n, f): container_name(replace(named, name=p), i, n, f, HOST)
             for p, i, n, f in labs}
    # The engine's own platform, named or not, is one lab; every other lab has its own name.
    distinct = {(p, i, n, f or HOST) for p, i, n, f in labs}
    assert len(set(names.values())) == len(distinct)


def test_a_lab_of_another_platform_differs_only_by_its_image_name_label_and_platform(
        named: Config) -> None:
    native = plan_lab(named, "pylab", token="x")
    assert plan_lab(named, "pylab", token="x", platform=HOST, host=HOST) == native
    # The engine's own lab: today's image, name and labels, and so today's `docker run`.
    assert (native.name, native.request.image) == ("lab__pylab-8888", "lab/pylab:latest")
    assert LABEL_PLATFORM not in native.request.labels
    argv = DockerClassic("docker").run_argv(native.request)
    assert "lab/pylab:latest" in argv and "--platform" not in argv
    assert not any(LABEL_PLATFORM in a for a in argv)
    foreign = plan_lab(named, "pylab", token="x", platform=ARM, host=HOST)
    assert (foreign.name, foreign.request.image) == ("lab__pylab-8888__arm64",
                                                     "lab/pylab/arm64:latest")
    assert foreign.request.labels == {**native.request.labels, LABEL_PLATFORM: ARM}
    assert foreign.request.platform == ARM  # it runs under emulation: `docker run --platform`
    assert replace(foreign, name=native.name,
                   request=replace(foreign.request, name=native.request.name,
                                   image=native.request.image, labels=native.request.labels,
                                   platform=native.request.platform)) == native


# --------------------------------------------------------------------------- the graph


def test_targets_are_named_and_rendered_for_their_platform(
        lab: Path, engine: FakeEngine) -> None:
    project = load_project(lab, environ={})
    native = targets(project, None, RenderOptions())
    named_host = targets(project, None, RenderOptions(), platform=HOST, host=HOST)
    assert [replace(t, platform=NATIVE) for t in named_host] == native
    assert {t.platform for t in named_host} == {HOST}  # as asked: the data keeps it
    assert [(t.name, t.from_ref, t.refs, t.previous_ref, t.failed_ref) for t in native] == [
        ("pyrlab-base", "t/debian:trixie", ("t/pyrlab-base:latest", "t/pyrlab-base:trixie"),
         "t/pyrlab-base:previous", "t/pyrlab-base:failed"),
        ("pylab", "t/pyrlab-base:latest", ("t/pylab:latest", "t/pylab:trixie"),
         "t/pylab:previous", "t/pylab:failed"),
        ("pylab-torch", "t/pylab:latest", ("t/pylab-torch:latest", "t/pylab-torch:trixie"),
         "t/pylab-torch:previous", "t/pylab-torch:failed"),
        ("other", "t/pyrlab-base:latest", ("t/other:latest", "t/other:trixie"),
         "t/other:previous", "t/other:failed")]
    assert {t.platform for t in native} == {NATIVE}
    foreign = targets(project, None, RenderOptions(), platform=ARM, host=HOST)
    assert [(t.name, t.from_ref, t.ref, t.refs, t.previous_ref, t.failed_ref, t.platform)
            for t in foreign][:2] == [
        ("pyrlab-base", "t/debian/arm64:trixie", "t/pyrlab-base/arm64:latest",
         ("t/pyrlab-base/arm64:latest", "t/pyrlab-base/arm64:trixie"),
         "t/pyrlab-base/arm64:previous", "t/pyrlab-base/arm64:failed", ARM),
        ("pylab", "t/pyrlab-base/arm64:latest", "t/pylab/arm64:latest",
         ("t/pylab/arm64:latest", "t/pylab/arm64:trixie"),
         "t/pylab/arm64:previous", "t/pylab/arm64:failed", ARM)]
    # Rendered for the platform: FROM its parent's and base's names (its cache mounts and
    # lab key too, see test_platform_caches.py), so each has an input hash of its own.
    assert [re.findall(r"^FROM (\S+)", t.context.dockerfile, re.MULTILINE)[-1] for t in foreign][:2] \
        == ["t/debian/arm64:trixie", "t/pyrlab-base/arm64:latest"]
    assert not {t.context.input_hash for t in foreign} & {t.context.input_hash for t in native}


# --------------------------------------------------------------------------- the images


def built(capsys: pytest.CaptureFixture[str], lab: Path, engine: FakeEngine) -> str:
    """Build the lab, then give it an arm64 pylab (as a later step's build will): the
    engine says that image is for linux/arm64. Its ID."""
    code, _, err = pyrlab(capsys, "build", "-C", str(lab))
    assert code == 0, err
    native_id = engine.refs["t/pylab:latest"]
    arm_id = "a" * 64
    engine.add_image("t/pylab/arm64:latest", arm_id, engine.images[native_id])
    engine.manifests[arm_id] = engine.manifests[native_id]
    engine.image_platforms[arm_id] = ARM
    return arm_id


def test_an_inventory_is_of_the_platform_its_image_is_for(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    built(capsys, lab, engine)
    config = load_config(lab, environ={})
    assert image_spec(config, "pylab:previous", ARM, HOST).ref == "t/pylab/arm64:previous"
    assert image_spec(config, "pylab", HOST, HOST).ref == "t/pylab:latest"
    arm = image_inventory(engine, image_spec(config, "pylab", ARM, HOST))
    native = image_inventory(engine, image_spec(config, "pylab"))
    assert (arm.platform, native.platform) == (ARM, HOST)
    assert arm.by_ecosystem == native.by_ecosystem  # the same manifest, read for each
    inventories, missing = current_inventories(engine, config, platform=ARM, host=HOST)
    assert list(inventories) == ["pylab"] and inventories["pylab"].platform == ARM
    assert missing == [n for n in ORDER if n != "pylab"]
    # A lock is written as before, whichever platform the engine says (one per lock).
    text = (lab / "pyrlab.lock").read_text()
    assert "[images.pylab.python]" in text and "linux/" not in text


def test_inspect_says_the_platform(lab: Path, engine: FakeEngine,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    built(capsys, lab, engine)
    code, out, err = pyrlab(capsys, "inspect", "-C", str(lab), "pylab", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["ref"], data["platform"]) == ("t/pylab:latest", HOST)
    code, out, _ = pyrlab(capsys, "inspect", "-C", str(lab), "pylab", "--platform", "arm64",
                          "--json")
    data = json.loads(out)
    assert (data["ref"], data["platform"]) == ("t/pylab/arm64:latest", ARM)
    # The text names a platform only when it is not the engine's own.
    native_text = pyrlab(capsys, "inspect", "-C", str(lab), "pylab")[1]
    assert native_text.startswith("pylab: Debian GNU/Linux 13 (trixie), Python 3.13.5")
    assert "linux/" not in native_text
    arm_text = pyrlab(capsys, "inspect", "-C", str(lab), "pylab", "--platform", ARM)[1]
    assert arm_text.startswith("pylab (linux/arm64): Debian GNU/Linux 13 (trixie)")
    assert arm_text.splitlines()[1:] == native_text.splitlines()[1:]
    code, _, err = pyrlab(capsys, "inspect", "-C", str(lab), "other", "--platform", ARM)
    assert code != 0 and "image t/other/arm64:latest is not built" in err


def test_inspect_home_reads_another_platform_s_layer(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    site = "python3.13/lib/python3.13/site-packages"
    # The FILES lab has bare names: its layers are pylab and pylab/arm64.
    for key, dist in (("pylab", "native_only"), ("pylab/arm64", "arm_only")):
        info = home / ".local/share/pyrlab" / key / site / f"{dist}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    args = ("inspect", "-C", str(lab), "pylab", "--home", "--json", "--set", f"run.home={home}")
    native = json.loads(pyrlab(capsys, *args)[1])
    arm = json.loads(pyrlab(capsys, *args, "--platform", ARM)[1])
    assert [p["name"] for p in native["python"]] == ["native-only"]
    assert [p["name"] for p in arm["python"]] == ["arm-only"]
    assert arm["folder"].endswith("/.local/share/pyrlab/pylab/arm64")


def test_diff_says_the_platform_and_keeps_today_s_heading(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    built(capsys, lab, engine)
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab))
    assert code == 0 and out.splitlines()[0] == "pyrlab.lock → the images now"
    assert json.loads(pyrlab(capsys, "diff", "-C", str(lab), "--json")[1])["platform"] == HOST
    code, out, _ = pyrlab(capsys, "diff", "-C", str(lab), "--platform", ARM, "pylab:latest",
                          "pylab")
    assert code == 0
    assert out.splitlines()[0] == "t/pylab/arm64:latest → t/pylab/arm64:latest (linux/arm64)"
    # pyrlab.lock records the engine's own platform only: no side of another platform's diff.
    code, _, err = pyrlab(capsys, "diff", "-C", str(lab), "--platform", ARM, "pylab")
    assert code == EXIT_CONFIG
    assert "pyrlab.lock: no section for linux/arm64 (it holds linux/amd64)" in err


def test_ps_shows_a_platform_column_only_beside_another_platform_s_lab() -> None:
    def lab(name: str, platform: str) -> Lab:
        return Lab(name=name, image="pylab", ref="", image_id="", project="x",
                   project_dir="/work/a", port=8888, url="http://127.0.0.1:8888/lab",
                   state="running", exit_code=None, health="healthy", started=None,
                   published=("127.0.0.1:8888->8888",), token="", platform=platform)
    now = datetime.now(UTC)
    native = PsResult((lab("x__pylab-8888", NATIVE),), now, host=HOST)
    assert native.to_text().splitlines()[0].split() == [
        "IMAGE", "STATUS", "UPTIME", "URL", "PORTS"]
    assert native.to_data()[0]["platform"] == HOST
    both = PsResult((lab("x__pylab-8888", NATIVE), lab("x__pylab-8888__arm64", ARM)), now,
                    host=HOST)
    header, *rows = both.to_text().splitlines()
    assert header.split() == ["IMAGE", "PLATFORM", "STATUS", "UPTIME", "URL", "PORTS"]
    assert [row.split()[:2] for row in rows] == [["pylab", HOST], ["pylab", ARM]]
    assert [row["platform"] for row in both.to_data()] == [HOST, ARM]


# --------------------------------------------------------------------------- clean


def test_clean_removes_every_platform_s_images(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    arm_id = built(capsys, lab, engine)
    engine.tag(arm_id, "t/pylab/arm64:previous")
    # Not this project's (no label): kept, and said so.
    engine.add_image("t/other/arm64:latest", "c" * 64)
    assert LABEL_PROJECT in engine.images[arm_id]  # built by this project, as pylab was
    code, out, err = pyrlab(capsys, "clean", "-C", str(lab), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"t/pylab/arm64:latest", "t/pylab/arm64:previous", "t/pylab:latest",
            "t/pyrlab-base:latest"} <= set(data["removed"])
    assert {"image": "t/other/arm64:latest",
            "reason": "not built by this project (another folder's lab?)"} in data["kept"]
    assert arm_id not in engine.images
    assert [ref for ref in engine.refs if "/arm64:" in ref] == ["t/other/arm64:latest"]
