"""`pyrlab build` with Docker, for real: a small lab (cases/small) on a Debian base made by
`pyrlab bootstrap`, built once for the module and then rebuilt, edited, broken and cleaned.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from labtools import EngineCli, Lab, project_key

pytestmark = pytest.mark.integration

ENGINE = "docker"
CASE = Path(__file__).parent / "cases" / "small"




def verify(engine: EngineCli, ref: str, *modules: str) -> str:
    """cases/small/verify.py inside ref: every module imports from the lab's venv."""
    done = engine("run", "--rm", "--interactive", ref, "python", "-", *modules,
                  input=(CASE / "verify.py").read_text(), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def by_name(result: str) -> dict[str, dict[str, object]]:
    return {image["name"]: image for image in json.loads(result)["images"]}


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def base(bootstrapped_bases: Callable[[str], str]) -> str:
    return bootstrapped_bases(ENGINE)


@dataclass
class Built:
    lab: Lab
    first: subprocess.CompletedProcess[str]  # the first `pyrlab build --json`


@pytest.fixture(scope="module")
def built(make_module_lab: Callable[..., Lab], engine: EngineCli, base: str) -> Built:
    """The small lab, built once: every later test starts from a built lab."""
    lab = make_module_lab("small", ENGINE)
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    return Built(lab, done)


@pytest.fixture
def lab(built: Built) -> Lab:
    return built.lab


def test_the_bootstrapped_base_is_a_small_debian(engine: EngineCli, base: str) -> None:
    labels = engine.labels(base)
    assert labels.get("org.pyrlab.bootstrap") == "trixie"
    done = engine("run", "--rm", base, "cat", "/etc/os-release")
    assert 'VERSION_CODENAME=trixie' in done.stdout
    # No package lists left behind: only apt's own lock file and partial/ folder may be there.
    listed = engine("run", "--rm", base, "ls", "-A", "/var/lib/apt/lists").stdout.split()
    assert set(listed) <= {"lock", "partial", "auxfiles"}, listed


def test_first_build_makes_tagged_labelled_images(built: Built, engine: EngineCli,
                                                  base: str) -> None:
    lab, first = built.lab, built.first
    images = by_name(first.stdout)
    assert [(n, i["action"]) for n, i in images.items()] == [("pyrlab-base", "built"),
                                                             ("pylab", "built")]
    assert "engine: docker with" in first.stderr
    for name in ("pyrlab-base", "pylab"):
        latest = engine.image_id(lab.ref(name))
        assert latest and engine.image_id(lab.ref(name, "trixie")) == latest
        assert engine.image(lab.ref(name, "previous")) is None
    base_labels = engine.labels(lab.ref("pyrlab-base"))
    pylab_labels = engine.labels(lab.ref("pylab"))
    assert base_labels["org.pyrlab.parent-id"] == engine.image_id(base)
    assert pylab_labels["org.pyrlab.parent-id"] == engine.image_id(lab.ref("pyrlab-base"))
    assert re.fullmatch(r"[0-9a-f]{64}", pylab_labels["org.pyrlab.input-hash"])
    assert pylab_labels["org.pyrlab.image"] == "pylab"
    assert pylab_labels["org.pyrlab.project"] == base_labels["org.pyrlab.project"]
    assert Path(str(images["pylab"]["log"])).is_file()
    out = verify(engine, lab.ref("pylab"), "six", "packaging")
    assert "/opt/venv/lib/" in out


def test_second_build_skips_everything(lab: Lab, engine: EngineCli) -> None:
    ids = {name: engine.image_id(lab.ref(name)) for name in ("pyrlab-base", "pylab")}
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    assert {name: i["action"] for name, i in by_name(done.stdout).items()} == {
        "pyrlab-base": "skipped", "pylab": "skipped"}
    assert {name: engine.image_id(lab.ref(name)) for name in ids} == ids


def test_editing_requirements_rebuilds_only_pylab(lab: Lab, engine: EngineCli) -> None:
    base_id = engine.image_id(lab.ref("pyrlab-base"))
    old_pylab = engine.image_id(lab.ref("pylab"))
    with (lab.root / "requirements.txt").open("a") as file:
        file.write("idna\n")
    plan = lab.pyrlab("build", "--dry-run")
    # Only a line was added: a delta, a layer on the image it replaces.
    assert re.search(r"^pylab\s+build\s+changed: Python packages \(1 added: a layer on "
                     rf"{old_pylab[:12]}\)$", plan.stdout, re.MULTILINE), plan.stdout
    assert re.search(r"^pyrlab-base\s+skip\s+up to date", plan.stdout, re.MULTILINE)
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    images = by_name(done.stdout)
    assert (images["pyrlab-base"]["action"], images["pylab"]["action"]) == ("skipped", "built")
    assert engine.image_id(lab.ref("pyrlab-base")) == base_id
    new_pylab = engine.image_id(lab.ref("pylab"))
    assert new_pylab != old_pylab
    assert engine.image_id(lab.ref("pylab", "previous")) == old_pylab
    assert engine.image_id(lab.ref("pylab", "trixie")) == new_pylab
    verify(engine, lab.ref("pylab"), "six", "packaging", "idna")


def test_an_edit_that_keeps_the_file_size_is_seen(lab: Lab, engine: EngineCli) -> None:
    """Rendered contexts have fixed mtimes; an edit of the same size must still reach the
    engine (BuildKit re-sends only files whose size or mtime changed)."""
    requirements = lab.root / "requirements.txt"
    requirements.write_text("six\npackaging\nidna\n")
    assert lab.pyrlab("build", "pylab").returncode == 0
    requirements.write_text("six\npackaging\ntoml\n")
    done = lab.pyrlab("build", "pylab", "--json")
    assert done.returncode == 0, done.stderr
    assert by_name(done.stdout)["pylab"]["action"] == "built"
    verify(engine, lab.ref("pylab"), "toml")


def test_a_broken_requirement_fails_clearly_and_moves_no_tag(lab: Lab,
                                                            engine: EngineCli) -> None:
    requirements = lab.root / "requirements.txt"
    original = requirements.read_text()
    tags = {tag: engine.image_id(lab.ref("pylab", tag)) for tag in ("latest", "previous",
                                                                       "trixie")}
    requirements.write_text(original + "pyrlab-test-no-such-package==0.0.1\n")
    try:
        done = lab.pyrlab("build")
    finally:
        requirements.write_text(original)
    assert done.returncode == 5, done.stderr
    err = done.stderr
    assert re.search(r"^pylab: FAILED at \[2/\d\] RUN uv-install; its last lines:$", err,
                     re.MULTILINE), err
    assert "pyrlab-test-no-such-package" in err  # uv's own words, in the shown tail
    assert re.search(r"pyrlab: error: building pylab failed at \[2/\d\] RUN uv-install", err)
    assert "no tag was changed" in err
    assert "Traceback" not in err
    log = re.search(r"full log: (\S+)", err)
    assert log and "pyrlab-test-no-such-package" in Path(log.group(1)).read_text()
    assert {tag: engine.image_id(lab.ref("pylab", tag)) for tag in tags} == tags


def test_without_the_host_cas_pypi_is_unreachable(make_lab: Callable[..., Lab],
                                                   host_ca_files: list[Path],
                                                   engine: EngineCli, base: str) -> None:
    """Where TLS to PyPI goes through an intercepting proxy (the host trusts its CA through
    /usr/local/share/ca-certificates), a lab without [base] ca_certificates cannot install
    from PyPI; the module's lab, which lists them, could (test_first_build_…)."""
    if not host_ca_files:
        pytest.skip("the host has no extra CA certificates: nothing intercepts TLS here")
    lab = make_lab("small", name="no-ca", CA_FILES="[]")
    done = lab.pyrlab("build")
    assert done.returncode == 5, done.stderr
    assert re.search(r"^pylab: FAILED at \[\d+/\d+\] RUN uv-install", done.stderr,
                     re.MULTILINE), done.stderr
    log = re.search(r"full log: (\S+)", done.stderr)
    assert log is not None
    # pip (fetching uv) and uv (six) say it in their own words.
    assert re.search(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|invalid peer certificate",
                     Path(log.group(1)).read_text())
    assert engine.image(lab.ref("pylab")) is None


def test_clean_removes_the_project_images_and_nothing_else(lab: Lab, engine: EngineCli,
                                                            base: str) -> None:
    assert engine.refs(lab.prefix)
    done = lab.pyrlab("clean", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert lab.ref("pylab") in data["removed"] and lab.ref("pyrlab-base") in data["removed"]
    assert engine.refs(lab.prefix) == []
    assert engine.image(base) is not None  # the base image is shared: kept
    left = engine("images", "--all", "--quiet", "--filter",
                  f"label=org.pyrlab.project={project_key(lab.root)}")
    assert left.stdout.split() == []  # the replaced pylab (was :previous) went too
