"""pyrlab.toml: defaults, every section, overrides and how each mistake is reported."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from labfiles import PEM, init_lab, make_project, write

from pyrlab.cli import main
from pyrlab.config.model import Config, config_keys
from pyrlab.config.project import load_project
from pyrlab.config.readers import load_config
from pyrlab.config.tomlread import key_lines, line_of
from pyrlab.errors import EXIT_CONFIG, ConfigError


def load(root: Path, toml: str | None = None, *, environ: dict[str, str] | None = None,
         sets: tuple[str, ...] = ()) -> Config:
    if toml is not None:
        write(root, "pyrlab.toml", toml)
    return load_config(root, environ=environ or {}, sets=sets)


def problems(root: Path, toml: str | None = None, *, environ: dict[str, str] | None = None,
             sets: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(root, toml, environ=environ, sets=sets)
    assert caught.value.exit_code == EXIT_CONFIG
    return [str(p) for p in caught.value.problems]


# --------------------------------------------------------------------------- defaults


def test_no_config_file_gives_the_four_default_images(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.file is None
    assert list(config.images) == ["pyrlab-base", "pylab", "rlab-base", "rlab"]
    assert {n: i.parent for n, i in config.images.items()} == {
        "pyrlab-base": None, "pylab": "pyrlab-base", "rlab-base": "pyrlab-base", "rlab": "rlab-base",
    }
    assert dict(config.images["pylab"].ports) == {"lab": 8888, "dtale": 40000, "tensorboard": 6006}
    assert dict(config.images["rlab"].ports) == {"lab": 9999}
    assert config.images["pylab"].lab_port == 8888
    assert config.images["rlab"].lab_port == 9999
    assert config.images["pyrlab-base"].lab_port is None
    assert config.images["rlab-base"].r == "debian"
    assert config.images["pylab"].lists["requirements"] == ("requirements.txt",)
    assert config.images["rlab"].lists["r_packages"] == ("r_packages.txt",)


def test_init_s_file_restates_the_default_images(tmp_path: Path) -> None:
    # `pyrlab init` writes the defaults out for the user to edit: the same images, ports
    # and lists as a project without a file, so that a default is decided in one place.
    initialized = load(init_lab(tmp_path / "lab"))
    defaults = load(tmp_path / "none")
    assert initialized.file is not None and defaults.file is None
    assert {name: (i.parent, i.ports, i.lists, i.r)
            for name, i in initialized.images.items()} == \
        {name: (i.parent, i.ports, i.lists, i.r)
         for name, i in defaults.images.items()}


def test_defaults_of_the_other_sections(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.engine == "auto"
    assert config.prefix == ""
    assert config.base.image == "python:3.14-trixie"
    assert config.base.tag == "3.14-trixie"
    assert config.base.python == "image"
    assert config.base.lists["debs"] == ("base_debs.txt",)
    assert (config.base.cuda, config.base.ca_certificates) == (False, ())
    assert config.proxy.apt is None and config.proxy.pip_index is None
    assert config.run.bind == "127.0.0.1"
    assert config.run.notebooks == "~/notebooks"
    assert config.run.home == f"~/docker/{config.name}"  # one home per project
    assert config.run.envfile == ".env"
    assert config.run.sudo is False and config.run.allow_no_token is False


def test_uid_gid_default_to_the_calling_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 1234)
    monkeypatch.setattr(os, "getgid", lambda: 567)
    run = load(tmp_path).run
    assert (run.uid, run.gid) == (1234, 567)


def test_uid_gid_behind_sudo_are_the_real_users(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "getgid", lambda: 0)
    monkeypatch.setenv("SUDO_UID", "1501")
    monkeypatch.setenv("SUDO_GID", "1502")
    run = load(tmp_path).run
    assert (run.uid, run.gid) == (1501, 1502)


def test_uid_gid_for_plain_root_are_1000_never_root(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "getgid", lambda: 0)
    assert (load(tmp_path).run.uid, load(tmp_path).run.gid) == (1000, 1000)
    # sudo from root to root is still root: fall back to 1000 as well.
    monkeypatch.setenv("SUDO_UID", "0")
    monkeypatch.setenv("SUDO_GID", "0")
    assert (load(tmp_path).run.uid, load(tmp_path).run.gid) == (1000, 1000)


def test_uid_gid_from_the_file_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_UID", "1501")
    monkeypatch.setenv("SUDO_GID", "1502")
    run = load(tmp_path, "[run]\nuid = 2000\ngid = 2001\n").run
    assert (run.uid, run.gid) == (2000, 2001)


# --------------------------------------------------------------------------- every section

EVERY_SECTION = """\
engine = "podman"
prefix = "ghcr.io/me/"

[base]
image = "registry.example.org:5000/debian/python:3.13-bookworm"
python = "debian"
debs = ["base_debs.txt", "more_debs.txt"]
cuda = true
cuda_toolkit = true
ca_certificates = "corp.pem"
locale = "en_US.UTF-8"

[proxy]
apt = "http://127.0.0.1:3142"
apt_https = true
pip_index = "http://127.0.0.1:3141/root/pypi/+simple/"
pip_extra_index = ["https://download.pytorch.org/whl/cu128"]
cran = "https://packagemanager.posit.co/cran/latest"
http_proxy = "http://proxy:3128"
https_proxy = "http://proxy:3128"
no_proxy = "localhost,127.0.0.1,.internal"

[images.base]

[images.py]
from = "base"
requirements = ["requirements.txt"]
ports = { lab = 8898, tensorboard = 6007 }
run_args = ["--shm-size=2g"]

[images.r]
from = "base"
debs = "r_debs.txt"
r = "cran"
r_source = "apt"
r_packages = ["r_packages.txt"]

[run]
notebooks = "/srv/notebooks"
home = "home"
rc = { py = "py.sh" }
userlab = "mylab.sh"
envfile = "lab.env"
bind = "0.0.0.0"
uid = 1001
gid = 1002
docker_args = ["--gpus", "all"]
sudo = true
allow_no_token = true
"""


def test_every_section_is_read(tmp_path: Path) -> None:
    config = load(tmp_path, EVERY_SECTION)
    assert config.file == tmp_path.resolve() / "pyrlab.toml"
    assert (config.engine, config.prefix) == ("podman", "ghcr.io/me/")
    assert config.registry_ref("py") == "ghcr.io/me/py:latest"
    assert config.image_ref("py") == f"{config.name}/py:latest"  # the prefix is the registry's
    base = config.base
    assert base.image == "registry.example.org:5000/debian/python:3.13-bookworm"
    assert base.tag == "3.13-bookworm"
    assert (base.python, base.cuda, base.cuda_toolkit) == ("debian", True, True)
    assert base.lists["debs"] == ("base_debs.txt", "more_debs.txt")
    assert base.ca_certificates == ("corp.pem",)  # a single string is a one-item list
    assert base.locale == "en_US.UTF-8"
    proxy = config.proxy
    assert proxy.apt == "http://127.0.0.1:3142" and proxy.apt_https is True
    assert proxy.pip_index == "http://127.0.0.1:3141/root/pypi/+simple/"
    assert proxy.pip_extra_index == ("https://download.pytorch.org/whl/cu128",)
    assert proxy.cran == "https://packagemanager.posit.co/cran/latest"
    assert (proxy.http_proxy, proxy.https_proxy) == ("http://proxy:3128", "http://proxy:3128")
    assert proxy.no_proxy == "localhost,127.0.0.1,.internal"
    # The images table replaces the default graph entirely.
    assert list(config.images) == ["base", "py", "r"]
    py, r = config.images["py"], config.images["r"]
    assert py.ports == (("lab", 8898), ("tensorboard", 6007))
    assert py.run_args == ("--shm-size=2g",)
    assert (r.lists["debs"], r.r, r.r_source, r.lists["r_packages"]) == (
        ("r_debs.txt",), "cran", "apt", ("r_packages.txt",))
    run = config.run
    assert (run.notebooks, run.home, run.userlab, run.envfile) == (
        "/srv/notebooks", "home", "mylab.sh", "lab.env")
    assert run.rc_for("py") == "py.sh" and run.rc_for("r") is None
    assert (run.bind, run.uid, run.gid, run.sudo, run.allow_no_token) == (
        "0.0.0.0", 1001, 1002, True, True)
    assert run.docker_args == ("--gpus", "all")
    assert config.path(run.home) == tmp_path.resolve() / "home"
    assert config.path(run.notebooks) == Path("/srv/notebooks")


def test_bootstrap_base_defaults_to_the_bootstrapped_image_and_debian_python(
        tmp_path: Path) -> None:
    base = load(tmp_path, '[base]\nbootstrap = "bookworm"\n').base
    assert (base.bootstrap, base.image, base.python) == ("bookworm", "pyrlab-debian:bookworm",
                                                         "debian")


# --------------------------------------------------------------------------- overrides


def test_set_overrides_a_value(tmp_path: Path) -> None:
    config = load(tmp_path, sets=("run.bind=0.0.0.0", "images.pylab.ports.lab=8898"))
    assert config.run.bind == "0.0.0.0"
    assert config.images["pylab"].lab_port == 8898
    # The other ports of the image are kept.
    assert dict(config.images["pylab"].ports)["dtale"] == 40000
    assert dict(config.overrides) == {"run.bind": "--set run.bind",
                                      "images.pylab.ports.lab": "--set images.pylab.ports.lab"}


def test_environment_overrides_a_value(tmp_path: Path) -> None:
    config = load(tmp_path, environ={"PYRLAB_RUN__BIND": "0.0.0.0",
                                     "PYRLAB_IMAGES__PYLAB__PORTS__LAB": "8898"})
    assert config.run.bind == "0.0.0.0"
    assert config.images["pylab"].lab_port == 8898


def test_environment_underscore_matches_a_hyphen_in_a_name(tmp_path: Path) -> None:
    config = load(tmp_path, environ={"PYRLAB_IMAGES__RLAB_BASE__R": "cran"})
    assert config.images["rlab-base"].r == "cran"
    assert "rlab_base" not in config.images  # no stray image was created
    assert dict(config.overrides) == {"images.rlab-base.r": "environment PYRLAB_IMAGES__RLAB_BASE__R"}


def test_environment_reaches_keys_with_underscores(tmp_path: Path) -> None:
    config = load(tmp_path, environ={"PYRLAB_PROXY__APT_HTTPS": "true",
                                     "PYRLAB_BASE__CA_CERTIFICATES": '["a.pem", "b.pem"]'})
    assert config.proxy.apt_https is True
    assert config.base.ca_certificates == ("a.pem", "b.pem")


def test_environment_variables_that_are_not_config_are_ignored(tmp_path: Path) -> None:
    config = load(tmp_path, environ={"PYRLAB_LOG_LEVEL": "debug", "PYRLAB_STATE_DIR": "/x",
                                     "HOME": "/root",
                                     "PYRLAB_USER_CONFIG": "",  # no user file
                                     # .ci/setup-host.sh's, exported for the README command
                                     "PYRLAB_CI_SKIP_BUILDX": "1",
                                     "PYRLAB_CI_MIRROR": "http://deb.example/debian"})
    assert config.overrides == ()
    assert config.warnings == ()


def test_a_stray_one_word_variable_is_a_warning_with_a_guess_and_ignored(tmp_path: Path) -> None:
    config = load(tmp_path, environ={"PYRLAB_LOGLEVEL": "1", "PYRLAB_ENGIN": "podman",
                                     "PYRLAB_RUN_BIND": "0.0.0.0", "PYRLAB_CONFIG": "x.toml",
                                     "PYRLAB_ZZZ": "1", "PYRLAB_": "1"})
    assert [str(w) for w in config.warnings] == [
        "environment PYRLAB_: not a variable of pyrlab; ignored",
        # PYRLAB_CONFIG was reserved and never did anything; it is no variable of pyrlab.
        ("environment PYRLAB_CONFIG: not a variable of pyrlab; ignored (did you mean "
        "PYRLAB_USER_CONFIG?)"),
        ("environment PYRLAB_ENGIN: not a variable of pyrlab; ignored (did you mean "
        "PYRLAB_ENGINE?)"),
        ("environment PYRLAB_LOGLEVEL: not a variable of pyrlab; ignored (did you mean "
        "PYRLAB_LOG_LEVEL?)"),
        ("environment PYRLAB_RUN_BIND: not a variable of pyrlab; ignored (did you mean "
        "PYRLAB_RUN__BIND?)"),
        "environment PYRLAB_ZZZ: not a variable of pyrlab; ignored",
    ]
    assert (config.engine, config.run.bind, config.overrides) == ("auto", "127.0.0.1", ())


def test_a_stray_variable_is_shown_as_a_warning_and_the_command_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    monkeypatch.setenv("PYRLAB_ENGIN", "podman")
    assert main(["check", "-C", str(lab)]) == 0
    err = capsys.readouterr().err
    assert ("pyrlab: warning: environment PYRLAB_ENGIN: not a variable of pyrlab; ignored "
            "(did you mean PYRLAB_ENGINE?)\n") in err


def test_a_one_word_top_level_key_and_a_bad_value_stay_what_they_were(tmp_path: Path) -> None:
    assert load(tmp_path, environ={"PYRLAB_ENGINE": "podman"}).engine == "podman"
    assert problems(tmp_path, environ={"PYRLAB_ENGINE": "podmn"}) == [
        ("pyrlab.toml: engine: expected one of 'auto', 'docker', 'podman', got 'podmn' "
        "(from environment PYRLAB_ENGINE)")]


def test_an_unknown_key_of_an_override_gets_a_guess_in_its_own_spelling(tmp_path: Path) -> None:
    run_keys = ("(known: allow_no_token, bind, docker_args, envfile, gid, home, notebooks, rc, "
                "sudo, uid, userlab)")
    assert problems(tmp_path, environ={"PYRLAB_RUN__BND": "x"}) == [
        (f"pyrlab.toml: run.bnd: unknown key; did you mean PYRLAB_RUN__BIND? {run_keys} "
        "(from environment PYRLAB_RUN__BND)")]
    assert problems(tmp_path, sets=("run.bnd=x",)) == [
        (f"pyrlab.toml: run.bnd: unknown key; did you mean run.bind? {run_keys} "
        "(from --set run.bnd)")]
    assert problems(tmp_path, sets=("run.zzz=x",)) == [
        f"pyrlab.toml: run.zzz: unknown key {run_keys} (from --set run.zzz)"]


def test_an_override_inside_an_image_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    known = "(known: pyrlab-base, pylab, rlab-base, rlab)"
    assert problems(tmp_path, sets=("images.pylb.ports.lab=8898",)) == [
        (f"--set images.pylb.ports.lab: unknown image 'pylb'; did you mean "
        f"images.pylab.ports.lab? {known}")]
    assert problems(tmp_path, environ={"PYRLAB_IMAGES__RLAB_BAS__R": "cran"}) == [
        (f"environment PYRLAB_IMAGES__RLAB_BAS__R: unknown image 'rlab_bas'; did you mean "
        f"PYRLAB_IMAGES__RLAB_BASE__R? {known}")]
    # A whole image table adds an image, as asked.
    config = load(tmp_path, sets=('images.extra={from="pylab"}',))
    assert config.images["extra"].parent == "pylab"


def test_toml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    assert problems(tmp_path, '[run]\nbind = "x"\nuid = \n') == [
        "pyrlab.toml:3: not valid TOML: invalid value (column 7)"]
    assert problems(tmp_path, 'name = "a"\nx = [1,\n') == [
        "pyrlab.toml:2: not valid TOML: invalid value (at the end of the file)"]


def test_precedence_set_beats_environment_beats_file(tmp_path: Path) -> None:
    write(tmp_path, "pyrlab.toml", '[run]\nbind = "10.0.0.1"\n')
    assert load(tmp_path).run.bind == "10.0.0.1"
    env = {"PYRLAB_RUN__BIND": "10.0.0.2"}
    assert load(tmp_path, environ=env).run.bind == "10.0.0.2"
    assert load(tmp_path, environ=env, sets=("run.bind=10.0.0.3",)).run.bind == "10.0.0.3"


def test_a_bad_overridden_value_names_where_it_came_from(tmp_path: Path) -> None:
    assert problems(tmp_path, environ={"PYRLAB_IMAGES__PYLAB__PORTS__LAB": "abc"}) == [
        ("pyrlab.toml: images.pylab.ports.lab: expected a port number 1-65535, got 'abc' "
        "(from environment PYRLAB_IMAGES__PYLAB__PORTS__LAB)")
    ]
    assert problems(tmp_path, sets=("run.bind=everywhere",)) == [
        ("pyrlab.toml: run.bind: expected an IP address to publish ports on, got 'everywhere' "
        "(from --set run.bind)")
    ]


def test_set_without_equals_is_a_clear_error(tmp_path: Path) -> None:
    assert problems(tmp_path, sets=("run.bind",)) == [
        "--set run.bind: expected KEY=VALUE with a dotted key like run.bind"
    ]


def test_set_into_a_value_that_is_not_a_table(tmp_path: Path) -> None:
    found = problems(tmp_path, '[run]\nbind = "10.0.0.1"\n', sets=("run.bind.x=1",))
    assert found == ["--set run.bind.x: 'run.bind' is not a table"]


# --------------------------------------------------------------------------- mistakes


def test_unknown_keys_are_errors_naming_file_and_key(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        colour = "blue"
        [base]
        imagee = "x"
        [images.pylab]
        requirement = ["requirements.txt"]
        [run]
        port = 8888
        """)
    assert found == [
        "pyrlab.toml:1: colour: unknown key (known: base, build, engine, images, name, prefix, proxy, run, test)",
        ("pyrlab.toml:3: base.imagee: unknown key; did you mean base.image? (known: bootstrap, "
        "ca_certificates, cuda, cuda_toolkit, debs, image, jupyterhub, locale, mirror, python, "
        "slim, snapshot)"),
        ("pyrlab.toml:5: images.pylab.requirement: unknown key; did you mean "
        "images.pylab.requirements? (known: debs, from, ports, r, r_packages, r_source, "
        "requirements, run_args)"),
        ("pyrlab.toml:7: run.port: unknown key (known: allow_no_token, bind, docker_args, envfile, "
        "gid, home, notebooks, rc, sudo, uid, userlab)"),
    ]


def test_wrong_types_and_values_are_all_reported_together(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        engine = "dockr"
        [base]
        cuda = "yes"
        python = 3
        debs = [1, 2]
        [images.pylab]
        ports = { lab = "abc", dtale = 0, tensorboard = 65536, Web = 80 }
        r = "cranberry"
        [run]
        uid = -1
        sudo = "no"
        """)
    assert found == [
        "pyrlab.toml:1: engine: expected one of 'auto', 'docker', 'podman', got 'dockr'",
        "pyrlab.toml:4: base.python: expected one of 'image', 'debian', got an integer",
        "pyrlab.toml:5: base.debs: expected an array of strings, got an array",
        "pyrlab.toml:3: base.cuda: expected true or false, got a string",
        "pyrlab.toml:7: images.pylab.ports.lab: expected a port number 1-65535, got 'abc'",
        "pyrlab.toml:7: images.pylab.ports.dtale: expected a port number 1-65535, got 0",
        "pyrlab.toml:7: images.pylab.ports.tensorboard: expected a port number 1-65535, got 65536",
        "pyrlab.toml:7: images.pylab.ports.Web: port names are lower-case words",
        "pyrlab.toml:8: images.pylab.r: expected one of 'debian', 'cran', got 'cranberry'",
        "pyrlab.toml:10: run.uid: expected a numeric id, got -1",
        "pyrlab.toml:11: run.sudo: expected true or false, got a string",
    ]


def test_two_labs_cannot_share_a_port(tmp_path: Path) -> None:
    assert problems(tmp_path, sets=("images.rlab.ports.lab=8888",)) == [
        ("pyrlab.toml: images.rlab.ports.lab: port 8888 is also the lab port of pylab: the two "
        "labs could not run at the same time; give each lab its own ports "
        "(from --set images.rlab.ports.lab)")]
    assert problems(tmp_path, sets=("images.rlab.ports.lab=40000",)) == [
        ("pyrlab.toml: images.rlab.ports.lab: port 40000 is also the 'dtale' port of pylab: the "
        "two labs could not run at the same time; give each lab its own ports "
        "(from --set images.rlab.ports.lab)")]
    toml = ("[images.a]\nports = { lab = 8001 }\n[images.b]\nports = { lab = 8002, web = 8001 }\n")
    assert problems(tmp_path, toml) == [
        ("pyrlab.toml:4: images.b.ports.web: port 8001 is also the lab port of a: the two labs "
        "could not run at the same time; give each lab its own ports")]


def test_other_ports_may_be_shared_and_bases_have_no_ports(tmp_path: Path) -> None:
    # `up` leaves a busy extra port unpublished and says so: not a clash.
    config = load(tmp_path, sets=("images.rlab.ports.dtale=40000",))
    assert dict(config.images["rlab"].ports) == {"lab": 9999, "dtale": 40000}


def test_an_image_with_ports_but_no_lab_port_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "[images.a]\nports = { web = 8000 }\n") == [
        ("pyrlab.toml:2: images.a.ports: no 'lab' port: an image with ports is started as a lab, "
        "which serves JupyterLab on its lab port; add one (lab = 8888), or remove the ports of "
        "an image that is only a base for others")]
    assert load(tmp_path, "[images.a]\nports = {}\n").images["a"].ports == ()


def test_two_ports_of_one_image_cannot_share_a_number(tmp_path: Path) -> None:
    assert problems(tmp_path, "[images.a]\nports = { lab = 8888, dtale = 8888 }\n") == [
        "pyrlab.toml:2: images.a.ports.dtale: port 8888 is also used by 'lab'"
    ]


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    found = problems(tmp_path, '[base\nimage = "x"\n')
    assert len(found) == 1
    assert found == [("pyrlab.toml:1: not valid TOML: expected ']' at the end of a table "
                     "declaration (column 6)")]


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    write(tmp_path, "pyrlab.toml", b'engine = "\xff"\n')
    assert problems(tmp_path) == ["pyrlab.toml: not valid UTF-8"]


def test_an_explicit_config_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, environ={}, config_file=tmp_path / "other.toml")
    assert [str(p) for p in caught.value.problems] == ["other.toml: file not found"]
    assert caught.value.hint is not None and "pyrlab init" in caught.value.hint


@pytest.mark.parametrize("reference", [
    "Python:3.14",           # upper case repository
    "python:3.14 trixie",    # space
    "python:",               # empty tag
    "python@sha256:abc",     # short digest
    "-python",               # leading separator
    "python;id",             # shell character
])
def test_bad_image_reference(tmp_path: Path, reference: str) -> None:
    assert problems(tmp_path, f'[base]\nimage = "{reference}"\n') == [
        f"pyrlab.toml:2: base.image: not a valid image reference: {reference!r}"
    ]


@pytest.mark.parametrize("reference", [
    "debian:trixie-slim",
    "python:3.14-trixie",
    "localhost:5000/lab/python:3.14",
    "ghcr.io/org/team/python",
    "python@sha256:" + "a" * 64,
])
def test_good_image_references(tmp_path: Path, reference: str) -> None:
    assert load(tmp_path, f'[base]\nimage = "{reference}"\n').base.image == reference


def test_bad_proxy_urls(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        [proxy]
        apt = "ftp://cache:3142"
        pip_index = "http://devpi/$(id)/+simple/"
        pip_extra_index = ["https://ok.example.org/simple", "not a url"]
        cran = "cloud.r-project.org"
        http_proxy = "http://"
        """)
    assert found == [
        "pyrlab.toml:4: proxy.pip_extra_index[1]: expected a http/https URL, got 'not a url'",
        "pyrlab.toml:2: proxy.apt: expected a http/https URL, got 'ftp://cache:3142'",
        ("pyrlab.toml:3: proxy.pip_index: URL contains a character that is not allowed: "
        "'http://devpi/$(id)/+simple/'"),
        "pyrlab.toml:5: proxy.cran: expected a http/https/file URL, got 'cloud.r-project.org'",
        "pyrlab.toml:6: proxy.http_proxy: expected a http/https URL, got 'http://'",
    ]


def test_bad_image_name(tmp_path: Path) -> None:
    found = problems(tmp_path, '[images."PyLab Torch"]\n')
    assert found == [("pyrlab.toml:1: images.\"PyLab Torch\": image names are lower-case letters, "
                     "digits and . _ - (e.g. 'pylab-torch')")]


def test_rc_for_an_unknown_image(tmp_path: Path) -> None:
    assert problems(tmp_path, '[run]\nrc = { pylb = "pylab.sh" }\n') == [
        "pyrlab.toml:2: run.rc.pylb: unknown image 'pylb'"
    ]


# --------------------------------------------------------------------------- load_project


def test_load_project_reports_config_and_list_problems_together(tmp_path: Path) -> None:
    make_project(tmp_path, {
        "pyrlab.toml": """\
            [base]
            debs = ["base_debs.txt"]
            colour = "blue"
            [images.pyrlab-base]
            [images.pylab]
            from = "pyrlab-base"
            requirements = ["requirements.txt"]
            ports = { lab = "abc" }
            """,
        "base_debs.txt": "git\nbad package\n",
        "requirements.txt": "numpy\n$(whoami)\n",
    })
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, environ={})
    assert [str(p) for p in caught.value.problems] == [
        ("pyrlab.toml:3: base.colour: unknown key (known: bootstrap, ca_certificates, cuda, "
        "cuda_toolkit, debs, image, jupyterhub, locale, mirror, python, slim, snapshot)"),
        "pyrlab.toml:8: images.pylab.ports.lab: expected a port number 1-65535, got 'abc'",
        "base_debs.txt:2: one package per line, without spaces",
        "requirements.txt:2: character '$' is not allowed",
    ]


def test_load_project_names_missing_lists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, environ={})
    found = [str(p) for p in caught.value.problems]
    assert found == [
        "base_debs.txt: cannot read: file not found",
        "requirements.txt: cannot read: file not found",
        "r_debs.txt: cannot read: file not found",
        "r_requirements.txt: cannot read: file not found",
        "r_packages.txt: cannot read: file not found",
    ]


def test_r_packages_need_r_in_the_image_or_an_ancestor(tmp_path: Path) -> None:
    make_project(tmp_path, {
        "pyrlab.toml": """\
            [base]
            debs = []
            [images.a]
            [images.b]
            from = "a"
            r_packages = ["r_packages.txt"]
            """,
        "r_packages.txt": "jsonlite\n",
    })
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, environ={})
    assert [str(p) for p in caught.value.problems] == [
        ('pyrlab.toml:6: images.b.r_packages: this image has no R: set r = "debian" on it or an '
        "ancestor")
    ]
    write(tmp_path, "pyrlab.toml", '[base]\ndebs = []\n[images.a]\nr = "debian"\n'
          '[images.b]\nfrom = "a"\nr_packages = ["r_packages.txt"]\n')
    assert load_project(tmp_path, environ={}).lists["b"].of("r")[0].name == "jsonlite"


def test_load_project_with_a_broken_graph_still_checks_the_lists(tmp_path: Path) -> None:
    make_project(tmp_path, {
        "pyrlab.toml": """\
            [base]
            debs = []
            [images.a]
            from = "b"
            r_packages = ["r_packages.txt"]
            [images.b]
            from = "a"
            """,
        "r_packages.txt": "jsonlite\n1bad\n",
    })
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "pyrlab.toml:3: images: no image starts from [base] (every image has a 'from')",
        "pyrlab.toml:4: images.a.from: cycle: a -> b -> a",
        "r_packages.txt:2: not a valid R package name: '1bad'",
    ]


def test_ca_file_missing_or_not_pem(tmp_path: Path) -> None:
    make_project(tmp_path, {
        "pyrlab.toml": """\
            [base]
            debs = []
            ca_certificates = ["missing.pem", "certs/notes.txt", "certs/good.pem"]
            [images.a]
            """,
        "certs/notes.txt": "this is not a certificate\n",
        "certs/good.pem": PEM,
    })
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "pyrlab.toml:3: base.ca_certificates[0]: cannot read 'missing.pem': No such file or directory",
        ("pyrlab.toml:3: base.ca_certificates[1]: 'certs/notes.txt' is not a PEM certificate file: "
        "holds no PEM certificate; none of it is used"),
    ]


def test_ca_files_get_stable_names_in_order(tmp_path: Path) -> None:
    make_project(tmp_path, {
        "pyrlab.toml": '[base]\ndebs = []\nca_certificates = ["b/Corp Root.pem", "a/x.crt"]\n'
                       "[images.a]\n",
        "b/Corp Root.pem": PEM,
        "a/x.crt": PEM,
    })
    project = load_project(tmp_path, environ={})
    assert [(c.name, c.content) for c in project.ca_files] == [
        ("00-Corp-Root.crt", PEM), ("01-x.crt", PEM),
    ]


def test_an_override_does_not_leak_into_the_next_load(tmp_path: Path) -> None:
    # The default graph is shared data: one project's --set must not change another's.
    assert load(tmp_path, sets=("images.pylab.ports.lab=8898",)).images["pylab"].lab_port == 8898
    assert load(tmp_path).images["pylab"].lab_port == 8888


def test_config_keys_lists_every_key_once_with_the_project_images(tmp_path: Path) -> None:
    keys = config_keys()
    assert keys == sorted(set(keys))
    assert {"engine", "name", "prefix", "base.image", "proxy.pip_index", "run.bind",
            "build.cache_from", "test.known_failures.python", "images.pylab.ports.lab",
            "images.pylab.ports.dtale", "images.rlab-base.r", "run.rc.rlab"} <= set(keys)
    assert not {"base", "images", "run", "images.images"} & set(keys)
    config = load(tmp_path, '[images.solo]\nports = { lab = 1, web = 2 }\n')
    mine = config_keys(config)
    assert {"images.solo.from", "images.solo.ports.lab", "images.solo.ports.web",
            "run.rc.solo"} <= set(mine)
    assert not [k for k in mine if k.startswith("images.pylab")]
    # Every key is one a value can be given at.
    for key in ("base.slim", "images.solo.r_source", "proxy.retries"):
        assert key in mine


def test_every_key_pyrlab_config_shows_is_one_of_config_keys(tmp_path: Path) -> None:
    from pyrlab.commands.config import settings
    config = load(tmp_path, environ={"PYRLAB_ENGIN": "docker"})  # a warning, not a setting
    shown = {s.key for s in settings(config)}
    assert shown <= set(config_keys(config))
    assert {"engine", "run.bind", "images.pylab.ports", "run.rc"} <= shown


def test_bootstrap_in_a_project_warns_of_a_stray_variable_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrlab.commands.bootstrap import _project_config
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    monkeypatch.setenv("PYRLAB_LOGLEVEL", "debug")
    assert _project_config(lab, []) is not None
    assert capsys.readouterr().err == (
        "pyrlab: warning: environment PYRLAB_LOGLEVEL: not a variable of pyrlab; ignored "
        "(did you mean PYRLAB_LOG_LEVEL?)\n")


def test_key_lines_follow_tables_strings_and_arrays_over_lines() -> None:
    text = ('name = "x"  # [run]\n'          # 1
            "[base]\n"                       # 2
            "debs = [\n"                     # 3
            '  "a.txt",  # ]\n'              # 4
            "  'b = [',\n"                   # 5
            "]\n"                            # 6
            'notes = """\n'                  # 7: a multi-line string that looks like TOML
            "[run]\n"                        # 8
            'bind = \\"""\n'                 # 9
            '"""\n'                          # 10
            "image = 'x'\n"                  # 11
            '[ images . "a.b" ]\n'           # 12
            "ports = { lab = 1 }\n"          # 13
            "run.bind = 3\n")                # 14: a dotted key
    assert tomllib.loads(text)  # the locator only reads what tomllib accepts
    lines = key_lines(text)
    assert lines == {("name",): 1, ("base",): 2, ("base", "debs"): 3, ("base", "notes"): 7,
                     ("base", "image"): 11, ("images",): 12, ("images", "a.b"): 12,
                     ("images", "a.b", "ports"): 13, ("images", "a.b", "run"): 14,
                     ("images", "a.b", "run", "bind"): 14}
    assert line_of(lines, "base.debs[1]") == 3  # an element: its array's line
    assert line_of(lines, 'images."a.b".ports.lab') == 13  # in an inline table
    assert line_of(lines, "base.slim") == 2  # not written: the table it would be in
    assert line_of(lines, "run.bind") is None
    assert line_of(lines, 'images."\x7f"') is None  # no TOML key: no line, no error


def test_a_problem_names_the_line_only_where_the_file_wrote_the_value(tmp_path: Path) -> None:
    write(tmp_path, "pyrlab.toml", '[run]\nuid = -1\nbind = "x"\n')
    assert problems(tmp_path, sets=("run.bind=nowhere",)) == [
        # the value in the file was replaced: the --set is named, not the file's line
        ("pyrlab.toml: run.bind: expected an IP address to publish ports on, got 'nowhere' "
         "(from --set run.bind)"),
        "pyrlab.toml:2: run.uid: expected a numeric id, got -1"]


@pytest.mark.parametrize(("toml", "expected"), [
    ('[base]\nbootstrap = "Trixie"\n',
     "pyrlab.toml:2: base.bootstrap: expected a Debian suite name such as 'trixie', got 'Trixie'"),
    ('[base]\nlocale = "en_US"\n',
     "pyrlab.toml:2: base.locale: expected a UTF-8 locale such as 'en_US.UTF-8', got 'en_US'"),
    ('[proxy]\nno_proxy = "a b"\n', "pyrlab.toml:2: proxy.no_proxy: not a host list: 'a b'"),
    ('[proxy]\nno_proxy = 5\n',
     "pyrlab.toml:2: proxy.no_proxy: expected a string, got an integer"),
    ('[images.pylab]\nfrom = "Base"\n',
     "pyrlab.toml:2: images.pylab.from: expected the name of another image, got 'Base'"),
    ('prefix = "team"\n',
     "pyrlab.toml:1: prefix: expected a registry/namespace prefix ending in '/', got 'team'"),
    ('[run.rc]\npylab = 3\n',
     'pyrlab.toml:1: run.rc: expected a table of image = "script"'),
])
def test_a_value_outside_its_grammar_names_its_line_and_what_is_expected(
        tmp_path: Path, toml: str, expected: str) -> None:
    assert expected in problems(tmp_path, toml)
