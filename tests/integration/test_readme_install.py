"""The README's first command, run as written in a throwaway Debian trixie container (the
session's bootstrapped base: a stock minbase Debian, no Python, no pip), as root, with host
networking: the Debian mirror and PyPI are reached as the host reaches them.

What differs from a fresh machine, and why:
- the checkout is this one's files (tracked and untracked, not ignored), unpacked in /src,
  less the project the first command leaves in it (`mylab/`), which a fresh clone lacks;
- the host's Docker socket is mounted, so the Docker that `.ci/setup-host.sh` installs
  finds a daemon answering and does not start one (a container cannot run dockerd), and
  /usr/sbin/policy-rc.d forbids starting services at install time, as Debian container
  images do; buildx is not fetched (PYRLAB_CI_SKIP_BUILDX=1: its fetch bind-mounts a path
  of this container into the host's daemon);
- the host's extra CA files (a TLS-intercepting proxy) are trusted, and PIP_CERT names the
  system bundle, as on the host;
- the line runs up to `pyrlab init`; its last step, `pyrlab -C mylab up pylab`, builds the
  default lab, which the rest of the suite tests: here the same shell checks that the
  `pyrlab` it would run is the one pipx installed, and that its arguments parse.
Then: docker.io, debootstrap and pipx are installed, and no test tool is.
"""

from __future__ import annotations

import shlex
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from labtools import EngineCli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = ("chromium", "shellcheck", "r-base-core", "apt-cacher-ng", "podman")
MAIN_JOB = ("docker.io", "docker-cli", "docker-buildx", "debootstrap", "pipx")


def readme_first_command() -> str:
    lines = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].splitlines()
    return next(line for line in lines if line.strip() and not line.startswith("#"))


def readme_project(line: str) -> str:
    """The folder the README's first command writes its lab project into (`pyrlab init DIR`)."""
    for step in line.split(" && "):
        words = shlex.split(step)
        if words[:2] == ["pyrlab", "init"]:
            return words[2]
    raise AssertionError(f"no `pyrlab init DIR` in the README's first command: {line}")


def checkout_tarball(path: Path, root: Path = ROOT, leave_out: tuple[str, ...] = ()) -> Path:
    """This checkout as a fresh clone plus the work in progress would have it: the files git
    tracks or does not ignore, less the folders in leave_out. (Run in this checkout, the
    README's first command leaves its project there, `mylab/`, which a fresh clone lacks
    and `pyrlab init` would refuse to overwrite.)"""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=root, capture_output=True, check=True)
    with tarfile.open(path, "w") as tar:
        for name in sorted(set(listed.stdout.decode().split("\0")) - {""}):
            if name.split("/", 1)[0] not in leave_out and (root / name).exists():
                tar.add(root / name, arcname=name, recursive=False)
    return path


def test_the_checkout_leaves_out_a_project_the_readme_left(tmp_path: Path) -> None:
    """The README's two commands in order: the first leaves mylab/ in the checkout, and the
    second's run of the first (below) must not meet it."""
    project = readme_project(readme_first_command())
    assert project == "mylab"
    repo = tmp_path / "checkout"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "tracked.py").write_text("")
    (repo / "new.txt").write_text("")  # work in progress
    (repo / project).mkdir()
    (repo / project / "pyrlab.toml").write_text("")  # the first command's project
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "add", "src"], cwd=repo, check=True)
    with tarfile.open(checkout_tarball(tmp_path / "c.tar", repo, (project,))) as tar:
        assert sorted(tar.getnames()) == ["new.txt", "src/tracked.py"]


def test_the_readme_first_command_on_a_fresh_debian(
        get_engine: Callable[[str], EngineCli], bootstrapped_bases: Callable[[str], str],
        host_ca_files: list[Path], tmp_path: Path) -> None:
    engine = get_engine("docker")
    base = bootstrapped_bases("docker")
    line = readme_first_command()
    *before, last = line.split(" && ")
    assert last == "pyrlab -C mylab up pylab", line
    tarball = checkout_tarball(tmp_path / "checkout.tar", leave_out=(readme_project(line),))
    name = f"pyrlab-test-readme-{tmp_path.name[-12:].strip('_')}"
    script = "\n".join([
        "set -e",
        "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d",
        "chmod 0755 /usr/sbin/policy-rc.d",
        "mkdir /src && tar -C /src -xf /checkout.tar && cd /src",
        # The README's line, exactly, but for its last step; then, in the same shell:
        "{ " + " && ".join(before) + "; } || { echo \"README line failed: $?\"; exit 1; }",
        'echo "pyrlab: $(command -v pyrlab)"',
        "pyrlab -C mylab up --help >/dev/null",
        "pyrlab -C mylab check",
        "for p in " + " ".join(MAIN_JOB + TEST_TOOLS) + "; do",
        "  echo \"dpkg: $p $(dpkg-query -W -f='${Status}' \"$p\" 2>/dev/null || true)\"",
        "done",
    ])
    mounts = ["--volume", f"{tarball}:/checkout.tar:ro",
              "--volume", "/var/run/docker.sock:/var/run/docker.sock"]
    for ca in host_ca_files:
        mounts += ["--volume", f"{ca}:/usr/local/share/ca-certificates/{ca.name}:ro"]
    argv = [engine.binary, "run", "--rm", "--name", name, "--network", "host",
            "--env", "PYRLAB_CI_SKIP_BUILDX=1", "--env", "DEBIAN_FRONTEND=noninteractive",
            "--env", "PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "--env", "HOME=/root",
            *mounts, base, "bash", "-c", script]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1500, check=False)
    finally:
        engine("rm", "--force", name, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{shlex.join(argv[:-1])} SCRIPT:\n{output[-6000:]}"
    assert "pyrlab: /root/.local/bin/pyrlab" in done.stdout, output[-3000:]
    status = dict(line.removeprefix("dpkg: ").split(" ", 1)
                  for line in done.stdout.splitlines() if line.startswith("dpkg: "))
    assert {p: status[p] for p in MAIN_JOB} == {p: "install ok installed" for p in MAIN_JOB}
    assert {p: status[p] for p in TEST_TOOLS} == {p: "" for p in TEST_TOOLS}, status
