"""No silent privilege: what a project's config asks of the host beyond harmless run
arguments needs `--allow-unsafe` on the command line, and nothing else grants it."""

from __future__ import annotations

from pathlib import Path

import pytest
from labfiles import init_lab

from pyrlab.config.model import Config
from pyrlab.config.readers import load_config
from pyrlab.errors import ConfigError
from pyrlab.launch.plan import plan_lab
from pyrlab.launch.safety import check_plan, harmless_args

TOKEN = "f" * 48


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return init_lab(tmp_path / "project")


def config(root: Path, *sets: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(root, environ=environ or {}, sets=(
        f"run.notebooks={root / 'nb'}", f"run.home={root / 'home'}", "run.uid=1234",
        "run.gid=2345", *sets))


def refused(cfg: Config, *, command: str = "pyrlab up", token: str = TOKEN) -> list[str]:
    plan = plan_lab(cfg, "pylab", token=token)
    with pytest.raises(ConfigError) as caught:
        check_plan(cfg, plan, allow_unsafe=False, command=command)
    return [str(p) for p in caught.value.problems]


def toml_list(*args: str) -> str:
    return "[" + ", ".join(f"'{a}'" for a in args) + "]"


# --------------------------------------------------------------------------- run arguments


@pytest.mark.parametrize(("args", "shown"), [
    (("--privileged",), "--privileged"),
    (("--privileged=true",), "--privileged=true"),
    (("-u0",), "-u0"),
    (("-u", "0"), "-u 0"),
    (("--user=root",), "--user=root"),
    (("-itu0",), "-itu0"),  # combined short flags end on -u with its value
    (("-v/:/host",), "-v/:/host"),
    (("-v", "/:/host"), "-v /:/host"),
    (("--volume=/:/host",), "--volume=/:/host"),
    (("--mount", "type=bind,src=/,dst=/host"), "--mount type=bind,src=/,dst=/host"),
    (("--cap-add=SYS_ADMIN",), "--cap-add=SYS_ADMIN"),
    (("--security-opt", "seccomp=unconfined"), "--security-opt seccomp=unconfined"),
    (("--network", "host"), "--network host"),
    (("--pid=host",), "--pid=host"),
    (("--device=/dev/sda",), "--device=/dev/sda"),
    (("-p", "0.0.0.0:2222:22"), "-p 0.0.0.0:2222:22"),
    (("--env-file", "/etc/shadow"), "--env-file /etc/shadow"),
    (("--gpus", "all"), "--gpus all"),
    (("--read-only=yes",), "--read-only=yes"),
])
def test_every_spelling_of_a_widening_argument_is_refused(
        project: Path, args: tuple[str, ...], shown: str) -> None:
    found = refused(config(project, f"run.docker_args={toml_list(*args)}"))
    assert found == [f"pyrlab.toml: run.docker_args: '{shown}' " + (
        "widens what the lab may do on the host" if not shown.startswith("--read-only")
        else "--read-only takes true or false")
        + " (from --set run.docker_args); pyrlab up --allow-unsafe allows it"]


@pytest.mark.parametrize(("args", "why"), [
    (("--memory",), "--memory needs a value"),  # it would take the image's name as its value
    (("alpine",), "is not an option: the engine would read it as the image to run"),
    (("-e", "AWS_SECRET_ACCESS_KEY"), ("copies the host's variable 'AWS_SECRET_ACCESS_KEY' into "
     "the lab (give NAME=VALUE)")),
    (("--env=JUPYTER_TOKEN=",), ("overrides JUPYTER_TOKEN, which pyrlab sets (the token, ports "
     "and home)")),
    (("-eHOME=/",), "overrides HOME, which pyrlab sets (the token, ports and home)"),
    (("--label", "org.pyrlab.project=other"), ("org.pyrlab.* labels are pyrlab's own: they "
     "tell which labs are whose")),
])
def test_an_allowed_option_with_a_widening_value_is_refused(
        project: Path, args: tuple[str, ...], why: str) -> None:
    (found,) = refused(config(project, f"images.pylab.run_args={toml_list(*args)}"))
    assert found.startswith("pyrlab.toml: images.pylab.run_args: '")
    assert f"' {why} (from --set images.pylab.run_args); pyrlab up --allow-unsafe allows it" \
        in found


ALLOWED = ("--memory=8g", "-m", "4g", "--memory-swap", "8g", "--cpus=2", "-c512",
           "--cpu-shares=512", "--pids-limit", "500", "--ulimit", "nofile=4096:8192",
           "--shm-size=2g", "-e", "MPLBACKEND=Agg", "--env=OMP_NUM_THREADS=2", "-eA=1",
           "--label", "team=data", "-l=owner=me", "--init", "--read-only=false")


def test_allowlisted_arguments_pass_unchanged(project: Path) -> None:
    cfg = config(project, f"run.docker_args={toml_list(*ALLOWED[:10])}",
                 f"images.pylab.run_args={toml_list(*ALLOWED[10:])}")
    plan = plan_lab(cfg, "pylab", token=TOKEN)
    assert check_plan(cfg, plan, allow_unsafe=False) == []
    assert plan.request.extra_args == ALLOWED


def test_the_self_test_lab_gets_only_the_harmless_arguments(project: Path) -> None:
    cfg = config(project, "run.docker_args=['--memory', '4g', '--privileged', '-v', '/:/h']",
                 "images.pylab.run_args=['-u0', '--shm-size=1g', '-e', 'A=1', '--pid=host']")
    plan = plan_lab(cfg, "pylab", token=TOKEN)
    assert harmless_args(plan) == ("--memory", "4g", "--shm-size=1g", "-e", "A=1")


def test_allow_unsafe_grants_and_says_what_it_granted(project: Path) -> None:
    cfg = config(project, "run.docker_args=['--cap-add', 'SYS_PTRACE']", "run.uid=0")
    plan = plan_lab(cfg, "pylab", token=TOKEN)
    assert check_plan(cfg, plan, allow_unsafe=True) == [
        ("run.docker_args: '--cap-add SYS_PTRACE' widens what the lab may do on the host; "
        "allowed by --allow-unsafe"),
        "run.uid: '0' runs the lab as root; allowed by --allow-unsafe"]
    assert plan.request.extra_args[-2:] == ("--cap-add", "SYS_PTRACE")


def test_the_refusal_names_the_environment_variable(project: Path) -> None:
    cfg = config(project, environ={"PYRLAB_RUN__DOCKER_ARGS": '["--privileged"]'})
    assert refused(cfg, command="pyrlab restart") == [
        ("pyrlab.toml: run.docker_args: '--privileged' widens what the lab may do on the host "
        "(from environment PYRLAB_RUN__DOCKER_ARGS); pyrlab restart --allow-unsafe allows it")]


def test_no_config_value_or_variable_grants_it(project: Path) -> None:
    for environ, sets in (({"PYRLAB_RUN__ALLOW_UNSAFE": "true"}, ()),
                          ({}, ("allow_unsafe=true",)), ({}, ("run.allow_unsafe=true",))):
        with pytest.raises(ConfigError, match="unknown key"):
            load_config(project, environ=environ, sets=sets)
    # A one-word stray variable is a warning, and it grants nothing either.
    cfg = load_config(project, environ={"PYRLAB_ALLOW_UNSAFE": "true"})
    assert [str(w) for w in cfg.warnings] == [
        "environment PYRLAB_ALLOW_UNSAFE: not a variable of pyrlab; ignored"]
    assert cfg.overrides == ()


def test_the_project_file_cannot_grant_it_either(project: Path) -> None:
    toml = project / "pyrlab.toml"
    text = toml.read_text()
    assert "\ndocker_args = []" in text
    toml.write_text(text.replace("\ndocker_args = []", "\ndocker_args = ['--privileged']", 1))
    found = refused(config(project))
    assert found == [("pyrlab.toml: run.docker_args: '--privileged' widens what the lab may "
                     "do on the host; pyrlab up --allow-unsafe allows it")]


# --------------------------------------------------------------------------- uid and mounts


def test_uid_0_is_refused(project: Path) -> None:
    assert refused(config(project, "run.uid=0")) == [
        ("pyrlab.toml: run.uid: '0' runs the lab as root (from --set run.uid); "
        "pyrlab up --allow-unsafe allows it")]


@pytest.mark.parametrize(("value", "why"), [
    ("/", "is the host's root folder"),
    ("~", "is your whole home folder"),
    ("/etc", "is a system folder (/etc)"),
    ("/usr/share", "lies in a system folder (/usr)"),
    ("/tmp", "is a folder the whole host shares"),
])
def test_mounting_the_host_is_refused(project: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, value: str,
                                      why: str) -> None:
    monkeypatch.setenv("HOME", "/nonexistent-home/me")
    (found,) = refused(config(project, f"run.notebooks={value}"))
    shown = str(Path(value).expanduser())
    assert found == (f"pyrlab.toml: run.notebooks: '{shown}' {why}: mounting it widens what "
                     "the lab may do on the host (from --set run.notebooks); pyrlab up "
                     "--allow-unsafe allows it")


def test_a_folder_that_holds_the_home_is_refused(project: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "people" / "me"))
    (found,) = refused(config(project, f"run.home={tmp_path / 'people'}"))
    assert f"'{tmp_path / 'people'}' holds your whole home folder" in found


def test_a_symlink_to_a_system_folder_is_refused(project: Path, tmp_path: Path) -> None:
    (tmp_path / "nb-link").symlink_to("/etc")
    (found,) = refused(config(project, f"run.notebooks={tmp_path / 'nb-link'}"))
    assert f"'{tmp_path / 'nb-link'} (that is /etc)' is a system folder (/etc)" in found


def test_folders_in_the_home_and_elsewhere_are_the_users_choice(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    # pyrlab's defaults, outside the project folder, are no project's choice: the project's
    # own home under ~/docker (its name is its folder's here), or with bare names ~/docker.
    cfg = config(project, "run.notebooks=~/notebooks", "run.home=~/docker/project")
    assert check_plan(cfg, plan_lab(cfg, "pylab", token=TOKEN), allow_unsafe=False) == []
    cfg = config(project, "run.home=~/docker", "name=''")
    assert check_plan(cfg, plan_lab(cfg, "pylab", token=TOKEN), allow_unsafe=False) == []
    # Another project's home, or the shared one, is not this named project's default.
    for home in ("~/docker/other", "~/docker"):
        (found,) = refused(config(project, f"run.home={home}"))
        assert found.startswith("pyrlab.toml: run.home: ") and "lies outside" in found
    # Any other folder outside the project is the user's, from the user's own file.
    user_file = tmp_path / "user.toml"
    user_file.write_text(f'[run]\nnotebooks = "{tmp_path / "data"}"\nhome = "~/.ssh"\n')
    cfg = load_config(project, environ={"PYRLAB_USER_CONFIG": str(user_file)})
    assert check_plan(cfg, plan_lab(cfg, "pylab", token=TOKEN), allow_unsafe=False) == []
    # The same from --set, or from the environment, is refused: a project's Makefile or
    # scripts can set those.
    found = refused(config(project, f"run.notebooks={tmp_path / 'data'}", "run.home=''"))
    assert found == [
        (f"pyrlab.toml: run.notebooks: '{tmp_path / 'data'}' lies outside the project folder "
        f"{project}: a project may mount its own folders and pyrlab's default ones; mounting "
        f"another widens what the lab may do on the host (from --set run.notebooks); "
        f"pyrlab up --allow-unsafe allows it, or setting it in your own "
        f"{tmp_path / 'user-config' / 'config.toml'}")]
    cfg = load_config(project, environ={"PYRLAB_RUN__HOME": "~/.ssh",
                                        "PYRLAB_USER_CONFIG": str(user_file)})
    (found,) = refused(cfg)
    assert found.startswith(f"pyrlab.toml: run.home: '{tmp_path / 'me' / '.ssh'}' lies outside")
    assert "(from environment PYRLAB_RUN__HOME)" in found
    # Inside the project folder, anything goes.
    cfg = config(project, "run.notebooks=work", f"run.home={project / 'home'}")
    assert check_plan(cfg, plan_lab(cfg, "pylab", token=TOKEN), allow_unsafe=False) == []


def test_a_lab_without_a_token_is_the_users_choice(project: Path, tmp_path: Path) -> None:
    cfg = config(project, "run.allow_no_token=true")
    assert refused(cfg, token="") == [
        ("pyrlab.toml: run.allow_no_token: 'true' starts the lab without a token: any program "
        "on this machine, and any web page open in its browser that reaches the port, could "
        "run code as you (from --set run.allow_no_token); pyrlab up --allow-unsafe allows "
        f"it, or setting it in your own {tmp_path / 'user-config' / 'config.toml'}")]
    assert check_plan(cfg, plan_lab(cfg, "pylab", token=""), allow_unsafe=True) == [
        ("run.allow_no_token: 'true' starts the lab without a token: any program on this "
        "machine, and any web page open in its browser that reaches the port, could run code "
        "as you; allowed by --allow-unsafe")]
    (project / "pyrlab.toml").write_text((project / "pyrlab.toml").read_text().replace(
        "\n[run]\n", "\n[run]\nallow_no_token = true\n"))
    (found,) = refused(load_config(project, environ={}), token="")
    assert found.startswith("pyrlab.toml: run.allow_no_token: 'true' starts the lab without")
    assert "(from" not in found
    user_file = tmp_path / "user.toml"
    user_file.write_text("[run]\nallow_no_token = true\n")
    cfg = load_config(project, environ={"PYRLAB_USER_CONFIG": str(user_file)})
    assert check_plan(cfg, plan_lab(cfg, "pylab", token=""), allow_unsafe=False) == []
