"""Resolution against a local index with fixed metadata (localindex.py), for real: the
image gets what uv picks for the list as written (pyrlab's copy keeps every line and its
order), and a listed package held back by another's upper bound is named, with that
bound, by the build and by `pyrlab outdated`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from labtools import EngineCli, Lab, venv_dists
from localindex import Dist, LocalIndex, local_index

from pyrlab.config.project import load_project
from pyrlab.dockerfile.render import render_context
from pyrlab.ecosystems.python import UV_VERSION

pytestmark = pytest.mark.integration

ENGINE = "docker"
DISTS = (
    # Order-sensitive: each one's 2.0 excludes the other's 2.0, so uv's pick depends on
    # which of the two it meets first.
    Dist("orda", "1.0"), Dist("orda", "2.0", requires=("ordb<2",)),
    Dist("ordb", "1.0"), Dist("ordb", "2.0", requires=("orda<2",)),
    # heldx 2.0 is out, but holdy (every version) wants heldx<2.
    Dist("heldx", "1.0", uploaded="2023-01-01T00:00:00Z"),
    Dist("heldx", "2.0", uploaded="2025-01-01T00:00:00Z"),
    Dist("holdy", "1.0", requires=("heldx<2",)),
)
# `ordb[x]` then `ordb`: lines pyrlab used to merge into one.
LIST = "ordb[x]\norda\nordb\nheldx\nholdy\n"
LISTED = ("orda", "ordb", "heldx", "holdy")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    with local_index(DISTS, tmp_path_factory.mktemp("index")) as served:
        yield served


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


@pytest.fixture(scope="module")
def built(make_module_lab: Callable[..., Lab], engine: EngineCli,
          index: LocalIndex) -> tuple[Lab, str]:
    lab = make_module_lab("resolve", ENGINE, PROXY=f"pip_index = {json.dumps(index.url)}")
    (lab.root / "requirements.txt").write_text(LIST)
    done = lab.pyrlab("build", "--no-test")
    assert done.returncode == 0, done.stderr
    return lab, done.stderr + done.stdout


def raw_resolution(engine: EngineCli, lab: Lab, index: LocalIndex) -> dict[str, str]:
    """uv (the builds' version) on the list file as the user wrote it, for the image's own
    interpreter, in a throwaway container of the image."""
    script = ("set -e; /opt/venv/bin/python -m pip install -q --disable-pip-version-check "
              f'--target /tmp/uv -i "$1" uv=={UV_VERSION}; /tmp/uv/bin/uv pip compile -q '
              '--no-header --no-annotate --python /opt/venv/bin/python -i "$1" '
              "/raw/requirements.txt")
    done = engine("run", "--rm", "--network", "host", "--user", "0:0", "-v",
                  f"{lab.root}:/raw:ro", "--entrypoint", "bash", lab.ref("pylab"), "-c",
                  script, "resolve", index.url)
    return dict(line.split("==", 1) for line in done.stdout.split())


def test_the_image_holds_what_uv_picks_for_the_list_as_written(
        built: tuple[Lab, str], engine: EngineCli, index: LocalIndex) -> None:
    lab, _ = built
    context = render_context(load_project(lab.root, environ={}), "pylab")
    assert context.files["pyrlab/python/requirements.txt"][0].decode() == LIST  # line for line
    raw = raw_resolution(engine, lab, index)
    image = venv_dists(engine, lab.ref("pylab"))
    assert {n: image[n] for n in LISTED} == {n: raw[n] for n in LISTED}
    # uv meets ordb first: ordb 2.0 and so orda 1.0 (the other order gives the reverse).
    assert (image["ordb"], image["orda"]) == ("2.0", "1.0")


HELD_BY_BOUND = ("held back: heldx 1.0, newest 2.0 (major version 2 is out); held by "
                 "all versions of holdy depend on heldx<2")
LOWERS = ("held back: orda 1.0, newest 2.0 (major version 2 is out); the "
          "resolution with it lowers other listed packages: ordb 2.0 -> 1.0")


def test_the_build_names_a_package_held_back_by_another_s_bound(
        built: tuple[Lab, str]) -> None:
    _, output = built
    assert f"pylab: {HELD_BY_BOUND}" in output
    assert f"pylab: {LOWERS}" in output


def test_outdated_names_it_with_the_same_bound(built: tuple[Lab, str]) -> None:
    lab, _ = built
    done = lab.pyrlab("outdated", "--json", "pylab")
    assert done.returncode == 0, done.stderr
    held = {h["name"]: h for h in json.loads(done.stdout)["held_back"]}
    assert held["heldx"]["holder"] == "all versions of holdy depend on heldx<2"
    assert (held["heldx"]["resolved"], held["heldx"]["newest"]) == ("1.0", "2.0")
    assert "ordb 2.0 -> 1.0" in held["orda"]["holder"]
    text = lab.pyrlab("outdated", "pylab")
    assert f"pylab: {HELD_BY_BOUND}" in text.stdout
