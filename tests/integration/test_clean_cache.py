"""`pyrlab clean --cache` with Docker, for real: after a build of the small lab
(cases/small), BuildKit holds pyrlab's records (its download caches, the cache mounts of
its steps, and the layers those steps made) beside a record of someone else's, made here
by a plain `docker buildx build` with a cache mount of its own. `clean --cache` must remove
pyrlab's and leave the other one alone; BuildKit's own listing (`docker buildx du
--verbose`) is the judge.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from labtools import EngineCli, Lab, engine_unavailable

pytestmark = pytest.mark.integration

ENGINE = "docker"
PYRLAB_STEP = "/run/pyrlab/bin/"  # every RUN step pyrlab renders runs one of its scripts


@dataclass(frozen=True)
class Record:
    id: str
    type: str  # "regular" (a layer), "exec.cachemount", "source.local"…
    description: str  # e.g. "cached mount /var/cache/apt from exec … apt-install"
    in_use: bool
    usage_count: int

    @property
    def pyrlab(self) -> bool:
        return PYRLAB_STEP in self.description


def cache_records(docker: EngineCli) -> list[Record]:
    """BuildKit's cache records as `docker buildx du --verbose` lists them (blocks of
    `Key:<tabs>value` lines, one block per record)."""
    records = []
    for block in docker("buildx", "du", "--verbose").stdout.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if fields.get("ID"):
            records.append(Record(fields["ID"], fields.get("Type", ""),
                                  fields.get("Description", ""),
                                  fields.get("Reclaimable") == "false",
                                  int(fields.get("Usage count") or 0)))
    return records


@pytest.fixture(scope="module")
def docker(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    engine = get_engine(ENGINE)
    if engine("buildx", "version", check=False).returncode != 0:
        engine_unavailable(f"{engine.binary} has no buildx plugin (needed for `buildx du`)")
    return engine


@pytest.fixture(scope="module")
def built(docker: EngineCli, make_module_lab: Callable[..., Lab]) -> Lab:
    lab = make_module_lab("small", ENGINE)
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    return lab


@pytest.fixture(scope="module")
def theirs(docker: EngineCli, bootstrapped_bases: Callable[[str], str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Record]]:
    """The cache records of a build that is not pyrlab's: a tiny Dockerfile on the session's
    base with a cache mount (id not-pyrlab-…). Even without --load, buildx's docker driver
    puts the result into Docker's images, untagged (it carries the base's labels): at the
    end that image goes, by the ID the build wrote, and the records, by theirs."""
    mark = secrets.token_hex(4)
    context = tmp_path_factory.mktemp("not-pyrlab")
    (context / "Dockerfile").write_text(
        f"FROM {bootstrapped_bases(ENGINE)}\n"
        f"RUN --mount=type=cache,id=not-pyrlab-{mark},target=/cache-{mark} "
        f"touch /cache-{mark}/kept\n")
    iidfile = context.parent / f"{context.name}.iid"
    done = docker("buildx", "build", "--progress=plain", "--iidfile", str(iidfile),
                  str(context), check=False)
    image_id = iidfile.read_text().strip() if iidfile.exists() else ""
    try:
        assert done.returncode == 0, done.stderr
        yield [r for r in cache_records(docker) if f"/cache-{mark}" in r.description]
    finally:
        if image_id and docker.image(image_id) is not None:
            docker("rmi", image_id, check=False)
        for record in cache_records(docker):
            if f"/cache-{mark}" in record.description:
                docker("builder", "prune", "--force", "--all", "--filter",
                       f"id={record.id}", check=False)
        shutil.rmtree(context, ignore_errors=True)
        iidfile.unlink(missing_ok=True)


def test_clean_cache_removes_pyrlabs_records_and_keeps_others(
        built: Lab, theirs: list[Record], docker: EngineCli) -> None:
    # Before: pyrlab's download caches and layers, and theirs (a cache mount and a layer).
    before = {r.id: r for r in cache_records(docker)}
    pyrlabs = [r for r in before.values() if r.pyrlab]
    assert {r.type for r in pyrlabs} >= {"exec.cachemount", "regular"}, pyrlabs
    assert sorted(r.type for r in theirs) == ["exec.cachemount", "regular"], theirs
    their_ids = {r.id for r in theirs}

    # A dry run lists what would go, theirs not among it, and removes nothing.
    done = built.pyrlab("clean", "--cache", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    dry = json.loads(done.stdout)
    assert dry["dry_run"] is True and built.ref("pylab") in dry["removed"]
    assert dry["cache_removed"] and not set(dry["cache_removed"]) & their_ids
    assert set(dry["cache_removed"]) <= {r.id for r in cache_records(docker)}
    assert docker.image(built.ref("pylab")) is not None

    done = built.pyrlab("clean", "--cache", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["cache_pruned"] is True
    assert built.ref("pylab") in data["removed"]  # the images go as with a plain clean
    assert data["removed"] == dry["removed"]  # what the dry run listed

    after = {r.id: r for r in cache_records(docker)}
    assert their_ids <= set(after), "clean --cache removed a record that is not pyrlab's"
    removed = set(data["cache_removed"])
    assert removed, "clean --cache removed no cache record"
    assert not removed & their_ids
    assert not removed & set(after), "reported as removed but still there"
    # Every pyrlab record there was is gone, except one that another pyrlab build on this
    # machine used meanwhile (BuildKit never removes a record in use; a used one counts up).
    left = [r for r in pyrlabs if r.id in after and not after[r.id].in_use
            and after[r.id].usage_count == r.usage_count]
    assert left == [], "clean --cache left pyrlab records:\n" + "\n".join(map(str, left))
