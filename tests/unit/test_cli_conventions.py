"""The conventions of git's, uv's and Compose's command lines, as pyrlab keeps them: a
project found upwards, -C as git's, global options anywhere, help, did-you-mean, exit codes
in --help, JSON errors, -q / -v, no traceback on a closed pipe or Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from labfiles import REPO, init_lab, write

from pyrlab import output
from pyrlab.cli import ENVIRONMENT, main, parse_args
from pyrlab.discovery import find_project
from pyrlab.engines.base import BuildFailure
from pyrlab.errors import EXIT_CODES
from pyrlab.imagebuild.progress import Progress

PYRLAB = Path(sys.executable).parent / "pyrlab"


@pytest.fixture(autouse=True)
def _loud_again() -> Iterator[None]:
    """-q and -v set process-wide state: each test starts and ends without them."""
    level = logging.getLogger().level
    output.set_quiet(False)
    yield
    output.set_quiet(False)
    logging.getLogger().setLevel(level)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder for this test: the project search stops there."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def run_script(*args: str, cwd: Path, stdout: int | None = subprocess.PIPE,
               ) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYRLAB_")
           or k in ("PYRLAB_USER_CONFIG", "PYRLAB_NAME")}
    return subprocess.run([str(PYRLAB), *args], cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, check=False, env=env)


# --------------------------------------------------------------------------- discovery


def test_a_project_is_found_from_a_subfolder_and_named(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(home / "lab")
    (lab / "notebooks" / "deep").mkdir(parents=True)
    capsys.readouterr()
    monkeypatch.chdir(lab / "notebooks" / "deep")
    assert main(["check"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == f"ok: {lab}"
    assert captured.err == f"pyrlab: using {lab}/pyrlab.toml\n"
    monkeypatch.chdir(lab)  # in the project's own folder: nothing to say
    assert main(["check"]) == 0
    assert capsys.readouterr().err == ""


def test_no_project_is_one_line_naming_init(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    empty = home / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    for verb in (["check"], ["render"], ["config"], ["ps"], ["build", "--dry-run"]):
        assert main(verb) == 3, verb
        assert capsys.readouterr().err == (
            f"pyrlab: error: no pyrlab.toml in {empty} or above; `pyrlab init` makes one\n")


def test_the_search_stops_at_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    init_lab(tmp_path / "outer")
    inside = tmp_path / "outer" / "me" / "work"
    inside.mkdir(parents=True)
    assert find_project(inside, home=tmp_path / "outer" / "me") is None
    assert find_project(inside, home=tmp_path) == tmp_path / "outer"
    # A pyrlab.toml in the home folder itself is found.
    assert find_project(inside, home=tmp_path / "outer") == tmp_path / "outer"
    monkeypatch.setenv("HOME", str(tmp_path / "outer" / "me"))
    capsys.readouterr()
    assert main(["check", "-C", str(inside)]) == 3
    assert capsys.readouterr().err == (
        f"pyrlab: error: no pyrlab.toml in {inside} or above; `pyrlab init` makes one\n")


def test_the_search_stops_where_the_owner_changes(home: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    lab = init_lab(home / "lab")
    theirs = lab / "theirs"
    theirs.mkdir()
    os.chown(theirs, 4242, 4242)
    assert find_project(theirs) is None  # lab's pyrlab.toml belongs to someone else
    (theirs / "mine").mkdir()
    os.chown(theirs / "mine", 4242, 4242)
    assert find_project(theirs / "mine") is None
    assert find_project(lab / "theirs" / "..") == lab


def test_verbs_that_need_no_project_work_anywhere(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    empty = home / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert main(["help"]) == 0
    assert main(["--engine", "podman", "init", "new"]) == 0  # --engine: accepted, unused
    assert (empty / "new" / "pyrlab.toml").is_file()
    assert "error" not in capsys.readouterr().err


# --------------------------------------------------------------------------- -C as git's


def test_dash_c_changes_folder_first(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = init_lab(home / "lab")
    monkeypatch.chdir(home)
    assert main(["-C", "lab", "render", "-o", "ctx", "pylab"]) == 0
    assert (lab / "ctx" / "pylab" / "Dockerfile").is_file()
    assert not (home / "ctx").exists()
    assert Path.cwd() == home  # main() leaves the folder as it found it
    assert main(["init", "-C", "lab", "sub"]) == 0  # init's DIR too
    assert (lab / "sub" / "pyrlab.toml").is_file()


def test_dash_c_into_a_folder_that_is_not_there(home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(home / "nowhere"), "init"]) == 2
    assert capsys.readouterr().err == (f"pyrlab: error: -C {home / 'nowhere'}: cannot change "
                                       "to it: no such file or directory\n")


# --------------------------------------------------------------------------- global options

EVERYWHERE = [
    (["--engine", "podman", "-q", "check"], ["check", "--engine", "podman", "-q"]),
    (["-v", "--json", "render", "-o", "x"], ["render", "-o", "x", "-v", "--json"]),
    (["--engine", "docker", "-q", "init", "d"], ["init", "d", "--engine", "docker", "-q"]),
    (["-C", "lab", "--json", "-q", "--engine", "podman", "export", "compose"],
     ["export", "compose", "-C", "lab", "--json", "-q", "--engine", "podman"]),
    (["--set", "a=1", "export", "--set", "b=2", "ci"], ["export", "ci", "--set", "a=1",
                                                      "--set", "b=2"]),
    (["-v", "help", "up"], ["help", "up", "-v"]),
]


@pytest.mark.parametrize(("before", "after"), EVERYWHERE,
                         ids=[" ".join(b) for b, _ in EVERYWHERE])
def test_every_global_option_works_before_and_after_every_verb(before: list[str],
                                                               after: list[str]) -> None:
    parsed = vars(parse_args(before))
    assert parsed == vars(parse_args(after))
    assert not [k for k in parsed if k.startswith(("before_verb", "after_kind"))]


def test_engine_is_accepted_by_commands_that_use_none(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `init` uses no engine: --engine, before or after it, changes nothing it writes.
    # (Each is a folder `lab`, so that the project names written are the same.)
    assert main(["init", str(home / "plain" / "lab"), "--base", "debian"]) == 0
    assert main(["--engine", "podman", "init", str(home / "before" / "lab"),
                 "--base", "debian"]) == 0
    assert main(["init", str(home / "after" / "lab"), "--base", "debian",
                 "--engine", "docker"]) == 0
    written = {name: sorted((p.name, p.read_bytes()) for p in (home / name / "lab").iterdir())
               for name in ("plain", "before", "after")}
    assert written["before"] == written["plain"] == written["after"]
    assert "--engine" not in capsys.readouterr().err


# --------------------------------------------------------------------------- help


def test_bare_pyrlab_and_help_print_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    bare = capsys.readouterr()
    assert bare.out.startswith("usage: pyrlab ") and bare.err == ""
    assert main(["help"]) == 0
    assert capsys.readouterr().out == bare.out
    assert main(["help", "up"]) == 0
    up_help = capsys.readouterr().out
    assert up_help.startswith("usage: pyrlab up ")
    with pytest.raises(SystemExit):
        main(["up", "--help"])
    assert capsys.readouterr().out == up_help
    assert main(["help", "export", "compose"]) == 0
    assert capsys.readouterr().out.startswith("usage: pyrlab export compose ")
    assert main(["help", "chek"]) == 2
    assert capsys.readouterr().err == ("pyrlab: error: unknown command 'chek'; did you mean "
                                       "check?\npyrlab: hint: `pyrlab --help` lists them\n")


def test_help_lists_exit_codes_from_the_one_table_and_the_environment(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    text = capsys.readouterr().out
    codes = text.split("exit codes:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert codes == [f"  {code:>3}  {meaning}" for code, meaning in sorted(EXIT_CODES.items())]
    environment = text.split("environment:\n", 1)[1].split("\n\n", 1)[0]
    for name in [*ENVIRONMENT, "PYRLAB_LOG_LEVEL", "NO_COLOR", "PYRLAB_ENGINE"]:
        assert name in environment
    assert "-q, --quiet           print errors only" in text


def test_the_command_line_page_shows_the_same_exit_codes() -> None:
    page = (REPO / "docs" / "command-line.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.*) \|$", page, re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in rows] == sorted(EXIT_CODES.items())


def test_did_you_mean_for_verbs_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["chek"], ("pyrlab: error: unknown command 'chek'; did you mean check? "
                   "(`pyrlab help` lists the commands)")),
        (["init", "--forse"], ("pyrlab: error: `pyrlab init` has no option --forse; "
                              "did you mean --force?")),
        (["export", "compose", "--alow-unsafe"],
         ("pyrlab: error: `pyrlab export compose` has no option --alow-unsafe; "
         "did you mean --allow-unsafe?")),
        (["--engine", "podmn", "ps"], ("pyrlab: error: argument --engine: invalid choice: "
                                      "'podmn' (choose from 'auto', 'docker', 'podman'); "
                                      "did you mean podman?")),
        (["up", "pylab", "--zzz"], "pyrlab: error: `pyrlab up` has no option --zzz"),
    ]
    for argv, last in cases:
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == last


# --------------------------------------------------------------------------- --json


def test_json_errors_are_an_object_on_stdout(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(home)
    assert main(["check", "--json"]) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "ok": False, "hint": None, "exit_code": 3,
        "message": f"no pyrlab.toml in {home} or above; `pyrlab init` makes one"}
    assert captured.err.startswith("pyrlab: error: no pyrlab.toml")
    with pytest.raises(SystemExit) as caught:
        main(["--json", "chek"])
    assert caught.value.code == 2
    assert json.loads(capsys.readouterr().out) == {
        "ok": False, "hint": None, "exit_code": 2,
        "message": "unknown command 'chek'; did you mean check? (`pyrlab help` lists the "
                   "commands)"}


def test_json_is_refused_where_there_can_be_none(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
            (["shell", "pylab", "--json"], ("`pyrlab shell` cannot print JSON: it hands the "
                                           "terminal to a shell in the lab")),
            (["--json", "logs", "-f", "pylab"], ("`pyrlab logs -f` cannot print JSON: it prints "
                                                "the log as it grows (without -f, --json gives "
                                                "the lines so far)"))):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"pyrlab: error: {message}"
    assert parse_args(["logs", "pylab", "--json"]).json is True


# --------------------------------------------------------------------------- -q and -v


def test_quiet_prints_errors_only(home: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(home / "lab")
    write(lab, "requirements.txt", "jupyterlab\ntqdm\ntqdm\n")  # a warning
    (lab / "sub").mkdir()
    monkeypatch.chdir(lab / "sub")  # a note: the project found above
    capsys.readouterr()
    assert main(["check"]) == 0
    loud = capsys.readouterr()
    assert "pyrlab: using" in loud.err and "duplicate entry" in loud.err and loud.out
    assert main(["-q", "check"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["-q", "init", str(home / "other")]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["config", "-q"]) == 0  # a command whose output is its answer keeps it
    quiet_config = capsys.readouterr()
    assert quiet_config.out and quiet_config.err == ""
    write(lab, "requirements.txt", "numpy==1\nnumpy==2\n")
    assert main(["-q", "check"]) == 3
    assert capsys.readouterr().err.startswith("pyrlab: error: ")
    with pytest.raises(SystemExit):
        main(["-q", "-v", "check"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "pyrlab: error: -q (errors only) and -v (the debug log) cannot go together")


def test_quiet_silences_the_progress_display_but_not_a_failure() -> None:
    output.set_quiet(True)
    stream = StringIO()
    progress = Progress(stream, tty=True)
    progress.note("engine: docker")
    progress.start("pylab", "building")
    progress.step("pylab", "[1/2] RUN apt-install")
    progress.done("pylab", "built")
    assert stream.getvalue() == ""
    progress.failed("pylab", BuildFailure(step="[2/2] RUN uv-install", tail=("boom",),
                                          error=None), None)
    progress.close()
    assert stream.getvalue() == "pylab: FAILED at [2/2] RUN uv-install; its last lines:\n" \
                                "  | boom\n"


def test_verbose_is_the_debug_log(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    assert main(["-v", "help"]) == 0
    assert root.level == logging.DEBUG
    assert main(["help", "-q"]) == 0
    assert root.level == logging.ERROR
    monkeypatch.setenv("PYRLAB_LOG_LEVEL", "debug")
    assert main(["help"]) == 0
    assert root.level == logging.DEBUG


# --------------------------------------------------------------------------- pipes, Ctrl-C


def test_a_closed_pipe_ends_quietly(home: Path) -> None:
    """stdout's reader is gone before pyrlab writes: no traceback, no message, 141."""
    lab = init_lab(home / "lab")
    for argv, cwd in ((["check"], lab), (["init", "new"], home), (["help"], home)):
        read, write_end = os.pipe()
        os.close(read)
        try:
            done = run_script(*argv, cwd=cwd, stdout=write_end)
        finally:
            os.close(write_end)
        assert (done.returncode, done.stderr) == (141, ""), argv
    # argparse's own --help swallows the error itself: still no traceback.
    read, write_end = os.pipe()
    os.close(read)
    done = run_script("--help", cwd=home, stdout=write_end)
    os.close(write_end)
    assert done.stderr == ""


def test_ctrl_c_before_the_command_runs_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while a verb's module is imported (outside the command's own handling)."""
    def interrupted(verb: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pyrlab.cli.load", interrupted)
    assert main(["check"]) == 130
    assert capsys.readouterr().err == "pyrlab: error: interrupted\n"


def test_ctrl_c_while_pyrlab_starts_is_one_line() -> None:
    """SIGINT after pyrlab.cli's first lines ran, before main() could catch anything (here:
    right after the import, as if the imports were still going on)."""
    script = ("import os, signal, time\nimport pyrlab.cli\n"
              "os.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\nprint('not interrupted')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (130, "",
                                                           "pyrlab: error: interrupted\n")


def test_main_gives_ctrl_c_back_to_python() -> None:
    import signal

    assert main(["help"]) == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_every_variable_the_help_names_is_one_the_config_takes_as_pyrlabs() -> None:
    # A variable `--help` documents must not be warned about as a stray PYRLAB_ one.
    from pyrlab.cli import ENVIRONMENT
    from pyrlab.config.model import TOP_KEYS
    from pyrlab.config.overrides import ENV_NOT_CONFIG

    named = [n for n in ENVIRONMENT if n.startswith("PYRLAB_") and "," not in n]
    assert named
    for name in named:
        key = name.removeprefix("PYRLAB_").lower()
        assert name in ENV_NOT_CONFIG or key in TOP_KEYS, name
