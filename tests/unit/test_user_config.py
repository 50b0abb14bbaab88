"""The user's own file: this machine's settings, outside the project, and what it grants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labfiles import PEM, init_lab

from pyrlab.cli import main
from pyrlab.config.readers import load_config
from pyrlab.config.user import user_config_path
from pyrlab.errors import ConfigError


def write_project(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyrlab.toml").write_text(text)
    return root


PROJECT = """\
engine = "podman"
[base]
ca_certificates = ["certs/team.crt"]
[proxy]
http_proxy = "http://project-proxy:3128"
pip_index = "http://project-index/simple/"
[images.pylab]
ports = { lab = 8890 }
[run]
bind = "127.0.0.2"
"""

USER = """\
engine = "docker"
[base]
ca_certificates = ["corp.crt", "/etc/ssl/other.crt"]
[proxy]
http_proxy = "http://me:secret@my-proxy:3128"
[run]
bind = "127.0.0.3"
"""


def test_the_user_file_is_found_as_xdg_says() -> None:
    assert user_config_path({"HOME": "/h"}) == Path("/h/.config/pyrlab/config.toml")
    assert user_config_path({"HOME": "/h", "XDG_CONFIG_HOME": "/x"}) == \
        Path("/x/pyrlab/config.toml")
    # A relative XDG_CONFIG_HOME is to be ignored (XDG Base Directory spec).
    assert user_config_path({"HOME": "/h", "XDG_CONFIG_HOME": "rel"}) == \
        Path("/h/.config/pyrlab/config.toml")
    assert user_config_path({"HOME": "/h", "XDG_CONFIG_HOME": "/x",
                             "PYRLAB_USER_CONFIG": "/o/c.toml"}) == Path("/o/c.toml")
    assert user_config_path({"HOME": "/h", "PYRLAB_USER_CONFIG": ""}) is None
    assert user_config_path({}) is None


def test_machine_settings_of_the_user_file_win_over_the_project(
        tmp_path: Path, user_config: Path) -> None:
    root = write_project(tmp_path / "lab", PROJECT)
    user_config.write_text(USER)
    config = load_config(root)
    assert config.engine == "docker"
    # Relative paths of the user file are relative to its folder, not to the project.
    assert config.base.ca_certificates == (str(user_config.parent / "corp.crt"),
                                           "/etc/ssl/other.crt")
    assert config.proxy.http_proxy == "http://me:secret@my-proxy:3128"
    assert config.run.bind == "127.0.0.3"
    # What the user file does not set stays the project's; what the images are, too.
    assert config.proxy.pip_index == "http://project-index/simple/"
    assert config.images["pylab"].lab_port == 8890
    shown = f"user file {user_config}"
    assert config.source_of("engine") == shown
    assert config.source_of("proxy.http_proxy") == shown
    assert config.source_of("base.ca_certificates[1]") == shown
    assert config.source_of("proxy.pip_index") == "pyrlab.toml"
    assert config.source_of("images.pylab.ports") == "pyrlab.toml"
    assert config.source_of("run.notebooks") == "default"
    assert config.from_user_file("run.bind") and not config.from_user_file("proxy.pip_index")


def test_environment_and_set_still_win_over_the_user_file(
        tmp_path: Path, user_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "lab", PROJECT)
    user_config.write_text(USER)
    monkeypatch.setenv("PYRLAB_RUN__BIND", "127.0.0.4")
    config = load_config(root, sets=["proxy.http_proxy=http://set-proxy:1"])
    assert config.run.bind == "127.0.0.4"
    assert config.source_of("run.bind") == "environment PYRLAB_RUN__BIND"
    assert config.proxy.http_proxy == "http://set-proxy:1"
    assert config.source_of("proxy.http_proxy") == "--set proxy.http_proxy"
    assert not config.from_user_file("run.bind")  # so it grants nothing any more
    assert config.engine == "docker"


def test_the_user_file_holds_only_machine_settings(tmp_path: Path, user_config: Path) -> None:
    root = write_project(tmp_path / "lab", PROJECT)
    user_config.write_text('prefix = "ghcr.io/me/"\n[images.pylab]\nports = { lab = 1 }\n'
                           '[run]\ndocker_args = ["--privileged"]\nbind = 5\nbnd = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    problems = [str(p) for p in caught.value.problems]
    expected_tail = ("not a setting of this machine: it belongs in the project's pyrlab.toml "
                     "(a user file holds only engine, base.ca_certificates, proxy, "
                     "run.notebooks, run.home, run.bind, run.uid, run.gid, run.allow_no_token)")
    assert problems == [
        f"{user_config}:1: prefix: {expected_tail}",
        f"{user_config}:2: images: {expected_tail}",
        f"{user_config}:5: run.docker_args: {expected_tail}",
        # A typo of a machine key is no project key: the guess, not "belongs in the project".
        (f"{user_config}:7: run.bnd: unknown key; did you mean run.bind? (a user file holds "
         "only engine, base.ca_certificates, proxy, run.notebooks, run.home, run.bind, "
         "run.uid, run.gid, run.allow_no_token)"),
        (f"pyrlab.toml: run.bind: expected an IP address to publish ports on, got 5 "
        f"(from user file {user_config})"),
    ]


def test_a_user_file_that_is_no_toml_is_named(tmp_path: Path, user_config: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    user_config.write_text('engine = "docker"\n[run\n')
    assert main(["check", "-C", str(write_project(tmp_path / "lab", PROJECT))]) == 3
    assert (f"pyrlab: error: {user_config}:2: not valid TOML: expected ']' at the end of a "
            "table declaration (column 5)\n") in capsys.readouterr().err


def test_config_prints_every_value_with_its_source(
        tmp_path: Path, user_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "lab", PROJECT)
    user_config.write_text(USER)
    assert main(["config", "-C", str(root), "--set", "run.uid=1234"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"project: {root}", f"user file: {user_config}"]
    rows = {line.split(" = ", 1)[0]: line for line in lines[2:]}
    assert rows["engine"].rsplit("# ", 1)[1] == f"user file {user_config}"
    assert rows["proxy.http_proxy"].split("#", 1)[0].split(" = ")[1].strip() == \
        '"http://me:***@my-proxy:3128"'  # credentials masked
    assert rows["proxy.pip_index"].rsplit("# ", 1)[1] == "pyrlab.toml"
    assert rows["run.uid"].rsplit("# ", 1)[1] == "--set run.uid"
    assert rows["run.notebooks"].rsplit("# ", 1)[1] == "default"
    assert rows["images.pylab.ports"].rsplit("# ", 1)[1] == "pyrlab.toml"
    assert "secret" not in "\n".join(lines)

    assert main(["config", "-C", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["user_file"] == str(user_config) and data["user_file_found"] is True
    found = {s["key"]: (s["value"], s["source"]) for s in data["settings"]}
    assert found["run.bind"] == ("127.0.0.3", f"user file {user_config}")
    assert found["images.pylab.ports"] == ({"lab": 8890}, "pyrlab.toml")
    assert found["base.ca_certificates"][0] == [str(user_config.parent / "corp.crt"),
                                                "/etc/ssl/other.crt"]
    assert found["run.allow_no_token"] == (False, "default")
    assert found["images.pylab.from"] == (None, "default")


def test_config_without_a_user_file(tmp_path: Path, user_config: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path / "lab", PROJECT)
    assert main(["config", "-C", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == f"user file: {user_config} (not found)"
    monkeypatch.setenv("PYRLAB_USER_CONFIG", "")
    assert main(["config", "-C", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == \
        "user file: none (PYRLAB_USER_CONFIG is empty)"


def test_init_writes_this_machines_ca_files_into_the_user_file(
        tmp_path: Path, user_config: Path) -> None:
    ca = tmp_path / "machine" / "corp-ca.crt"
    ca.parent.mkdir()
    ca.write_bytes(PEM)
    root = tmp_path / "lab"
    assert main(["init", str(root), "--base", "debian", "--ca", str(ca)]) == 0
    project_text = (root / "pyrlab.toml").read_text()
    assert str(tmp_path) not in project_text and "/usr/local/share" not in project_text
    # The committed file holds no absolute path at all: only ~ defaults and relative names.
    for line in project_text.splitlines():
        value = line.split("#", 1)[0]
        assert '"/' not in value, line
    assert 'notebooks = "~/notebooks"' in project_text  # the default, as init writes it
    config = load_config(root)
    assert config.base.ca_certificates == (str(ca),)
    assert config.source_of("base.ca_certificates") == f"user file {user_config}"
    # A teammate without that file (no user file) checks the same project unchanged.
    assert load_config(root, environ={}).base.ca_certificates == ()
    assert main(["check", "-C", str(root)]) == 0


def test_init_keeps_what_the_user_file_says(
        tmp_path: Path, user_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "corp-ca.crt"
    ca.write_bytes(PEM)
    user_config.write_text('[base]\nca_certificates = []\n')
    assert main(["init", str(tmp_path / "a"), "--ca", str(ca)]) == 0
    assert f"kept the CA files your {user_config} lists" in capsys.readouterr().out
    assert user_config.read_text() == '[base]\nca_certificates = []\n'
    # A user file without a [base] table gets one; what was there stays.
    user_config.write_text('[run]\nbind = "127.0.0.1"')
    assert main(["init", str(tmp_path / "b"), "--ca", str(ca)]) == 0
    assert f"recorded this machine's CA files in {user_config}" in capsys.readouterr().out
    config = load_config(tmp_path / "b")
    assert config.base.ca_certificates == (str(ca),) and config.run.bind == "127.0.0.1"


def test_init_without_a_user_file_says_the_ca_files_are_not_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "corp-ca.crt"
    ca.write_bytes(PEM)
    monkeypatch.setenv("PYRLAB_USER_CONFIG", "")
    assert main(["init", str(tmp_path / "lab"), "--ca", str(ca)]) == 0
    assert "CA files are not recorded" in capsys.readouterr().out
    assert str(ca) not in (tmp_path / "lab" / "pyrlab.toml").read_text()


def test_check_lists_what_the_project_file_asks_and_the_user_file_grants(
        tmp_path: Path, user_config: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = init_lab(tmp_path / "lab")
    text = (root / "pyrlab.toml").read_text()
    (root / "pyrlab.toml").write_text(text.replace(
        'notebooks = "~/notebooks"', 'notebooks = "~/.ssh"\nallow_no_token = true'))
    assert main(["check", "-C", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    ssh = tmp_path / "home" / ".ssh"
    assert [line for line in out if line.startswith("needs")] == [
        (f"needs `pyrlab up --allow-unsafe`: run.notebooks: '{ssh}' lies outside the project "
        f"folder {root}: a project may mount its own folders and pyrlab's default ones; "
        "mounting another widens what the lab may do on the host (from pyrlab.toml)"),
        ("needs `pyrlab up --allow-unsafe`: run.allow_no_token: 'true' starts the lab without "
        "a token: any program on this machine, and any web page open in its browser that "
        "reaches the port, could run code as you (from pyrlab.toml)")]
    user_config.write_text('[run]\nnotebooks = "~/.ssh"\nallow_no_token = true\n')
    assert main(["check", "-C", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["needs_allow_unsafe"] == []
