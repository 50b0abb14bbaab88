"""The README's first command, as a new user copies it: one line that works on a stock
Debian with its system Python (PEP 668: no bare `pip install`), puts pyrlab on PATH before
it first runs it, and installs only what the main job needs; the test tools come with the
second command. (tests/integration/test_readme_install.py runs the line in a fresh Debian
container.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SETUP = ROOT / ".ci" / "setup-host.sh"

# What the main job may install: an engine, mmdebstrap and debootstrap, and what installs
# pyrlab itself.
MAIN_JOB = {"docker.io", "docker-cli", "docker-buildx", "podman", "mmdebstrap", "debootstrap",
            "pipx", "python3-venv", "ca-certificates"}
TEST_TOOLS = {"chromium", "shellcheck", "r-base-core", "apt-cacher-ng"}


def shell_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.DOTALL | re.MULTILINE)


def commands_of(block: str) -> list[str]:
    """A shell block's command lines, in order (comments dropped)."""
    return [line for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def readme_commands() -> list[str]:
    """The command lines of the README's first shell block, in order."""
    blocks = shell_blocks()
    assert blocks, "README.md has no ```sh block"
    return commands_of(blocks[0])


def test_the_readme_says_what_pyrlab_is_then_gives_exactly_two_commands() -> None:
    text = README.read_text()
    before = text[:text.index("```sh")]
    intro = " ".join(line for line in before.splitlines()[1:] if line.strip())
    assert before.startswith("# pyrlab\n")
    assert intro.startswith("pyrlab ") and "JupyterLab" in intro
    assert len(re.findall(r"[.!?](?:\s|$)", intro)) == 2, intro  # two sentences
    assert len(readme_commands()) == 2, readme_commands()


def test_the_second_block_opens_stops_and_removes_the_first_lab() -> None:
    text = README.read_text()
    second = shell_blocks()[1]
    between = text[text.index("bash .ci/run"):text.index(second)]
    assert "## " not in between  # right after the first block
    argvs = [shlex.split(line, comments=True) for line in commands_of(second)]
    verbs = [argv[3] for argv in argvs]
    assert verbs == ["url", "down", "clean"], argvs
    for argv in argvs:
        assert argv[:3] == ["pyrlab", "-C", "mylab"], argv  # the lab the first block made
        done = subprocess.run([sys.executable, "-m", "pyrlab", *argv[3:], "--help"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, (argv, done.stderr)


def test_every_relative_link_of_the_docs_names_a_file_that_exists() -> None:
    pages = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name}: link to {target}"


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


def test_emulation_comes_with_the_tests_or_on_its_own_never_with_the_main_job() -> None:
    emulation = {"qemu-user-static", "binfmt-support"}
    assert setup_packages("--emulation") == setup_packages() | emulation
    assert emulation <= setup_packages("--tests")
    assert not setup_packages() & emulation


def test_setup_host_refuses_an_unknown_option() -> None:
    done = subprocess.run(["bash", str(SETUP), "--print-packages", "--frobnicate"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and "unknown option --frobnicate" in done.stderr


def test_no_test_module_name_is_in_both_suites() -> None:
    """`.ci/run` collects tests/unit and tests/integration in one session, where pytest
    imports each test module by its name: one name in both is a collection error there."""
    tests = ROOT / "tests"
    unit = {p.name for p in (tests / "unit").glob("test_*.py")}
    integration = {p.name for p in (tests / "integration").glob("test_*.py")}
    assert unit and integration
    assert unit & integration == set()
