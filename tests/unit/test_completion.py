"""Shell completion: what the shell gets for the word under the cursor (pyrlab.completion).

Each case answers a request the way the shell's code makes it (COMP_LINE, COMP_POINT,
_ARGCOMPLETE set), through cli's own parser and argcomplete: in this process where only
the candidates matter, in a real `python -m pyrlab` where the output channels do.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyrlab.cli import build_parser
from pyrlab.commands import COMMANDS
from pyrlab.completion import complete, set_keys
from pyrlab.config.model import DEFAULT_IMAGES
from pyrlab.config.readers import read_config
from pyrlab.discovery import find_project
from pyrlab.engine_names import engine_choices

SRC = Path(__file__).resolve().parents[2] / "src"
# A graph of three images, one of them runnable (it has a lab port), and its ports.
PROJECT = """\
name = "demo"

[images.core]

[images.sci-py]
from = "core"
ports = { lab = 8890, board = 6007 }

[images.tools]
from = "core"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    root.mkdir()
    (root / "pyrlab.toml").write_text(PROJECT)
    return root


@pytest.fixture
def request_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment of a completion request; no PYRLAB_* or user file of the caller's."""
    for name in list(os.environ):
        if name.startswith(("PYRLAB_", "_ARC", "COMP_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYRLAB_USER_CONFIG", "")
    monkeypatch.setenv("_ARGCOMPLETE", "1")
    monkeypatch.setenv("_ARGCOMPLETE_SUPPRESS_SPACE", "1")  # as zsh and fish ask: no " "
    return monkeypatch


def candidates(env: pytest.MonkeyPatch, line: str, cwd: Path) -> list[str]:
    """What `complete` answers for the command line `line` (the cursor at its end)."""
    env.chdir(cwd)
    env.setenv("COMP_LINE", line)
    env.setenv("COMP_POINT", str(len(line)))
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        complete(build_parser(), output_stream=out, exit_method=sys.exit)
    assert exited.value.code == 0
    return out.getvalue().split("\013") if out.getvalue() else []


# --------------------------------------------------------------------------- verbs, options


def test_every_verb_in_help_order(request_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert candidates(request_env, "pyrlab ", tmp_path) == [*COMMANDS, "help"]
    assert "completion" in COMMANDS


def test_a_verb_by_its_first_letters(request_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert candidates(request_env, "pyrlab u", tmp_path) == ["up", "url", "upgrade"]
    assert candidates(request_env, "pyrlab -C . --json re", tmp_path) == ["render", "restart"]


def test_options_of_the_verb_once_a_dash_is_typed(request_env: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    up = candidates(request_env, "pyrlab up --", tmp_path)
    assert {"--no-build", "--port", "--allow-unsafe", "--project", "--set", "--json"} <= set(up)
    assert "--no-cache" not in up  # build's
    build = candidates(request_env, "pyrlab build --n", tmp_path)
    assert set(build) == {"--no-cache", "--no-test", "--network-host"}
    assert set(candidates(request_env, "pyrlab --ver", tmp_path)) == {"--version", "--verbose"}
    # `export compose`: the kind's own options (a parser below the verb's).
    assert "--gpus" in candidates(request_env, "pyrlab export compose --", tmp_path)


def test_choices_of_an_option(request_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert candidates(request_env, "pyrlab build --engine ", tmp_path) == list(engine_choices())
    assert candidates(request_env, "pyrlab completion ", tmp_path) == ["bash", "zsh", "fish"]


# --------------------------------------------------------------------------- image names


def test_image_names_from_the_project(request_env: pytest.MonkeyPatch, project: Path) -> None:
    assert candidates(request_env, "pyrlab build ", project) == ["core", "sci-py", "tools"]
    assert candidates(request_env, "pyrlab build core s", project) == ["sci-py"]
    assert candidates(request_env, "pyrlab sbom t", project) == ["tools"]
    assert candidates(request_env, "pyrlab why numpy --image ", project) == [
        "core", "sci-py", "tools"]
    assert candidates(request_env, "pyrlab export compose ", project) == [
        "core", "sci-py", "tools"]


def test_a_lab_verb_offers_the_images_that_run_a_lab(request_env: pytest.MonkeyPatch,
                                                    project: Path) -> None:
    for verb in ("up", "down", "restart", "logs", "shell", "url"):
        assert candidates(request_env, f"pyrlab {verb} ", project) == ["sci-py"], verb


def test_image_names_of_the_default_graph(request_env: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    (tmp_path / "pyrlab.toml").write_text('name = "plain"\n')  # no [images]: the defaults
    assert candidates(request_env, "pyrlab test ", tmp_path) == list(DEFAULT_IMAGES)
    assert candidates(request_env, "pyrlab up ", tmp_path) == ["pylab", "rlab"]


def test_image_names_from_above_or_from_dash_c(request_env: pytest.MonkeyPatch,
                                               project: Path, tmp_path: Path) -> None:
    below = project / "notebooks" / "2026"
    below.mkdir(parents=True)
    assert candidates(request_env, "pyrlab up ", below) == ["sci-py"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert candidates(request_env, "pyrlab up ", elsewhere) == []
    assert candidates(request_env, f"pyrlab -C {project} up ", elsewhere) == ["sci-py"]
    assert candidates(request_env, "pyrlab up -C ../demo ", elsewhere) == ["sci-py"]
    assert candidates(request_env, "pyrlab --project=../demo build c", elsewhere) == ["core"]
    assert candidates(request_env, "pyrlab -C ../demo export compose t", elsewhere) == [
        "tools"]


def test_diff_offers_images_and_files(request_env: pytest.MonkeyPatch, project: Path) -> None:
    (project / "pyrlab.lock").write_text("{}")
    assert set(candidates(request_env, "pyrlab diff ", project)) == {
        "core", "sci-py", "tools", "pyrlab.toml", "pyrlab.lock"}


def test_the_project_search_stops_where_the_owner_changes(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a folder another owner")
    (tmp_path / "pyrlab.toml").write_text(PROJECT)
    mine = tmp_path / "mine"
    mine.mkdir()
    assert find_project(mine) == tmp_path
    os.chown(mine, 12345, 12345)
    assert find_project(mine) is None


def test_the_project_search_stops_at_home(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    (tmp_path / "pyrlab.toml").write_text(PROJECT)
    home = tmp_path / "home"
    (home / "work").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert find_project(home / "work") is None
    assert find_project(tmp_path) == tmp_path


# --------------------------------------------------------------------------- --set keys


def test_set_keys(request_env: pytest.MonkeyPatch, project: Path) -> None:
    assert candidates(request_env, "pyrlab --set run.b", project) == ["run.bind="]
    assert candidates(request_env, "pyrlab up --set base.cuda", project) == [
        "base.cuda=", "base.cuda_toolkit="]
    assert candidates(request_env, "pyrlab --set images.sci-py.p", project) == [
        "images.sci-py.ports.board=", "images.sci-py.ports.lab="]
    assert "run.rc.tools=" in candidates(request_env, "pyrlab --set run.rc.", project)
    everything = candidates(request_env, "pyrlab check --set ", project)
    assert {"name=", "engine=", "proxy.pip_index=", "build.cache_from=",
            "images.core.from="} <= set(everything)


def test_set_values_of_a_key_with_a_few(request_env: pytest.MonkeyPatch,
                                        project: Path) -> None:
    assert candidates(request_env, "pyrlab --set engine=", project) == [
        "engine=auto", "engine=docker", "engine=podman"]
    assert candidates(request_env, "pyrlab --set base.slim=", project) == [
        "base.slim=true", "base.slim=false"]
    assert candidates(request_env, "pyrlab --set proxy.network_host=t", project) == [
        "proxy.network_host=true"]
    assert candidates(request_env, "pyrlab --set base.python=", project) == [
        "base.python=image", "base.python=debian"]
    assert candidates(request_env, "pyrlab --set images.tools.r_source=", project) == [
        "images.tools.r_source=cran", "images.tools.r_source=apt"]
    assert candidates(request_env, "pyrlab --set run.bind=", project) == []  # free text


def test_every_set_key_is_one_the_config_knows(project: Path) -> None:
    config, problems = read_config(project, environ={})
    assert not problems
    keys = set_keys(config)
    assert len(keys) > 40
    for key, values in keys.items():
        for value in values or ("1",):
            _, problems = read_config(project, environ={}, sets=[f"{key}={value}"])
            unknown = [str(p) for p in problems if "unknown" in p.message]
            assert not unknown, key
            if values:  # an offered value is a valid one
                assert not problems, f"{key}={value}: {problems}"


# --------------------------------------------------------------------------- the shell


def completion_process(line: str, cwd: Path, tmp_path: Path) -> tuple[
        subprocess.CompletedProcess[str], list[str]]:
    """A real `python -m pyrlab` answering the shell: the candidates go to a file
    (argcomplete's ARGCOMPLETE_USE_TEMPFILES way), stdout and stderr are the screen's."""
    answer = tmp_path / "answer"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRLAB_", "_ARC"))}
    env.update(PYTHONPATH=str(SRC), PYRLAB_USER_CONFIG="", _ARGCOMPLETE="1",
               COMP_LINE=line, COMP_POINT=str(len(line)), _ARGCOMPLETE_SUPPRESS_SPACE="1",
               _ARGCOMPLETE_STDOUT_FILENAME=str(answer))
    done = subprocess.run([sys.executable, "-m", "pyrlab"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    text = answer.read_text() if answer.exists() else ""
    return done, text.split("\013") if text else []


@pytest.mark.parametrize("content", [b"[images.core\n", b"[images.core]\nfrom = \"\xff\"\n"],
                         ids=["not TOML", "not UTF-8"])
def test_an_unreadable_project_gives_no_names_and_prints_nothing(
        content: bytes, project: Path, tmp_path: Path) -> None:
    (project / "pyrlab.toml").write_bytes(content)
    for line in ("pyrlab build ", "pyrlab up --set images.", "pyrlab -C . down "):
        done, found = completion_process(line, project, tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert not [name for name in found if "core" in name]
    done, found = completion_process("pyrlab b", project, tmp_path)
    assert (done.returncode, done.stdout, done.stderr, found) == (
        0, "", "", ["bootstrap", "build"])


def test_a_project_with_wrong_values_still_gives_its_names(project: Path,
                                                          tmp_path: Path) -> None:
    # As `check` reads it: every problem is reported there, the graph is still the graph.
    (project / "pyrlab.toml").write_text('name = 5\n[images.x]\nfrom = 3\n[images.y]\n')
    done, found = completion_process("pyrlab build ", project, tmp_path)
    assert (done.returncode, done.stdout, done.stderr, found) == (0, "", "", ["x", "y"])


def test_a_line_it_cannot_read_prints_nothing(tmp_path: Path) -> None:
    # An unclosed quote before the word under the cursor: argcomplete gives up.
    done, found = completion_process("pyrlab -C 'a b\" up ", tmp_path, tmp_path)
    assert (done.stdout, done.stderr, found) == ("", "", [])


def test_a_completion_request_imports_only_the_verb_on_the_line(project: Path) -> None:
    script = (
        "import json, os, sys\n"
        "os.environ.update(_ARGCOMPLETE='1', COMP_LINE='pyrlab up ', COMP_POINT='10')\n"
        "from pyrlab.cli import build_parser\n"
        "from pyrlab.completion import complete\n"
        "import io\n"
        "out = io.StringIO()\n"
        "try:\n    complete(build_parser(), output_stream=out, exit_method=sys.exit)\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps([out.getvalue(), sorted(sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": str(SRC),
                                                      "PYRLAB_USER_CONFIG": ""})
    answer, loaded = json.loads(done.stdout)
    assert answer == "sci-py "
    verbs = {m for m in loaded if m.startswith("pyrlab.commands.")
             and not m.startswith("pyrlab.commands._")}  # _args, _common: shared helpers
    assert verbs == {"pyrlab.commands.up"}
    assert not {"jinja2", "pyrlab.config.lists", "pyrlab.gate", "ssl"} & set(loaded)


def test_commands_import_no_argcomplete() -> None:
    script = ("import sys\nfrom pyrlab.cli import parse_args\n"
              "parse_args(['up', 'pylab']); parse_args(['build'])\n"
              "print(sorted(m for m in sys.modules if 'argcomplete' in m or "
              "m == 'pyrlab.completion'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the scripts


def run_pyrlab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRLAB_", "_ARC"))}
    return subprocess.run([sys.executable, "-m", "pyrlab", *args], capture_output=True,
                          text=True, env={**env, "PYTHONPATH": str(SRC)}, check=False)


@pytest.mark.parametrize(("shell", "registers"), [
    ("bash", "complete -o nospace -o default -o bashdefault -F _python_argcomplete pyrlab"),
    ("zsh", "compdef _python_argcomplete pyrlab"),
    ("fish", "complete --command pyrlab -f -a '(__fish_pyrlab_complete)'"),
])
def test_completion_prints_the_shell_code(shell: str, registers: str) -> None:
    done = run_pyrlab("completion", shell)
    assert (done.returncode, done.stderr) == (0, "")
    assert registers in done.stdout
    assert "_ARGCOMPLETE" in done.stdout
    as_json = json.loads(run_pyrlab("completion", shell, "--json").stdout)
    assert as_json["shell"] == shell and as_json["script"].strip() == done.stdout.strip()


def test_the_bash_code_is_valid_bash(tmp_path: Path) -> None:
    code = tmp_path / "pyrlab.bash"
    code.write_text(run_pyrlab("completion", "bash").stdout)
    done = subprocess.run(["bash", "-n", str(code)], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stderr) == (0, "")


def test_completion_of_an_unknown_shell_is_a_usage_error() -> None:
    done = run_pyrlab("completion", "tcsh")
    assert done.returncode == 2
    assert "argument SHELL: invalid choice: 'tcsh' (choose from" in done.stderr
    assert "Traceback" not in done.stderr
