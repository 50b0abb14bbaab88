"""The same base on every machine, for real: `pyrlab bootstrap` of one suite from one mirror
state makes the same image, with the same ID, every time. Bootstrap, remove the image,
bootstrap again: same ID. Debian 12 (bookworm), not the session's trixie base: an image
that shares the session base's ID could not be removed.

The mirror may publish a new state between the two bootstraps (it does a few times a day):
then the Release file's date, which is the image's `created` time, differs, and so may the
packages. The test then bootstraps a third time and compares the last two.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from labtools import EngineCli, run_pyrlab

pytestmark = pytest.mark.integration

SUITE = "bookworm"


@pytest.fixture
def ref(engine: EngineCli, lab_prefix: str) -> Iterator[str]:
    name = f"{lab_prefix}debian:{SUITE}"
    yield name
    if engine.image(name) is not None:
        engine("rmi", name, check=False)


def bootstrap(engine: EngineCli, ref: str) -> tuple[str, str, float]:
    """(image ID, created, seconds) of a fresh `pyrlab bootstrap` into ref."""
    assert engine.image(ref) is None
    done = run_pyrlab("bootstrap", "--engine", engine.name, "--suite", SUITE, "--tag", ref,
                      "--json", timeout=900)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    inspect = json.loads(engine("image", "inspect", ref).stdout)[0]
    assert data["id"].removeprefix("sha256:") == inspect["Id"].removeprefix("sha256:")
    return data["id"], inspect["Created"], data["seconds"]


def contents(engine: EngineCli, ref: str) -> set[str]:
    """"CHECKSUM PATH" of every file in the image, for saying what differs (not the files
    the engine mounts into a container)."""
    listing = engine("run", "--rm", "--network", "none", ref, "find", "/", "-xdev", "-type", "f",
                     "-exec", "md5sum", "{}", "+").stdout
    mounted = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")
    return {line for line in listing.splitlines() if not line.endswith(mounted)}


def remove(engine: EngineCli, ref: str, image_id: str) -> None:
    engine("rmi", ref)
    assert engine.image(image_id) is None, "the bootstrapped image is still there"


def test_bootstrap_remove_bootstrap_gives_the_same_image(engine: EngineCli, ref: str) -> None:
    first, created, seconds = bootstrap(engine, ref)
    # Made at the Release file's date, not now: nothing in it says when or where it was made.
    inspect = json.loads(engine("image", "inspect", ref).stdout)[0]
    assert inspect["Config"]["Labels"]["org.pyrlab.bootstrap"] == SUITE
    files = engine("run", "--rm", "--network", "none", ref, "find", "/var/log",
                   "/var/lib/apt/lists", "/var/cache/apt", "/var/cache/ldconfig", "-type",
                   "f").stdout.split()
    assert files == [], files
    files = contents(engine, ref)
    remove(engine, ref, first)
    second, created_again, seconds_again = bootstrap(engine, ref)
    if created_again != created:  # the mirror moved on in between: once more
        files = contents(engine, ref)
        remove(engine, ref, second)
        first, created = second, created_again
        second, created_again, seconds_again = bootstrap(engine, ref)
    assert created_again == created
    differ = sorted(files ^ contents(engine, ref))
    assert second == first, f"two images from one mirror state; files that differ: {differ}"
    print(f"bootstrap of {SUITE}: {seconds:.0f}s, then {seconds_again:.0f}s")
