"""The README's first command, as a new user copies it: one line that works on a stock
Debian with its system Python (PEP 668: no bare `pip install`), puts pyrlab on PATH before
it first runs it, and installs only what the main job needs; the test tools come with the
second command. (tests/integration/test_readme_install.py runs the line in a fresh Debian
container.)"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SETUP = ROOT / ".ci" / "setup-host.sh"

# What the main job may install: an engine, mmdebstrap and debootstrap, and what installs
# pyrlab itself.
MAIN_JOB = {"docker.io", "docker-cli", "docker-buildx", "podman", "mmdebstrap", "debootstrap",
            "pipx", "python3-venv", "ca-certificates"}
TEST_TOOLS = {"chromium", "shellcheck", "r-base-core", "apt-cacher-ng"}


def readme_commands() -> list[str]:
    """The command lines of the README's first shell block, in order (comments dropped)."""
    block = re.search(r"^```sh\n(.*?)^```", README.read_text(), re.DOTALL | re.MULTILINE)
    assert block is not None, "README.md has no ```sh block"
    return [line for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def steps(line: str) -> list[list[str]]:
    """The `&&`-separated commands of a line, each as the shell splits it."""
    return [shlex.split(part) for part in line.split(" && ")]


def setup_packages(*args: str) -> set[str]:
    done = subprocess.run(["bash", str(SETUP), "--print-packages", *args], capture_output=True,
                          text=True, timeout=30, check=True)
    return set(done.stdout.split())


def test_the_first_command_is_one_line() -> None:
    text = README.read_text()
    first = readme_commands()[0]
    assert not first.rstrip().endswith("\\")  # no continuation onto a second line
    assert f"\n{first}\n" in text
    assert ";" not in first and "\n" not in first


def test_the_first_command_installs_pyrlab_without_a_bare_pip_install() -> None:
    commands = steps(readme_commands()[0])
    assert commands[0] == ["bash", ".ci/setup-host.sh"]  # the main job's setup, no --tests
    for argv in commands:
        # Debian's Python refuses `pip install` into the system (PEP 668).
        assert argv[:2] not in (["pip", "install"], ["pip3", "install"]), argv
        assert argv[:4] != ["python3", "-m", "pip", "install"], argv
        assert "--break-system-packages" not in argv
    installs = [argv for argv in commands if argv[:2] == ["pipx", "install"]
                or (argv[0].endswith("/bin/pip") and argv[1] == "install")]
    assert installs, commands
    assert installs[0][-1] == "."  # this checkout


def test_pyrlab_is_on_path_before_the_first_command_runs_it() -> None:
    commands = steps(readme_commands()[0])
    first_use = next(i for i, argv in enumerate(commands) if argv[0] == "pyrlab")
    # pipx puts it in ~/.local/bin, which a fresh shell may not have on PATH yet.
    path_set = [i for i, argv in enumerate(commands)
                if argv[0] == "export" and argv[1].startswith("PATH=$HOME/.local/bin:")]
    assert path_set and path_set[0] < first_use, commands
    assert commands[first_use:] == [["pyrlab", "init", "mylab", "--base", "debian"],
                                    ["pyrlab", "-C", "mylab", "up", "pylab"]]


def test_the_main_job_installs_no_test_tools() -> None:
    main = setup_packages()
    assert main <= MAIN_JOB, main - MAIN_JOB
    assert {"docker.io", "debootstrap", "pipx"} <= main
    assert not main & TEST_TOOLS


def test_the_test_command_installs_the_test_tools() -> None:
    assert readme_commands()[1] == "bash .ci/run"
    run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/setup-host.sh --tests" in run
    with_tests = setup_packages("--tests")
    assert TEST_TOOLS | {"podman", "python3-venv"} <= with_tests
    assert setup_packages() <= with_tests


def test_setup_host_refuses_an_unknown_option() -> None:
    done = subprocess.run(["bash", str(SETUP), "--print-packages", "--frobnicate"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr
