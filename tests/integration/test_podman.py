"""The same small build on Podman: the base bootstrapped automatically by the first
`build` (`[base] bootstrap`), a no-op second build, and an edited requirements list that
really reaches the image (buildah's layer cache ignores bind-mounted files by itself)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ENGINE = "podman"
CASE = Path(__file__).parent / "cases" / "small"
EngineCli = Any  # conftest's (not importable here: tests/unit has a conftest too)
Lab = Any


def actions(done: Any) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return {i["name"]: i["action"] for i in json.loads(done.stdout)["images"]}


def imports(engine: EngineCli, ref: str, *modules: str) -> None:
    done = engine("run", "--rm", "--interactive", ref, "python", "-", *modules,
                  input=(CASE / "verify.py").read_text(), check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_podman_bootstraps_builds_skips_and_rebuilds(
        get_engine: Callable[[str], EngineCli], make_module_lab: Callable[..., Lab]) -> None:
    engine = get_engine(ENGINE)
    # A base of its own, under the lab's prefix (so it goes with the lab's images), that
    # does not exist yet: the first build makes it from the Debian mirror.
    lab = make_module_lab("small", ENGINE, BASE_IMAGE="@PREFIX@debian:trixie")
    base = lab.prefix + "debian:trixie"
    lab.sets.append("base.bootstrap=trixie")
    assert engine.image(base) is None

    first = lab.pyrlab("build", "--json")
    assert actions(first) == {"pyrlab-base": "built", "pylab": "built"}
    assert json.loads(first.stdout)["base"]["action"] == "bootstrapped"
    assert "engine: podman" in first.stderr
    assert engine.labels(base).get("org.pyrlab.bootstrap") == "trixie"
    for name in ("pyrlab-base", "pylab"):
        assert engine.image_id(lab.ref(name)) == engine.image_id(lab.ref(name, "trixie"))
    assert engine.labels(lab.ref("pylab"))["org.pyrlab.parent-id"] == \
        engine.image_id(lab.ref("pyrlab-base"))
    imports(engine, lab.ref("pylab"), "six", "packaging")

    assert actions(lab.pyrlab("build", "--json")) == {"pyrlab-base": "skipped",
                                                     "pylab": "skipped"}

    old = engine.image_id(lab.ref("pylab"))
    with (lab.root / "requirements.txt").open("a") as file:
        file.write("idna\n")
    assert actions(lab.pyrlab("build", "--json")) == {"pyrlab-base": "skipped",
                                                     "pylab": "built"}
    assert engine.image_id(lab.ref("pylab", "previous")) == old
    imports(engine, lab.ref("pylab"), "six", "packaging", "idna")
