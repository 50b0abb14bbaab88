"""Two projects on one engine whose images have the same names (pyrlab-base, pylab), the
same prefix and folders of the same name, but different `name`s and lists (b adds
tabulate): each builds, diffs, tests, runs on its own port, rolls back and cleans, and
neither ever sees, moves or removes the other's images, labs, tags or packages.

Two full builds (the second's pyrlab-base comes from the build cache) and two one-line
delta builds, for the rollbacks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from labclient import LabClient
from labtools import EngineCli, Lab, copy_case, free_port, new_prefix, run_pyrlab

from pyrlab.config.key import project_key as folder_key

pytestmark = pytest.mark.integration

CASE = "two-projects"


@dataclass
class Project:
    key: str  # "a" or "b"
    name: str  # its pyrlab.toml `name`
    prefix: str  # its `prefix` (the same for both): names in a registry, or bare names
    lab: Lab
    port: int
    home: Path  # the HOME pyrlab runs with: labs get HOME/docker/NAME by default

    def pyrlab(self, command: str, *args: str, timeout: float = 1800,
               ) -> subprocess.CompletedProcess[str]:
        argv = [command, "-C", str(self.lab.root)]
        if command in ("build", "clean"):
            argv += ["--engine", "docker"]
        return run_pyrlab(*argv, *args, timeout=timeout, env={"HOME": str(self.home)})

    def ok(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.pyrlab(command, *args)
        assert done.returncode == 0, f"{self.key}: pyrlab {command}: {done.stdout}{done.stderr}"
        return done

    def ref(self, tag: str = "latest") -> str:
        return f"{self.name}/pylab:{tag}"

    def tags(self, engine: EngineCli) -> dict[str, str | None]:
        """Every NAME/IMAGE:TAG of this project → its image ID."""
        return {ref: engine.image_id(ref) for ref in engine.refs(f"{self.name}/")}

    def has(self, engine: EngineCli, package: str, tag: str = "latest") -> bool:
        done = engine("run", "--rm", "--entrypoint", "/opt/venv/bin/python", self.ref(tag),
                      "-c", f"import importlib.util as u; print(u.find_spec({package!r}) "
                      "is not None)")
        return done.stdout.strip() == "True"


@pytest.fixture
def projects(tmp_path: Path, engine: EngineCli, base_image: str,
             host_ca_files: list[Path]) -> Iterator[dict[str, Project]]:
    prefix = new_prefix()
    home = tmp_path / "home"
    home.mkdir()
    made: dict[str, Project] = {}
    for key, extra in (("a", ""), ("b", "tabulate\n")):
        name = f"{prefix.rstrip('/')}-{key}"
        port = free_port()
        lab = copy_case(CASE, tmp_path / key / "lab", prefix=prefix, engine_name="docker",
                        host_ca_files=host_ca_files, base=lambda _: base_image, NAME=name,
                        LAB_PORT=str(port), WORK=str(tmp_path / key / "lab" / "work"))
        with (lab.root / "requirements.txt").open("a") as out:
            out.write(extra)
        made[key] = Project(key, name, prefix, lab, port, home)
    yield made
    for project in made.values():
        project.pyrlab("down", "--all", timeout=300)
        engine.remove_project(project.name, f"{project.name}/")
    engine.remove_by_prefix(prefix)
    shutil.rmtree(home, ignore_errors=True)


def test_two_projects_with_the_same_image_names_never_touch_each_other(
        projects: dict[str, Project], engine: EngineCli) -> None:
    a, b = projects["a"], projects["b"]
    bare = {ref: engine.image_id(ref) for ref in ("pylab:latest", "pylab:previous",
                                                  "pyrlab-base:latest")}

    # Build: each under its own name, labelled with it; bare names are not touched.
    for project in (a, b):
        project.ok("build")
        labels = engine.labels(project.ref())
        assert labels["org.pyrlab.project"] == project.name
    first = {p.key: engine.image_id(p.ref()) for p in (a, b)}
    assert first["a"] != first["b"]
    assert not a.has(engine, "tabulate") and b.has(engine, "tabulate")
    assert {ref: engine.image_id(ref) for ref in bare} == bare
    for project in (a, b):
        env = (engine.image(project.ref()) or {}).get("Config", {})
        assert f"PYRLAB_IMAGE={project.name}/pylab" in env["Env"]  # type: ignore[index]

    # diff compares each lock with its own images: no difference, no tabulate.
    for project in (a, b):
        done = project.ok("diff")
        assert "tabulate" not in done.stdout + done.stderr, done.stdout
        project.ok("test")

    # Each runs on its own port, in its own container, with its own home folder.
    for project in (a, b):
        data = json.loads(project.ok("up", "pylab", "--json").stdout)
        assert data["container"] == f"{project.name}__pylab-{project.port}"
        assert data["port"] == project.port
        token = parse_qs(urlsplit(data["url"]).query)["token"][0]
        client = LabClient(f"http://127.0.0.1:{project.port}", token)
        client.wait_ready()
        with client.kernel("python3") as kernel:
            out = kernel.execute("import importlib.util, os\n"
                                 "print(importlib.util.find_spec('tabulate') is not None,"
                                 " os.environ['PYRLAB_IMAGE'], os.environ['HOME'])")
        assert out.ok, out.describe()
        assert out.stdout == f"{project is b} {project.name}/pylab /home/notebook\n"
        assert (project.home / "docker" / project.name).is_dir()
    every = json.loads(a.ok("ps", "--all-projects", "--json").stdout)
    assert {(lab["container"], lab["project_dir"]) for lab in every} >= {
        (f"{p.name}__pylab-{p.port}", str(p.lab.root)) for p in (a, b)}
    own = json.loads(a.ok("ps", "--json").stdout)
    assert [lab["container"] for lab in own] == [f"{a.name}__pylab-{a.port}"]
    a.ok("down", "pylab")
    assert json.loads(b.ok("ps", "--json").stdout)[0]["state"] == "running"
    b.ok("down", "pylab")

    # A second build of each (one line more), then rollback: each gets its own first back.
    for project in (a, b):
        with (project.lab.root / "requirements.txt").open("a") as out:
            out.write("tomli-w\n")
        project.ok("build")
        assert engine.image_id(project.ref("previous")) == first[project.key]
    second_b = engine.image_id(b.ref())
    a.ok("rollback", "pylab")
    assert engine.image_id(a.ref()) == first["a"]
    assert engine.image_id(b.ref()) == second_b  # a's rollback left b alone
    assert engine.image_id(b.ref("previous")) == first["b"]
    b.ok("rollback", "pylab")
    assert engine.image_id(b.ref()) == first["b"]
    assert not a.has(engine, "tabulate")
    for project in (a, b):
        done = project.ok("diff")
        assert "tabulate" not in done.stdout + done.stderr, done.stdout

    # clean in a removes a's images only: b's tags are as they were. An image under the
    # bare name of before projects had names (PREFIXpylab) is left alone and named.
    # (Such an image carries the folder's hash as its project label, not the name.)
    old = f"{a.prefix}pylab:latest"
    engine("build", "--quiet", "--tag", old, "--label",
           f"org.pyrlab.project={folder_key(a.lab.root)}", "-", input=f"FROM {a.ref()}\n")
    old_id = engine.image_id(old)
    before = b.tags(engine)
    assert before
    done = a.ok("clean")
    assert f"left alone, under bare names from before projects had names: {old}; remove " \
           f"them with `docker rmi {old}`" in done.stdout, done.stdout
    assert engine.image_id(old) == old_id
    engine("rmi", old)
    assert a.tags(engine) == {}
    assert b.tags(engine) == before
    b.ok("clean")
    assert b.tags(engine) == {}
    assert {ref: engine.image_id(ref) for ref in bare} == bare
