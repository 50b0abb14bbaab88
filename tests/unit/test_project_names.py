"""Projects are named (top-level `name` in pyrlab.toml, written by `init` from the folder):
their images, labs, label, run-time install layers and home folder carry the name, so two
projects with the same image names never share one; names in a registry stay PREFIXIMAGE;
`name = ""` keeps the bare names of before."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import FakeEngine
from labfiles import init_lab

from pyrlab.cli import main
from pyrlab.commands.clean import CleanResult
from pyrlab.commands.ps import PsResult
from pyrlab.config.key import project_key
from pyrlab.config.model import name_from_folder
from pyrlab.config.project import load_project
from pyrlab.config.readers import load_config
from pyrlab.dockerfile.render import RenderOptions
from pyrlab.engines.select import Selection
from pyrlab.errors import ConfigError
from pyrlab.imagebuild.planner import targets
from pyrlab.launch.plan import container_name
from pyrlab.launch.state import name_note
from pyrlab.run.labs import Lab

pytestmark = pytest.mark.project_names


@pytest.mark.parametrize(("folder", "name"), [
    ("lab", "lab"), ("My Lab 2", "my-lab-2"), ("team_lab.v2", "team-lab-v2"),
    ("Ünïcode", "n-code"), ("___", "lab")])
def test_a_folder_name_becomes_a_valid_project_name(tmp_path: Path, folder: str,
                                                    name: str) -> None:
    assert name_from_folder(tmp_path / folder) == name


def test_init_writes_the_folder_name_and_a_clone_elsewhere_keeps_every_name_and_hash(
        tmp_path: Path) -> None:
    lab = init_lab(tmp_path / "Team Lab")
    assert '\nname = "team-lab"\n' in (lab / "pyrlab.toml").read_text()
    clone = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(lab, clone)
    first, second = (load_project(root, environ={}) for root in (lab, clone))
    for project in (first, second):
        config = project.config
        assert (config.name, config.name_from_folder) == ("team-lab", False)
        assert config.image_ref("pylab") == "team-lab/pylab:latest"
        assert config.project_id == "team-lab"  # the label: not the folder's hash
        assert config.run.home == "~/docker/team-lab"
    hashes = [[t.context.input_hash for t in targets(p, None, RenderOptions())]
              for p in (first, second)]
    assert hashes[0] == hashes[1]


def test_two_projects_with_the_same_image_names_share_no_name(tmp_path: Path) -> None:
    a = load_config(init_lab(tmp_path / "a"), environ={})
    b = load_config(init_lab(tmp_path / "b"), environ={})
    for image in ("pylab", "rlab"):
        assert a.image_ref(image) != b.image_ref(image)
        assert a.image_ref(image, "previous") != b.image_ref(image, "previous")
        assert a.layer_key(image) == f"a/{image}" != b.layer_key(image)
        assert container_name(a, image, 8888) != container_name(b, image, 8888)
    assert a.run.home != b.run.home
    assert a.project_id != b.project_id


def test_container_names_cannot_collide_across_a_dash(tmp_path: Path) -> None:
    """Project a-b's image c and project a's image b-c: neither name holds "__"."""
    root = init_lab(tmp_path / "lab")
    ab = load_config(root, environ={}, sets=["name=a-b"])
    a = load_config(root, environ={}, sets=["name=a"])
    assert container_name(ab, "c", 8888) != container_name(a, "b-c", 8888)
    assert ab.image_ref("c") != a.image_ref("b-c")


def test_registry_names_stay_prefix_and_image(tmp_path: Path) -> None:
    config = load_config(init_lab(tmp_path / "lab"), environ={},
                         sets=['prefix="ghcr.io/me/"'])
    assert config.image_ref("pylab") == "lab/pylab:latest"
    assert config.registry_ref("pylab") == "ghcr.io/me/pylab:latest"
    assert config.registry_ref("pylab", "3.14-trixie") == "ghcr.io/me/pylab:3.14-trixie"


def test_an_empty_name_asks_for_the_bare_names_and_the_shared_home(tmp_path: Path) -> None:
    root = init_lab(tmp_path / "lab")
    config = load_config(root, environ={"PYRLAB_NAME": ""}, sets=['prefix="ghcr.io/me/"'])
    assert config.image_ref("pylab") == "ghcr.io/me/pylab:latest"
    assert config.layer_key("pylab") == "pylab"
    assert container_name(config, "pylab", 8888) == "pyrlab-pylab-8888"
    assert config.run.home == "~/docker"
    assert config.project_id == project_key(root)


def test_a_name_that_cannot_name_an_image_is_refused_with_its_key(tmp_path: Path) -> None:
    root = init_lab(tmp_path / "lab")
    for bad in ("Upper", "a/b", "-x", "a__b"):
        with pytest.raises(ConfigError) as caught:
            load_config(root, environ={}, sets=[f"name={bad}"])
        assert caught.value.problems[0].where == "pyrlab.toml: name"
        assert "project name" in caught.value.problems[0].message


def test_an_old_project_without_name_is_named_for_its_folder_and_told_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = init_lab(tmp_path / "old lab")
    toml = root / "pyrlab.toml"
    toml.write_text(toml.read_text().replace('name = "old-lab"\n', ""))
    config = load_config(root, environ={})
    assert (config.name, config.name_from_folder) == ("old-lab", True)
    note = name_note(config)
    assert note is not None and 'add `name = "old-lab"`' in note
    assert name_note(config) is None  # said once
    # Through a command: nothing more is said the second time.
    assert main(["check", "-C", str(root)]) == 0
    assert "has no `name`" not in capsys.readouterr().err
    # With a name, nothing is said at all.
    assert name_note(load_config(init_lab(tmp_path / "new"), environ={})) is None


def test_ps_all_projects_shows_each_labs_project_folder() -> None:
    def lab(image: str, folder: str, port: int) -> Lab:
        return Lab(name=f"x__{image}-{port}", image=image, ref="", image_id="", project="x",
                   project_dir=folder, port=port, url=f"http://127.0.0.1:{port}/lab",
                   state="running", exit_code=None, health="healthy", started=None,
                   published=(f"127.0.0.1:{port}->{port}",), token="")
    now = datetime.now(UTC)
    labs = (lab("pylab", "/work/a", 8888), lab("pylab", "/work/b", 8889))
    text = PsResult(labs, now, all_projects=True).to_text().splitlines()
    assert text[0].split() == ["PROJECT", "IMAGE", "STATUS", "UPTIME", "URL", "PORTS"]
    assert [line.split()[:2] for line in text[1:]] == [["/work/a", "pylab"],
                                                        ["/work/b", "pylab"]]
    assert [row["project_dir"] for row in PsResult(labs, now, True).to_data()] == [
        "/work/a", "/work/b"]
    assert "PROJECT" not in PsResult(labs, now).to_text()
    assert PsResult((), now, all_projects=True).to_text() == "no lab of any project is running"


def test_clean_names_images_left_under_bare_names_and_says_the_cache_is_shared() -> None:
    selection = Selection(FakeEngine("docker"), "test")
    result = CleanResult(selection, ("lab/pylab:latest",), (), "python:3.14-trixie", ("r1",),
                         ("pylab:latest", "pylab:previous"), "docker")
    text = result.to_text()
    assert "left alone, under bare names from before projects had names: pylab:latest, " \
           "pylab:previous; remove them with `docker rmi pylab:latest pylab:previous`" in text
    assert "this affects every project" in text
    assert result.to_data()["bare_names_kept"] == ["pylab:latest", "pylab:previous"]
