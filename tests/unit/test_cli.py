"""The command line, end to end: init → check → render, through `pyrlab.cli.main` and
through the installed `pyrlab` script, and how each mistake reads on stderr."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from labfiles import init_lab, write

from pyrlab.cli import main, parse_args

IMAGES = ["pyrlab-base", "pylab", "rlab-base", "rlab"]
INIT_FILES = ["pyrlab.toml", "base_debs.txt", "requirements.txt", "r_debs.txt", "r_packages.txt",
              "r_requirements.txt", "Makefile", ".gitignore"]
PYRLAB = Path(sys.executable).parent / "pyrlab"


def pyrlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    assert PYRLAB.is_file(), f"{PYRLAB} is missing: install the project (pip install -e .)"
    return subprocess.run([str(PYRLAB), *args], capture_output=True, text=True, check=False,
                          cwd=cwd, env={k: v for k, v in os.environ.items()
                                        if not k.startswith("PYRLAB_")
                                        or k == "PYRLAB_USER_CONFIG"})


def test_round_trip_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab, out = tmp_path / "lab", tmp_path / "out"
    assert main(["init", str(lab)]) == 0
    text = capsys.readouterr().out
    assert f"created lab project in {lab}" in text
    assert sorted(p.name for p in lab.iterdir()) == sorted(INIT_FILES)

    assert main(["check", "-C", str(lab)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == f"ok: {lab}"
    assert [line.split()[0] for line in captured.out.splitlines()[1:-1]] == IMAGES
    # The engine a build would use, as build chooses it; none is run.
    assert captured.out.splitlines()[-1] == \
        "engine: auto-detected by each build (docker, else podman)"
    assert captured.err == ""

    assert main(["render", "-C", str(lab), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*IMAGES, ".pyrlab-output"])
    for name in IMAGES:
        dockerfile = (out / name / "Dockerfile").read_text(encoding="utf-8")
        assert f"org.pyrlab.image=\"{name}\"" in dockerfile
    assert "FROM python:3.14-trixie\n" in (out / "pyrlab-base" / "Dockerfile").read_text()
    assert (out / "pylab" / "pyrlab" / "python" / "requirements.txt").read_text().startswith(
        "jupyterlab\n")


def test_round_trip_through_the_installed_script(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    done = pyrlab("init", str(lab), "--base", "debian")
    assert done.returncode == 0, done.stderr
    done = pyrlab("check", cwd=lab)  # the project is the current folder by default
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {lab}\n")
    done = pyrlab("render", "-o", "out", cwd=lab)
    assert done.returncode == 0, done.stderr
    for name in IMAGES:
        assert (lab / "out" / name / "Dockerfile").is_file()
    assert "FROM pyrlab-debian:trixie\n" in (lab / "out" / "pyrlab-base" / "Dockerfile").read_text()
    # Without -o the contexts go to .pyrlab/contexts, which init's .gitignore covers.
    assert pyrlab("render", "pylab", cwd=lab).returncode == 0
    assert sorted(p.name for p in (lab / ".pyrlab" / "contexts").iterdir()) == [
        ".pyrlab-output", "pylab"]
    assert ".pyrlab/" in (lab / ".gitignore").read_text().split()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "lab")
    write(lab, "requirements.txt", "my-own-package\n")
    capsys.readouterr()
    assert main(["init", str(lab)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{lab / 'pyrlab.toml'}: already exists" in captured.err
    assert f"{lab / 'requirements.txt'}: already exists" in captured.err
    assert "--force" in captured.err
    assert (lab / "requirements.txt").read_text() == "my-own-package\n"

    assert main(["init", str(lab), "--force"]) == 0
    assert (lab / "requirements.txt").read_text().splitlines()[1] == "jupyterlab"


def test_init_refuses_one_existing_file(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    write(tmp_path / "lab", "Makefile", "all:\n")
    done = pyrlab("init", str(tmp_path / "lab"))
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        f"pyrlab: error: {tmp_path / 'lab' / 'Makefile'}: already exists",
        "pyrlab: hint: use --force to overwrite",
    ]
    assert not (tmp_path / "lab" / "pyrlab.toml").exists()


def test_init_with_a_bad_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "lab"), "--base", "ubuntu"]) == 2
    assert "--base: expected 'image', 'debian' or 'debian:SUITE', got 'ubuntu'" in \
        capsys.readouterr().err
    assert not (tmp_path / "lab").exists()


def test_init_base_debian_suite(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    assert main(["init", str(lab), "--base", "debian:bookworm"]) == 0
    toml = (lab / "pyrlab.toml").read_text()
    assert 'bootstrap = "bookworm"' in toml and 'image = "pyrlab-debian:bookworm"' in toml


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    assert main(["check", "-C", str(lab), "--json", "--set", "images.pylab.ports.lab=8898"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["project"] == str(lab)
    assert data["name"] == ""  # PYRLAB_NAME="" (see conftest.py): bare names
    assert sorted(data["images"]) == sorted(IMAGES)
    assert data["order"] == IMAGES
    assert data["images"]["pylab"] == {
        "from": "pyrlab-base", "debs": 0, "requirements": 6, "r_packages": 0,
        "ports": {"lab": 8898, "dtale": 40000, "tensorboard": 6006},
    }
    assert data["images"]["pyrlab-base"]["from"] == "pyrlab-debian:trixie"
    assert data["images"]["rlab"]["r_packages"] == 4
    assert data["overrides"] == {"images.pylab.ports.lab": "--set images.pylab.ports.lab",
                                 "name": "environment PYRLAB_NAME"}  # see conftest.py


def test_check_accepts_what_pip_accepts_and_warns_about_an_exact_duplicate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "lab")
    requirements = lab / "requirements.txt"
    requirements.write_text(requirements.read_text() + "dill\ndill[graph]\ntqdm\ntqdm\n")
    capsys.readouterr()
    assert main(["check", "-C", str(lab), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["images"]["pylab"]["requirements"] == 8
    lines = len(requirements.read_text().splitlines())
    assert captured.err == (f"pyrlab: warning: requirements.txt:{lines}: duplicate entry "
                            f"'tqdm' (also at requirements.txt:{lines - 1}); it asks for nothing more\n")
    requirements.write_text(requirements.read_text() + "numpy==1.26.4\nnumpy==2.1.0\n")
    assert main(["check", "-C", str(lab)]) == 3
    assert ("'numpy==2.1.0' contradicts 'numpy==1.26.4' at requirements.txt:"
            in capsys.readouterr().err)


def test_check_reports_three_problems_at_once(tmp_path: Path) -> None:
    lab = init_lab(tmp_path / "lab")
    with (lab / "requirements.txt").open("a") as f:
        f.write("pandas; rm -rf ~\n")
    toml = (lab / "pyrlab.toml").read_text()
    toml = toml.replace("cuda = false", "cuda = false\ngpu = true")
    toml = toml.replace("ports = { lab = 9999 }", 'ports = { lab = "abc" }')
    write(lab, "pyrlab.toml", toml)
    line = len((lab / "requirements.txt").read_text().splitlines())

    done = pyrlab("check", "-C", str(lab))
    assert done.returncode == 3
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "pyrlab: error: 3 problems:"
    gpu, port = (next(n for n, text in enumerate(toml.splitlines(), start=1)
                      if text.startswith(start))
                 for start in ("gpu = true", 'ports = { lab = "abc" }'))
    assert lines[1] == (f"  pyrlab.toml:{gpu}: base.gpu: unknown key (known: bootstrap, "
                        "ca_certificates, cuda, cuda_toolkit, debs, image, jupyterhub, locale, "
                        "mirror, python, slim, snapshot)")
    assert lines[2] == (f"  pyrlab.toml:{port}: images.rlab.ports.lab: expected a port number "
                        "1-65535, got 'abc'")
    assert lines[3].startswith(f"  requirements.txt:{line}: ")
    assert len(lines) == 4


def test_render_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["render", "-C", str(lab), "-o", str(out), "--json", "rlab", "pylab"]) == 0
    data = json.loads(capsys.readouterr().out)
    # Only the images asked for, in build order.
    assert [c["image"] for c in data["contexts"]] == ["pylab", "rlab"]
    for context in data["contexts"]:
        assert re.fullmatch(r"[0-9a-f]{64}", context["input_hash"])
        dockerfile = Path(context["path"]) / "Dockerfile"
        assert f'org.pyrlab.input-hash="{context["input_hash"]}"' in dockerfile.read_text()
    assert sorted(p.name for p in out.iterdir()) == [".pyrlab-output", "pylab", "rlab"]


def test_render_podman(tmp_path: Path) -> None:
    lab = init_lab(tmp_path / "lab")
    # Docker named, not auto-detected: this test must not depend on which daemon answers.
    assert main(["render", "-C", str(lab), "-o", str(tmp_path / "d"), "--engine", "docker"]) == 0
    assert main(["render", "-C", str(lab), "-o", str(tmp_path / "p"), "--podman"]) == 0
    assert "sharing=locked" in (tmp_path / "d" / "rlab" / "Dockerfile").read_text()
    assert "sharing=locked" not in (tmp_path / "p" / "rlab" / "Dockerfile").read_text()


def test_unknown_image_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    assert main(["render", "-C", str(lab), "-o", str(tmp_path / "out"), "pylba"]) == 3
    assert capsys.readouterr().err == ("pyrlab: error: command line: unknown image 'pylba' "
                                       "(known: pyrlab-base, pylab, rlab-base, rlab)\n")
    assert not (tmp_path / "out").exists()


def test_set_without_equals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    assert main(["check", "-C", str(lab), "--set", "run.bind"]) == 3
    assert capsys.readouterr().err == (
        "pyrlab: error: --set run.bind: expected KEY=VALUE with a dotted key like run.bind\n")


def test_environment_override_reaches_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    monkeypatch.setenv("PYRLAB_IMAGES__RLAB__PORTS__LAB", "9998")
    assert main(["check", "-C", str(lab), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"]["rlab"]["ports"] == {"lab": 9998}


def test_missing_project_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-C", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == (f"pyrlab: error: -C {tmp_path / 'nowhere'}: cannot "
                                       "change to it: no such file or directory\n")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pyrlab: error: unknown command 'frobnicate' (`pyrlab help` lists the commands)")


def test_makefile_keeps_the_original_verbs(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed: it is needed to check the lab project's Makefile",
                    pytrace=False)
    lab = init_lab(tmp_path / "lab")
    expected = {"build": "pyrlab build", "pylab": "pyrlab up pylab", "rlab": "pyrlab up rlab",
                "clean": "pyrlab clean", "check": "pyrlab check"}
    for target, command in expected.items():
        done = subprocess.run([make, "-n", target], cwd=lab, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == command, target
    # The seed's `make build` works through the real script as well (here: check).
    done = subprocess.run([make, "check", f"PYRLAB={PYRLAB}"], cwd=lab, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == f"ok: {lab}"


# --------------------------------------------------------------------------- global options

# Each pair: the global options before the verb, and the same after it.
BEFORE_AND_AFTER = [
    (["-C", "lab", "down", "pylab"], ["down", "pylab", "-C", "lab"]),
    (["--set", "run.bind=0.0.0.0", "up", "pylab"], ["up", "pylab", "--set", "run.bind=0.0.0.0"]),
    (["--engine", "podman", "ps"], ["ps", "--engine", "podman"]),
    (["--engine=docker", "--json", "--project=lab", "url", "pylab"],
     ["url", "pylab", "--engine=docker", "--json", "--project=lab"]),
    (["-C", "lab", "--set", "a=1", "--set", "b=2", "build", "--no-test", "pylab"],
     ["build", "--no-test", "pylab", "-C", "lab", "--set", "a=1", "--set", "b=2"]),
    (["-C", "lab", "init", "--base", "debian"], ["init", "--base", "debian", "-C", "lab"]),
    # `shell`'s own positional is called command: it must not hide the verb.
    (["--set", "run.sudo=true", "shell", "--port", "9", "pylab", "--", "sudo", "-n", "true"],
     ["shell", "--set", "run.sudo=true", "--port", "9", "pylab", "--", "sudo", "-n", "true"]),
]


@pytest.mark.parametrize(("before", "after"), BEFORE_AND_AFTER,
                         ids=[" ".join(b) for b, _ in BEFORE_AND_AFTER])
def test_global_options_before_the_verb_mean_the_same(before: list[str],
                                                     after: list[str]) -> None:
    parsed_before, parsed_after = vars(parse_args(before)), vars(parse_args(after))
    assert parsed_before == parsed_after
    assert not [key for key in parsed_before if key.startswith("before_verb")]


def test_global_options_on_both_sides_add_up() -> None:
    args = parse_args(["-C", "first", "--set", "a=1", "--engine", "docker",
                       "up", "pylab", "-C", "second", "--set", "a=2"])
    assert args.project == "second"  # after the verb wins, as a later option does
    assert args.sets == ["a=1", "a=2"]  # applied in order: a=2 wins
    assert args.engine == "docker"
    defaults = parse_args(["ps"])
    assert (defaults.project, defaults.sets, defaults.json, defaults.engine) == (
        ".", [], False, None)


def test_global_options_before_the_verb_reach_the_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "lab")
    capsys.readouterr()
    assert main(["-C", str(lab), "--set", "images.pylab.ports.lab=8898", "--json", "check"]) == 0
    before = capsys.readouterr().out
    assert json.loads(before)["images"]["pylab"]["ports"]["lab"] == 8898
    assert main(["check", "-C", str(lab), "--set", "images.pylab.ports.lab=8898", "--json"]) == 0
    assert capsys.readouterr().out == before


def test_the_command_lines_pyrlab_prints_parse(tmp_path: Path) -> None:
    """What the generated pyrlab.toml and pyrlab's hints tell users to type."""
    lab = init_lab(tmp_path / "lab")
    toml = (lab / "pyrlab.toml").read_text()
    shown = re.findall(r"\((pyrlab --set [^)]*)\)", toml)
    assert shown == ["pyrlab --set run.bind=0.0.0.0 up pylab"]
    args = parse_args(shown[0].split()[1:])
    assert (args.verb, args.image, args.sets) == ("up", "pylab", ["run.bind=0.0.0.0"])
    hint = parse_args(["-C", "/path", "down", "pylab"])  # run/start.py, a lab elsewhere
    assert (hint.verb, hint.project, hint.image) == ("down", "/path", "pylab")


def test_unknown_global_option(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, option, verb in ((["--frobnicate", "shell", "pylab", "--", "id"], "--frobnicate",
                                "shell"),
                               (["--frobnicate", "ps"], "--frobnicate", "ps"),
                               (["--no-build", "up", "pylab"], "--no-build", "up"),
                               (["--port=9000", "-C", "lab", "up", "pylab"], "--port", "up")):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert f"pyrlab: error: unknown global option {option}: before the command" in err
        assert f"the options of `{verb}` go after it" in err
    # A near miss of a global option is named.
    with pytest.raises(SystemExit) as caught:
        main(["--jsn", "check"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pyrlab: error: unknown global option --jsn; did you mean --json?")
