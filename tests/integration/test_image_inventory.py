"""Inventories for real, with Docker (cases/small): after a build, pyrlab.lock lists exactly
what the containers report; `inspect` reads an image without starting a lab; adding a
package and rebuilding diffs as exactly that addition; `sbom` is valid CycloneDX; a broken
pyrlab.lock is one FILE:LINE message.

The expectations come from the containers themselves (importlib.metadata in /opt/venv,
dpkg-query), never from the collector pyrlab puts into images.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from labtools import EngineCli, Lab, installed_debs, venv_dists

from pyrlab.contents.lockfile import read_lock
from pyrlab.errors import EXIT_CONFIG, EXIT_DIFFERENT

pytestmark = pytest.mark.integration

ENGINE = "docker"
IMAGES = ("pyrlab-base", "pylab")
MANIFEST = "/opt/pyrlab/manifest.json"


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def base(bootstrapped_bases: Callable[[str], str]) -> str:
    return bootstrapped_bases(ENGINE)


@pytest.fixture(scope="module")
def lab(make_module_lab: Callable[..., Lab], engine: EngineCli, base: str) -> Lab:
    """The small lab, built once for the module."""
    lab = make_module_lab("small", ENGINE)
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lock"]["recorded"] == list(IMAGES)
    return lab


def pyrlab_ok(lab: Lab, *args: str, code: int = 0) -> str:
    """stdout of `pyrlab ARGS`, which must end with `code` (diff: 1 when it finds a change)."""
    done = lab.pyrlab(*args, "--engine", ENGINE)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def lock_versions(lab: Lab, image: str, ecosystem: str) -> dict[str, str]:
    inventory = read_lock(lab.root / "pyrlab.lock")[image]
    return {p.name: p.version for p in inventory.packages(ecosystem)}


def test_the_lock_lists_exactly_what_the_containers_report(lab: Lab, engine: EngineCli,
                                                          base: str) -> None:
    for image in IMAGES:
        ref = lab.ref(image)
        assert lock_versions(lab, image, "python") == venv_dists(engine, ref), image
        assert lock_versions(lab, image, "debian") == installed_debs(engine, ref), image
        assert lock_versions(lab, image, "r") == {}
        meta = read_lock(lab.root / "pyrlab.lock")[image].meta
        assert meta.input_hash == engine.labels(ref)["org.pyrlab.input-hash"]
        assert meta.base_id == f"sha256:{engine.image_id(base)}"
        python = engine("run", "--rm", "--entrypoint", "/opt/venv/bin/python", ref, "-c",
                        "import platform; print(platform.python_version())").stdout.strip()
        assert (meta.os_id, meta.os_version, meta.python) == ("debian", "13", python)
    # Light packages, and what they need: the lab's own list is in there.
    assert {"six", "packaging"} <= set(lock_versions(lab, "pylab", "python"))


def test_the_manifest_is_readable_by_anyone_without_a_lab(lab: Lab, engine: EngineCli) -> None:
    done = engine("run", "--rm", "--network", "none", "--user", "54321:54321", "--entrypoint",
                  "cat", lab.ref("pylab"), MANIFEST)
    assert json.loads(done.stdout)["meta"]["image"] == "pylab"


def test_inspect_reads_the_image(lab: Lab) -> None:
    data = json.loads(pyrlab_ok(lab, "inspect", "pylab", "--json"))
    assert data["ref"] == lab.ref("pylab")
    section = read_lock(lab.root / "pyrlab.lock")["pylab"]
    assert data["meta"]["input_hash"] == section.meta.input_hash
    assert {p["name"]: p["version"] for p in data["python"]} == \
        lock_versions(lab, "pylab", "python")
    assert len(data["debs"]) == len(section.packages("debian")) and data["r"] == []
    text = pyrlab_ok(lab, "inspect", "pylab")
    assert text.startswith("pylab: Debian GNU/Linux 13 (trixie), Python ")
    assert re.search(r"^Python packages \(\d+\)$", text, re.MULTILINE)


def test_adding_a_package_diffs_as_exactly_that_addition(lab: Lab, engine: EngineCli,
                                                         tmp_path: Path) -> None:
    old_lock = tmp_path / "old.lock"
    shutil.copy(lab.root / "pyrlab.lock", old_lock)
    before = venv_dists(engine, lab.ref("pylab"))
    with (lab.root / "requirements.txt").open("a") as file:
        file.write("idna\n")
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lock"]["recorded"] == ["pylab"]
    after = venv_dists(engine, lab.ref("pylab"))
    assert "idna" in after
    assert {name: after[name] for name in before} == before  # nothing else moved
    added = {name: version for name, version in after.items() if name not in before}

    data = json.loads(pyrlab_ok(lab, "diff", str(old_lock), str(lab.root / "pyrlab.lock"),
                                "--json", code=EXIT_DIFFERENT))
    diffs = {d["image"]: d for d in data["images"]}
    assert diffs["pyrlab-base"]["status"] == "unchanged"
    pylab = diffs["pylab"]
    assert pylab["status"] == "changed" and pylab["meta"] == []
    assert pylab["debs"] == [] and pylab["r"] == []
    assert {c["name"]: (c["kind"], c["old_version"], c["new_version"])
            for c in pylab["python"]} == {name: ("added", None, version)
                                          for name, version in added.items()}
    # The same through the images, and the lock now matches the images.
    by_images = json.loads(pyrlab_ok(lab, "diff", "pylab:previous", "pylab", "--json",
                                     code=EXIT_DIFFERENT))
    assert by_images["images"][0]["python"] == pylab["python"]
    now = json.loads(pyrlab_ok(lab, "diff", "--json"))
    assert {d["status"] for d in now["images"]} == {"unchanged"} and now["not_built"] == []
    text = pyrlab_ok(lab, "diff", str(old_lock), str(lab.root / "pyrlab.lock"),
                     code=EXIT_DIFFERENT)
    assert re.search(rf"^pylab: {len(added)} added$", text, re.MULTILINE)


def test_the_sbom_is_valid_cyclonedx(lab: Lab, tmp_path: Path) -> None:
    from cyclonedx.validation.json import JsonStrictValidator

    from pyrlab.contents.sbom import SCHEMA_VERSION

    out = tmp_path / "pylab.cdx.json"
    assert pyrlab_ok(lab, "sbom", "pylab", "-o", str(out)).startswith(f"wrote {out}: ")
    text = out.read_text()
    assert JsonStrictValidator(SCHEMA_VERSION).validate_str(text) is None
    purls = {c.get("purl", "") for c in json.loads(text)["components"]}
    for name, version in lock_versions(lab, "pylab", "python").items():
        assert f"pkg:pypi/{name}@{version}" in purls


def test_a_hand_broken_lock_is_one_file_and_line_error(lab: Lab, engine: EngineCli) -> None:
    lock = lab.root / "pyrlab.lock"
    lines = lock.read_text().splitlines()
    number = lines.index("[images.pylab.python]") + 2
    lines[number - 1] = lines[number - 1].replace(' = "', " = ", 1)  # an unclosed value
    lock.write_text("\n".join(lines) + "\n")
    for command in (["diff"], ["build", "--json"]):
        done = lab.pyrlab(*command)
        assert done.returncode == EXIT_CONFIG, done.stderr
        # Named from the project folder: -C changes into it first, as git's does.
        assert f"pyrlab: error: pyrlab.lock:{number}: not valid TOML" in done.stderr
        assert "Traceback" not in done.stderr
    # `pyrlab lock` is the way out its hint names: it rewrites the file from the images.
    assert "(replaced the unreadable file)" in pyrlab_ok(lab, "lock")
    assert lock_versions(lab, "pylab", "python") == venv_dists(engine, lab.ref("pylab"))
