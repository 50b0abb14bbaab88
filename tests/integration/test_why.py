"""`pyrlab why` on a real image: the small lab (cases/small) with `requests` added to
pylab's list and `idna` listed in pyrlab-base's, so that idna is both listed (by an
ancestor) and pulled in (by requests), and urllib3 only pulled in.

The bounds expected come from the image itself (requests' own Requires-Dist, read with
importlib.metadata in a container), never from pyrlab's reading of it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from labtools import EngineCli, Lab
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pyrlab.errors import EXIT_CONFIG, EXIT_NOT_BUILT

pytestmark = pytest.mark.integration

ENGINE = "docker"


@dataclass
class WhyLab:
    lab: Lab
    before_build: subprocess.CompletedProcess[str]  # `why` before anything was built

    def why(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.lab.pyrlab("why", *args, "--engine", ENGINE)
        assert "Traceback" not in done.stderr, done.stderr
        return done


@pytest.fixture(scope="module")
def why_lab(make_module_lab: Callable[..., Lab], get_engine: Callable[[str], EngineCli],
            bootstrapped_bases: Callable[[str], str]) -> WhyLab:
    get_engine(ENGINE)
    bootstrapped_bases(ENGINE)
    lab = make_module_lab("small", ENGINE, name="why")
    config = lab.root / "pyrlab.toml"
    config.write_text(config.read_text().replace(
        "[images.pyrlab-base]\n", '[images.pyrlab-base]\nrequirements = ["base.txt"]\n'))
    (lab.root / "base.txt").write_text("idna\n")
    (lab.root / "requirements.txt").write_text("six\npackaging\nrequests\n")
    made = WhyLab(lab, subprocess.CompletedProcess([], 0))
    made.before_build = made.why("idna", "--image", "pylab")
    done = lab.pyrlab("build")
    assert done.returncode == 0, done.stderr
    return made


def requires_of(engine: EngineCli, ref: str, dist: str, target: str) -> Requirement:
    """`dist`'s Requires-Dist line naming `target`, as the image's metadata has it."""
    done = engine("run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python",
                  ref, "-c", f"import importlib.metadata as m; print('\\n'.join("
                  f"m.requires({dist!r})))")
    for line in done.stdout.splitlines():
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == target and requirement.marker is None:
            return requirement
    raise AssertionError(f"{dist} in {ref} does not require {target}: {done.stdout}")


def test_an_image_not_built_is_named_with_the_build_command(why_lab: WhyLab) -> None:
    done = why_lab.before_build
    assert done.returncode == EXIT_NOT_BUILT, done.stderr
    assert "is not built" in done.stderr and "pyrlab build pylab" in done.stderr


def test_a_dependency_shows_the_line_the_chain_and_the_real_bound(
        why_lab: WhyLab, get_engine: Callable[[str], EngineCli]) -> None:
    lab = why_lab.lab
    bound = requires_of(get_engine(ENGINE), lab.ref("pylab"), "requests", "urllib3")
    done = why_lab.why("urllib3", "--image", "pylab")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    versions = {d["name"]: d["version"] for d in json.loads(
        why_lab.why("requests", "--image", "pylab", "--json").stdout)["images"][0]["pulls"][0][
            "chain"]}
    assert f"requirements.txt:3  requests {versions['requests']} → urllib3 " in text, text
    assert f"requests {versions['requests']}" in text
    assert f"requires urllib3{bound.specifier}" in text, text
    assert "(listed)" not in text and "NOT met" not in text


def test_a_package_listed_by_an_ancestor_and_pulled_in_shows_both(why_lab: WhyLab) -> None:
    done = why_lab.why("IDNA", "--image", "pylab", "--json")
    assert done.returncode == 0, done.stderr
    [answer] = json.loads(done.stdout)["images"]
    pulls = {p["where"]: [step["name"] for step in p["chain"]] for p in answer["pulls"]}
    assert pulls == {"base.txt:1": ["idna"], "requirements.txt:3": ["requests", "idna"]}
    by = [b["by"] for b in answer["bounds"]]
    assert by[0] == "base.txt:1" and any(b.startswith("requests ") for b in by), by
    assert answer["lock"]["requirement"] == f"idna=={answer['version']}"
    assert answer["lock"]["satisfied"]


def test_without_image_every_built_image_that_holds_it_answers(why_lab: WhyLab) -> None:
    idna = why_lab.why("idna")
    assert idna.returncode == 0, idna.stderr
    assert "idna " in idna.stdout and " in pyrlab-base (" in idna.stdout
    assert " in pylab (" in idna.stdout
    requests = why_lab.why("requests")
    assert requests.returncode == 0, requests.stderr
    assert "not in: pyrlab-base" in requests.stdout
    assert "requirements.txt:3  requests (listed)" in requests.stdout


def test_a_package_not_installed_is_an_error_with_close_names(why_lab: WhyLab) -> None:
    done = why_lab.why("reqests", "--image", "pylab")
    assert done.returncode == EXIT_CONFIG
    assert "reqests is not installed in" in done.stderr
    assert "did you mean requests" in done.stderr
    assert done.stdout == ""

