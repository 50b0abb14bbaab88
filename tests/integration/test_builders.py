"""Both ways pyrlab builds with Docker, each chosen on purpose rather than by what this
machine happens to have: the buildx plugin (`docker buildx build --load`, the default
where the first docker on PATH has it) and the client's built-in BuildKit builder
(`DOCKER_BUILDKIT=1 docker build`, Debian's 20.10 client first on PATH with a
DOCKER_CONFIG that holds no plugin). The same small lab (cases/small) is built through
each; pyrlab must say which way it took, take it (its build log shows the command) and
make an image that works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from labtools import EngineCli, Lab, engine_unavailable, run_pyrlab

pytestmark = pytest.mark.integration

ENGINE = "docker"
CASE = Path(__file__).parent / "cases" / "small"
DEBIAN_CLIENT = "/usr/bin/docker"  # Debian's docker.io: a 20.10 client, built-in BuildKit


@dataclass(frozen=True)
class Builder:
    env: dict[str, str]  # what makes pyrlab choose this way
    engine_line: str  # what pyrlab says on stderr
    command: str  # how the build log's command line starts


def client_output(binary: str, *args: str, env: dict[str, str] | None = None) -> str | None:
    done = subprocess.run([binary, *args], capture_output=True, text=True, check=False,
                          timeout=60, env={**os.environ, **(env or {})})
    return done.stdout.strip() if done.returncode == 0 else None


def buildx_builder() -> Builder:
    binary = shutil.which("docker")
    if binary is None or client_output(binary, "buildx", "version") is None:
        engine_unavailable(f"no docker client with the buildx plugin on PATH ({binary})")
    assert binary is not None
    return Builder({}, f"engine: docker with buildx ({binary} buildx build --load), from --engine",
                   f"+ {binary} buildx build --load --progress=plain ")


def classic_builder(no_plugins: Path) -> Builder:
    env = {"PATH": f"/usr/bin:{os.environ.get('PATH', '')}", "DOCKER_CONFIG": str(no_plugins)}
    version = client_output(DEBIAN_CLIENT, "version", "--format", "{{.Client.Version}}",
                            env=env) if os.access(DEBIAN_CLIENT, os.X_OK) else None
    if version is None or not re.match(r"(1\d|2[0-2])\.", version):
        engine_unavailable(f"{DEBIAN_CLIENT} is not a Docker client before 23 with the built-in "
                           f"BuildKit builder (version: {version}; Debian: apt-get install "
                           "docker.io)")
    if client_output(DEBIAN_CLIENT, "buildx", "version", env=env) is not None:
        engine_unavailable(f"{DEBIAN_CLIENT} finds a buildx plugin outside DOCKER_CONFIG (in a "
                           "system plugin folder), so pyrlab would not use the classic builder")
    return Builder(env, "engine: docker with its built-in BuildKit builder "
                   f"(DOCKER_BUILDKIT=1 {DEBIAN_CLIENT} build), from --engine",
                   f"+ DOCKER_BUILDKIT=1 {DEBIAN_CLIENT} build --progress=plain ")


@dataclass
class Built:
    way: str
    builder: Builder
    lab: Lab
    done: subprocess.CompletedProcess[str]  # `pyrlab build --json`


@pytest.fixture(scope="module", params=["buildx", "classic"])
def built(request: pytest.FixtureRequest, get_engine: Callable[[str], EngineCli],
          make_module_lab: Callable[..., Lab],
          tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The small lab built one way, under an image prefix of its own."""
    way = str(request.param)
    get_engine(ENGINE)
    builder = (buildx_builder() if way == "buildx"
               else classic_builder(tmp_path_factory.mktemp("docker-config-without-plugins")))
    lab = make_module_lab("small", ENGINE, name=f"via-{way}")
    done = run_pyrlab("build", "-C", str(lab.root), "--engine", ENGINE, "--json",
                      env=builder.env)
    assert done.returncode == 0, done.stderr
    return Built(way, builder, lab, done)


def test_pyrlab_says_which_way_it_builds(built: Built) -> None:
    lines = built.done.stderr.splitlines()
    assert built.builder.engine_line in lines, built.done.stderr
    data = json.loads(built.done.stdout)
    assert f"engine: {data['engine']}, from {data['engine_source']}" == built.builder.engine_line


def test_it_builds_that_way(built: Built) -> None:
    images = json.loads(built.done.stdout)["images"]
    assert {i["name"]: i["action"] for i in images} == {"pyrlab-base": "built", "pylab": "built"}
    for image in images:
        commands = [line for line in Path(image["log"]).read_text().splitlines()
                    if line.startswith("+ ")]
        assert len(commands) == 1 and commands[0].startswith(built.builder.command), commands


def test_the_image_works(built: Built, get_engine: Callable[[str], EngineCli]) -> None:
    engine = get_engine(ENGINE)
    ref = built.lab.ref("pylab")
    assert engine.labels(ref)["org.pyrlab.parent-id"] == \
        engine.image_id(built.lab.ref("pyrlab-base"))
    done = engine("run", "--rm", "--interactive", ref, "python", "-", "six", "packaging",
                  input=(CASE / "verify.py").read_text(), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["six", "packaging"]
