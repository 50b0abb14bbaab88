"""Tab completion in a real interactive bash (and zsh and fish, where installed), set up as
docs/completion.md says.

bash runs on a pseudo-terminal with `eval "$(pyrlab completion bash)"`, and the test types
as a user does: a partial command line, TAB, a word END after it, then Ctrl-A and
`echo RESULT: ` in front, and Enter, so that the line readline completed is printed back.
`pyrlab` on the PATH is this checkout's, started as the installed command starts it
(pyrlab.cli:main). No engine needed.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PROJECT = """\
name = "demo"

[images.core]

[images.sci-py]
from = "core"
ports = { lab = 8890 }

[images.tools]
from = "core"
"""
# Readline as plain as it gets: no bracketed paste codes, no bell, no "Display all?" prompt.
INPUTRC = """\
set enable-bracketed-paste off
set bell-style none
set completion-query-items 1000
set page-completions off
"""

class Terminal:
    """An interactive bash on a pseudo-terminal: what is typed, and all it prints."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the shell
            try:
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.transcript = ""
        self.marker = 0  # numbers each line read back

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def read_until(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Read the shell's output until a line of it matches `pattern` (\\r dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.transcript.replace("\r", "").split("\n")
            for line in lines:
                found = re.fullmatch(pattern, line)
                if found:
                    return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} in:\n{self.transcript}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the shell is gone
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"bash ended; it printed:\n{self.transcript}")
                self.transcript += chunk.decode(errors="replace")

    def completed(self, partial: str, tabs: int = 1) -> str:
        """The command line after typing `partial` and TAB (`tabs` times)."""
        self.marker += 1
        # A word typed after the completion keeps its space (or its absence) visible.
        self.type(partial + "\t" * tabs + "END")
        self.type(f"\x01echo RESULT{self.marker}: \n")  # Ctrl-A: to the line's start
        return self.read_until(rf"RESULT{self.marker}: (.*)END").group(1)

    def close(self) -> None:
        self.type("exit\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """A project (demo/, with a notebooks/ folder), an empty folder beside it (elsewhere/),
    and the environment of a shell whose `pyrlab` is this checkout's."""
    project = tmp_path / "demo"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyrlab.toml").write_text(PROJECT)
    (tmp_path / "elsewhere").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "pyrlab"  # what pip's console script does, with this checkout
    command.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(SRC)!r})\n"
                       "from pyrlab.cli import main\nraise SystemExit(main())\n")
    command.chmod(0o755)
    (tmp_path / "inputrc").write_text(INPUTRC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "TERM": "dumb",
            "PS1": "$ ", "INPUTRC": str(tmp_path / "inputrc"), "PYRLAB_USER_CONFIG": "",
            "LANG": "C.UTF-8"}


@pytest.fixture
def terminal(shell_env: dict[str, str], tmp_path: Path) -> Iterator[Terminal]:
    shell = Terminal(["bash", "--norc", "--noprofile", "-i"], tmp_path / "demo" / "notebooks",
                     shell_env)
    shell.type('eval "$(pyrlab completion bash)" && echo "completion: $?"\n')
    shell.read_until(r"completion: 0")
    yield shell
    shell.close()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_verbs_image_names_and_set_keys(terminal: Terminal) -> None:
    # Started in a subfolder of the project: its pyrlab.toml is found above.
    assert terminal.completed("pyrlab chec") == "pyrlab check "
    assert terminal.completed("pyrlab -C ../../demo upg") == "pyrlab -C ../../demo upgrade "
    assert terminal.completed("pyrlab up ") == "pyrlab up sci-py "
    assert terminal.completed("pyrlab build core t") == "pyrlab build core tools "
    assert terminal.completed("pyrlab up --no-b") == "pyrlab up --no-build "
    # After '=' (a word break of bash's) the value; the key ends in '=' with no space.
    assert terminal.completed("pyrlab check --set run.bi") == "pyrlab check --set run.bind="
    assert terminal.completed("pyrlab up --set engine=pod") == "pyrlab up --set engine=podman "
    # Two TABs list the candidates (all three images) and leave the line as it was.
    before = len(terminal.transcript)
    assert terminal.completed("pyrlab build ", tabs=2) == "pyrlab build "
    listing = terminal.transcript[before:]
    assert re.search(r"\ncore +sci-py +tools *\r?\n", listing), listing
    assert "Traceback" not in terminal.transcript
    assert "error" not in terminal.transcript


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_with_dash_c_and_prints_nothing_for_a_broken_project(
        terminal: Terminal, tmp_path: Path) -> None:
    terminal.type("cd ../../elsewhere && echo moved\n")
    terminal.read_until("moved")
    assert terminal.completed("pyrlab up ") == "pyrlab up "  # no project here: no names
    assert terminal.completed("pyrlab -C ../demo up s") == "pyrlab -C ../demo up sci-py "
    (tmp_path / "demo" / "pyrlab.toml").write_text("[images.core\n")  # not TOML
    assert terminal.completed("pyrlab -C ../demo build co") == "pyrlab -C ../demo build co"
    assert terminal.completed("pyrlab -C ../demo bui") == "pyrlab -C ../demo build "
    assert "Traceback" not in terminal.transcript
    assert "error" not in terminal.transcript


# zsh and fish, where installed (CI's host has bash only): the same code, their own glue.


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_zsh_completes_a_verb_and_an_image_name(shell_env: dict[str, str],
                                                tmp_path: Path) -> None:
    shell = Terminal(["zsh", "-f", "-i"], tmp_path / "demo" / "notebooks", shell_env)
    try:
        shell.type('autoload -U compinit && compinit -u && eval "$(pyrlab completion zsh)" '
                   '&& echo "completion: $?"\n')
        shell.read_until(r"completion: 0")
        assert shell.completed("pyrlab chec") == "pyrlab check "
        assert shell.completed("pyrlab up ") == "pyrlab up sci-py "
        assert shell.completed("pyrlab --set run.bi") == "pyrlab --set run.bind="
        assert "Traceback" not in shell.transcript
    finally:
        shell.close()


@pytest.mark.skipif(shutil.which("fish") is None, reason="needs fish")
def test_fish_completes_a_verb_and_an_image_name(shell_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    script = ("pyrlab completion fish | source\n"
              "for line in 'pyrlab chec' 'pyrlab up ' 'pyrlab build t' 'pyrlab --set engine=p'\n"
              "    complete --do-complete $line; echo ===\n"
              "end\n")
    done = subprocess.run(["fish", "--no-config", "-c", script], env=shell_env,
                          cwd=tmp_path / "demo" / "notebooks", capture_output=True, text=True,
                          timeout=120, check=False)
    answers = [[line.split("\t")[0] for line in block.strip("\n").splitlines()]
               for block in done.stdout.split("===\n")[:-1]]
    assert (done.returncode, done.stderr) == (0, "")
    assert answers == [["check"], ["sci-py"], ["tools"], ["engine=podman"]]
