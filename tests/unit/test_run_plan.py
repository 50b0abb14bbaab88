"""How a lab is started, decided on the host: the `docker run` argv from the configuration,
with no engine. Each test reads like a promise of the container contract."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from labfiles import init_lab, write

from pyrlab.config.key import project_key
from pyrlab.config.model import Config
from pyrlab.config.readers import load_config
from pyrlab.engines.docker import DockerClassic
from pyrlab.errors import RunError
from pyrlab.launch.plan import (
    LABEL_LAB,
    LABEL_PORT,
    LABEL_PROJECT,
    LABEL_PROJECT_DIR,
    LABEL_SERVICES,
    LabPlan,
    container_name,
    lab_url,
    plan_lab,
)

TOKEN = "f" * 48


def config(root: Path, *sets: str) -> Config:
    return load_config(root, environ={}, sets=(
        f"run.notebooks={root / 'nb'}", f"run.home={root / 'home'}", "run.uid=1234",
        "run.gid=2345", *sets))


def argv(plan: LabPlan) -> list[str]:
    return DockerClassic("docker").run_argv(plan.request)


def pairs(args: list[str], flag: str) -> list[str]:
    """Every value given to `flag` in an argv."""
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    return init_lab(tmp_path / "lab")


def test_default_pylab(lab: Path) -> None:
    plan = plan_lab(config(lab), "pylab", token=TOKEN)
    args = argv(plan)
    # The project (`lab`, named for its folder by `init`) names its container and image.
    assert plan.name == container_name(config(lab), "pylab", 8888) == "lab__pylab-8888"
    assert plan.url == "http://127.0.0.1:8888/lab"
    assert args[:4] == ["docker", "run", "--detach", "--name"]
    assert args[-1] == "lab/pylab:latest"
    # The host user's UID/GID, decided now, not baked into the image.
    assert pairs(args, "--user") == ["1234:2345"]
    # No capability, no way to gain privileges.
    assert pairs(args, "--cap-drop") == ["ALL"]
    assert pairs(args, "--security-opt") == ["no-new-privileges"]
    assert "--privileged" not in args
    # Published on 127.0.0.1 only, the same port inside and outside; D-Tale and TensorBoard too.
    assert pairs(args, "--publish") == ["127.0.0.1:8888:8888", "127.0.0.1:40000:40000",
                                         "127.0.0.1:6006:6006"]
    env = dict(e.split("=", 1) for e in pairs(args, "--env"))
    # Each named port's number, for code in the lab; D-Tale reads its own variables (the
    # first D-Tale takes the published port, a second the next one).
    assert env == {"HOME": "/home/notebook", "JUPYTER_TOKEN": TOKEN, "PYRLAB_LAB_PORT": "8888",
                   "PYRLAB_PORT_DTALE": "40000", "PYRLAB_PORT_TENSORBOARD": "6006",
                   "DTALE_MIN_PORT": "40000", "DTALE_MAX_PORT": "49000"}
    assert pairs(args, "--mount") == [
        f"type=bind,source={lab / 'home'},target=/home/notebook",
        f"type=bind,source={lab / 'nb'},target=/home/notebook/work",
    ]
    labels = dict(e.split("=", 1) for e in pairs(args, "--label"))
    assert labels[LABEL_PROJECT] == "lab"
    assert labels[LABEL_PROJECT_DIR] == str(lab)
    assert labels[LABEL_LAB] == "pylab" and labels[LABEL_PORT] == "8888"
    assert labels[LABEL_SERVICES] == "dtale=40000,tensorboard=6006"  # for `url` and `ps`
    assert "--gpus" not in args
    # The home folder gets the notebooks' mount point, else the engine makes it as root.
    assert plan.folders == (lab / "home", lab / "home" / "work", lab / "nb")


def test_the_image_reference_is_the_projects_local_name(lab: Path) -> None:
    plan = plan_lab(config(lab, "prefix=registry.example/team/"), "rlab", token=TOKEN)
    assert plan.request.image == "lab/rlab:latest"  # the prefix is for the registry
    assert plan.name == "lab__rlab-9999"
    assert [p.host_port for p in plan.request.ports] == [9999]
    # Bare names, asked for: PREFIXIMAGE and pyrlab-IMAGE-PORT, as before projects had names.
    plan = plan_lab(config(lab, "prefix=registry.example/team/", 'name=""'), "rlab",
                    token=TOKEN)
    assert plan.request.image == "registry.example/team/rlab:latest"
    assert plan.name == "pyrlab-rlab-9999"
    labels = dict(e.split("=", 1) for e in pairs(argv(plan), "--label"))
    assert labels[LABEL_PROJECT] == project_key(lab)  # the folder tells bare projects apart


def test_port_override_moves_only_the_lab(lab: Path) -> None:
    plan = plan_lab(config(lab), "pylab", port=8898, token=TOKEN)
    args = argv(plan)
    assert plan.name == "lab__pylab-8898"
    assert plan.url == "http://127.0.0.1:8898/lab"
    assert pairs(args, "--publish")[0] == "127.0.0.1:8898:8898"
    assert "PYRLAB_LAB_PORT=8898" in pairs(args, "--env")


def test_busy_extra_ports_can_be_left_out(lab: Path) -> None:
    plan = plan_lab(config(lab), "pylab", port=8898, token=TOKEN, unpublished=["dtale"])
    assert [p.host_port for p in plan.request.ports] == [8898, 6006]
    assert "PYRLAB_PORT_DTALE" not in plan.request.env
    assert "DTALE_MIN_PORT" not in plan.request.env
    assert plan.request.labels[LABEL_SERVICES] == "tensorboard=6006"


@pytest.mark.parametrize("busy", [(), ("dtale",), ("tensorboard",), ("dtale", "tensorboard")])
@pytest.mark.parametrize("no_token", [False, True])
def test_a_finished_draft_is_the_plan_made_with_the_token(lab: Path, busy: tuple[str, ...],
                                                          no_token: bool) -> None:
    # `up` plans once, before the token exists and the ports are checked, and finishes
    # that plan: the same argv, variables in the same order, as planning again.
    cfg = config(lab, f"run.allow_no_token={str(no_token).lower()}")
    token = "" if no_token else TOKEN
    draft = plan_lab(cfg, "pylab", port=8898, token="" if no_token else "-")
    finished = draft.finished(token, unpublished=busy)
    planned = plan_lab(cfg, "pylab", port=8898, token=token, unpublished=busy)
    assert finished == planned
    assert argv(finished) == argv(planned)
    assert list(finished.request.env.items()) == list(planned.request.env.items())
    assert finished.request.labels[LABEL_SERVICES] == planned.request.labels[LABEL_SERVICES]
    assert draft.request.env.get("JUPYTER_TOKEN") == (None if no_token else "-")


def test_a_draft_planned_with_a_token_is_never_finished_without_one(lab: Path) -> None:
    with pytest.raises(RunError, match="a lab always has a token"):
        plan_lab(config(lab), "pylab", token="-").finished("")


def test_dtale_ports_above_its_default_range(lab: Path) -> None:
    plan = plan_lab(config(lab, "images.pylab.ports.dtale=50123"), "pylab", token=TOKEN)
    env = plan.request.env
    assert (env["DTALE_MIN_PORT"], env["DTALE_MAX_PORT"]) == ("50123", "50123")


def test_a_lab_port_that_is_another_port_is_refused(lab: Path) -> None:
    with pytest.raises(RunError, match="port 6006 is also the 'tensorboard' port of pylab"):
        plan_lab(config(lab), "pylab", port=6006, token=TOKEN)


@pytest.mark.parametrize("port", [0, 65536])
def test_port_out_of_range(lab: Path, port: int) -> None:
    with pytest.raises(RunError, match="expected a port number"):
        plan_lab(config(lab), "pylab", port=port, token=TOKEN)


def test_images_without_a_lab_port_are_not_labs(lab: Path) -> None:
    with pytest.raises(RunError, match="'rlab-base' has no lab port") as caught:
        plan_lab(config(lab), "rlab-base", token=TOKEN)
    assert caught.value.hint == "start one of pylab, rlab"
    with pytest.raises(RunError, match=r"unknown image 'nope' \(known: pyrlab-base, pylab"):
        plan_lab(config(lab), "nope", token=TOKEN)


def test_sudo_keeps_the_engine_defaults(lab: Path) -> None:
    args = argv(plan_lab(config(lab, "run.sudo=true"), "pylab", token=TOKEN))
    assert "--cap-drop" not in args and "--security-opt" not in args
    assert pairs(args, "--user") == ["1234:2345"]  # still the host user, not root


def test_bind_all_interfaces(lab: Path) -> None:
    plan = plan_lab(config(lab, "run.bind=0.0.0.0"), "pylab", token=TOKEN)
    assert pairs(argv(plan), "--publish")[0] == "0.0.0.0:8888:8888"
    assert plan.url == "http://127.0.0.1:8888/lab"  # how this host reaches it


def test_no_token_only_on_loopback(lab: Path) -> None:
    plan = plan_lab(config(lab, "run.allow_no_token=true"), "pylab", token="")
    assert plan.request.env["PYRLAB_ALLOW_NO_TOKEN"] == "1"
    assert "JUPYTER_TOKEN" not in plan.request.env
    with pytest.raises(RunError, match="refusing to publish a lab without a token on 0.0.0.0"):
        plan_lab(config(lab, "run.allow_no_token=true", "run.bind=0.0.0.0"), "pylab", token="")
    with pytest.raises(RunError, match="always has a token"):
        plan_lab(config(lab), "pylab", token="")


def test_cuda_images_always_get_the_gpus(lab: Path) -> None:
    assert pairs(argv(plan_lab(config(lab, "base.cuda=true"), "pylab", token=TOKEN)),
                 "--gpus") == ["all"]
    assert pairs(argv(plan_lab(config(lab), "pylab", token=TOKEN, gpus=True)),
                 "--gpus") == ["all"]


def test_extra_engine_arguments_come_last_before_the_image(lab: Path) -> None:
    cfg = config(lab, 'run.docker_args=["--shm-size", "2g"]',
                 'images.pylab.run_args=["--memory=8g"]')
    args = argv(plan_lab(cfg, "pylab", token=TOKEN))
    assert args[-4:] == ["--shm-size", "2g", "--memory=8g", "lab/pylab:latest"]


def test_env_rc_and_userlab_are_mounted_read_only_when_present(lab: Path) -> None:
    write(lab, ".env", "GREETING=hello\n")
    os.chmod(write(lab, "pylab.sh", "export A=1\n"), 0o755)
    os.chmod(write(lab, "userlab.sh", "#!/bin/bash\n"), 0o755)
    plan = plan_lab(config(lab, 'run.rc={ pylab = "pylab.sh" }'), "pylab", token=TOKEN)
    mounts = pairs(argv(plan), "--mount")[2:]
    assert mounts == [
        f"type=bind,source={lab / '.env'},target=/etc/pyrlab/env,readonly",
        f"type=bind,source={lab / 'pylab.sh'},target=/etc/pyrlab/rc.sh,readonly",
        f"type=bind,source={lab / 'userlab.sh'},target=/etc/pyrlab/userlab.sh,readonly",
    ]
    assert plan.notes == ()
    # rc scripts are per image: rlab does not get pylab's.
    rlab = plan_lab(config(lab, 'run.rc={ pylab = "pylab.sh" }'), "rlab", token=TOKEN)
    assert not any("rc.sh" in m for m in pairs(argv(rlab), "--mount"))


def test_scripts_that_would_be_ignored_are_pointed_out(lab: Path) -> None:
    write(lab, "userlab.sh", "#!/bin/bash\n")  # not executable
    plan = plan_lab(config(lab, 'run.rc={ pylab = "missing.sh" }'), "pylab", token=TOKEN)
    assert plan.notes == (
        f"run.rc.pylab: {lab / 'missing.sh'} does not exist; the lab starts without it",
        (f"run.userlab: {lab / 'userlab.sh'} is not executable, so the lab ignores it "
         "(chmod +x userlab.sh)"),
    )


def test_no_env_file_and_no_userlab_mount_nothing(lab: Path) -> None:
    args = argv(plan_lab(config(lab), "pylab", token=TOKEN))
    assert not any("/etc/pyrlab" in m for m in pairs(args, "--mount"))


def test_empty_paths_mean_not_mounted(lab: Path) -> None:
    plan = plan_lab(config(lab, 'run.home=""'), "pylab", token=TOKEN)
    assert [m.target for m in plan.request.mounts] == ["/home/notebook/work"]
    assert plan.folders == (lab / "nb",)


def test_relative_paths_are_relative_to_the_project(lab: Path) -> None:
    cfg = load_config(lab, environ={}, sets=("run.notebooks=notebooks",))
    plan = plan_lab(cfg, "pylab", token=TOKEN)
    assert Path(plan.request.mounts[-1].source) == lab / "notebooks"


def test_urls() -> None:
    assert lab_url("127.0.0.1", 8888, "abc") == "http://127.0.0.1:8888/lab?token=abc"
    assert lab_url("0.0.0.0", 8888) == "http://127.0.0.1:8888/lab"
    assert lab_url("::", 8888) == "http://127.0.0.1:8888/lab"
    assert lab_url("::1", 9999) == "http://[::1]:9999/lab"
    assert lab_url("192.168.1.5", 8888) == "http://192.168.1.5:8888/lab"


def test_a_path_with_a_comma_is_refused(lab: Path) -> None:
    with pytest.raises(RunError, match="a path with a comma cannot be mounted"):
        plan_lab(config(lab, f"run.notebooks={lab / 'a,b'}"), "pylab", token=TOKEN)
