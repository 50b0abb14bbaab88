"""pyrlab.lock in the build for real (Docker, the small lab): a plain build keeps locked
versions, `outdated` sees newer ones, `build --locked` installs exactly the lock and refuses
a list entry it lacks or a locked version the sources no longer offer (Debian and Python),
`upgrade` moves everything to the newest and shows the change."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

import pytest
from labtools import BASE_REF, EngineCli, Lab

pytestmark = pytest.mark.integration

ENGINE = "docker"
OLD_SIX = "1.16.0"


def actions(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return {image["name"]: image["action"] for image in json.loads(done.stdout)["images"]}


def six_in(engine: EngineCli, lab: Lab) -> str:
    return engine("run", "--rm", lab.ref("pylab"), "python", "-c",
                  "import importlib.metadata as m; print(m.version('six'))").stdout.strip()


def locked_six(lab: Lab) -> str:
    text = (lab.root / "pyrlab.lock").read_text()
    section = text[text.index("[images.pylab.python]"):]
    line = next(line for line in section.splitlines() if line.startswith("six = "))
    return line.split('"')[1]


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


def test_the_lock_through_build_outdated_locked_and_upgrade(
        make_module_lab: Callable[..., Lab], engine: EngineCli) -> None:
    lab = make_module_lab("small", ENGINE)
    requirements = lab.root / "requirements.txt"
    requirements.write_text(f"six=={OLD_SIX}\npackaging\n")
    assert actions(lab.pyrlab("build", "--json"))["pylab"] == "built"
    assert locked_six(lab) == OLD_SIX

    # Loosened: the list line changed, the locked version is kept; the next build is a no-op.
    requirements.write_text("six\npackaging\n")
    assert actions(lab.pyrlab("build", "--json"))["pylab"] == "built"
    assert six_in(engine, lab) == OLD_SIX == locked_six(lab)
    assert set(actions(lab.pyrlab("build", "--json")).values()) == {"skipped"}
    old_lock = (lab.root / "pyrlab.lock").read_text()

    # outdated: six with the installed and the newest version; nothing built.
    done = lab.pyrlab("outdated", "--json", "pylab")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)["outdated"] if r["image"] == "pylab"}
    assert rows["six"]["installed"] == OLD_SIX
    newest = rows["six"]["available"]
    assert newest != OLD_SIX
    assert "packaging" not in rows  # resolved unpinned at the first build: the newest

    # --locked with an entry the lock lacks: refused, naming file, line and package.
    requirements.write_text("six\npackaging\nidna\n")
    done = lab.pyrlab("build", "--locked")
    assert done.returncode == 3
    assert "requirements.txt:3: idna: not in" in done.stderr
    requirements.write_text("six\npackaging\n")

    # upgrade: six at the newest, the change printed, the lock updated.
    done = lab.pyrlab("upgrade", "--keep-base")
    assert done.returncode == 0, done.stderr
    assert "six" in done.stdout and OLD_SIX in done.stdout and newest in done.stdout
    assert six_in(engine, lab) == newest == locked_six(lab)

    # The lock of before (a teammate's commit): --locked installs exactly it again, and a
    # plain build after that has nothing to do.
    (lab.root / "pyrlab.lock").write_text(old_lock)
    done = lab.pyrlab("build", "--locked", "--json")
    assert actions(done)["pylab"] == "built"
    assert six_in(engine, lab) == OLD_SIX
    assert set(actions(lab.pyrlab("build", "--json")).values()) == {"skipped"}
    assert locked_six(lab) == OLD_SIX

    # --locked with versions the sources no longer offer fails naming them, and no tag
    # moves: a Debian one before anything builds (apt asked in a container of the base),
    # a Python one at the install step.
    good = (lab.root / "pyrlab.lock").read_text()
    ids = {name: engine.image_id(lab.ref(name)) for name in ("pyrlab-base", "pylab")}
    logs = sorted((lab.root / ".pyrlab" / "logs").iterdir())
    gone_deb = re.sub(r'^tini = "[^ "]+ ', 'tini = "0.0.1-1 ', good, flags=re.MULTILINE)
    assert gone_deb != good
    (lab.root / "pyrlab.lock").write_text(gone_deb)
    done = lab.pyrlab("build", "--locked")
    assert done.returncode == 5, done.stderr
    assert "Debian package tini 0.0.1-1: the sources offer" in done.stderr
    assert "--locked cannot pin it" in done.stderr
    assert sorted((lab.root / ".pyrlab" / "logs").iterdir()) == logs  # nothing built
    gone_python = re.sub(r'^six = "[^"]+"', 'six = "1.99.99"', good, flags=re.MULTILINE)
    (lab.root / "pyrlab.lock").write_text(gone_python)
    done = lab.pyrlab("build", "--locked")
    assert done.returncode == 5, done.stderr
    assert "six==1.99.99" in done.stderr
    assert {name: engine.image_id(lab.ref(name)) for name in ids} == ids


def test_upgrade_bootstraps_the_base_again_and_records_it(
        make_lab: Callable[..., Lab], engine: EngineCli) -> None:
    """A lab whose base is bootstrapped ([base] bootstrap): `upgrade` makes the base again
    from the mirror, rebuilds on it and records the new base in pyrlab.lock. The session's
    base, which the lab's base started as, is left alone. A bootstrap is reproducible: from
    the same mirror state (the same Release date, the image's creation time) it is the same
    image, and only a mirror that moved on gives a new one."""
    lab = make_lab("small")
    base_ref = f"{lab.prefix}debian:trixie"
    engine("tag", BASE_REF, base_ref)
    old_id = engine.image_id(base_ref)
    config = lab.root / "pyrlab.toml"
    text = config.read_text()
    assert f'image = "{BASE_REF}"' in text
    config.write_text(text.replace(f'image = "{BASE_REF}"',
                                   f'image = "{base_ref}"\nbootstrap = "trixie"'))
    assert actions(lab.pyrlab("build", "--json"))["pylab"] == "built"

    done = lab.pyrlab("upgrade", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    new_id = engine.image_id(base_ref)
    assert data["base"]["action"] == "bootstrapped"
    assert new_id
    old_created = (engine.image(BASE_REF) or {}).get("Created")
    same_state = (engine.image(base_ref) or {}).get("Created") == old_created
    assert (new_id == old_id) == same_state, (old_id, new_id, old_created)
    assert engine.image_id(BASE_REF) == old_id  # still the session's, still there
    assert [i["name"] for i in data["images"]] == ["pyrlab-base", "pylab"]
    lock = (lab.root / "pyrlab.lock").read_text()
    assert lock.count(f'base-id = "sha256:{new_id.removeprefix("sha256:")}"') == 2
