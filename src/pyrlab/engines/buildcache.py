"""pyrlab's records in BuildKit's cache, and removing them: no other record is touched.

Standard library only, so that `.ci/fresh` and the benchmark can use it before pyrlab's
own dependencies are installed:

    python3 -m pyrlab.engines.buildcache [--mark TEXT] [--docker PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable

# BuildKit describes a record by the step that made it ("cached mount /var/cache/apt from
# exec /bin/bash -o pipefail -c /run/pyrlab/bin/apt-install"): pyrlab's all name this.
PYRLAB_STEP_MARK = "/run/pyrlab/bin/"

Records = list[dict[str, str]]


def marked_records(records: Records, mark: str = PYRLAB_STEP_MARK) -> list[str]:
    """IDs of the records a step naming `mark` made and of those built on one (a layer
    whose Parent chain reaches one). The COPY layers after pyrlab's steps are pyrlab's too,
    but BuildKit calls them only "fileop target"; left behind, they would keep their
    parents, the layers of pyrlab's steps, from being removed. An image built FROM a pyrlab
    image starts from new "from local" records, so nobody else's build descends from these."""
    parents = {r["ID"]: [p.strip() for p in r.get("Parent", "").split(",") if p.strip()]
               for r in records if r.get("ID")}
    mine = {r["ID"] for r in records if r.get("ID") and mark in r.get("Description", "")}
    grew = True
    while grew:  # add children of what is in, until no more come
        grown = {i for i, ps in parents.items() if i not in mine and mine.intersection(ps)}
        mine |= grown
        grew = bool(grown)
    return [r["ID"] for r in records if r.get("ID") in mine]


def prune(list_records: Callable[[], Records], remove: Callable[[str], object],
          mark: str = PYRLAB_STEP_MARK) -> list[str]:
    """Remove the marked records; BuildKit keeps a record that still has a child, so this
    goes round until a pass removes nothing. Returns the IDs removed."""
    removed: list[str] = []
    while True:
        mine = [i for i in marked_records(list_records(), mark) if i not in removed]
        for record_id in mine:
            remove(record_id)
        left = {r["ID"] for r in list_records()}
        gone = [record_id for record_id in mine if record_id not in left]
        if not gone:
            return removed
        removed += gone


def docker_records(docker: str) -> Records:
    done = subprocess.run([docker, "system", "df", "--verbose", "--format",
                           "{{json .BuildCache}}"], capture_output=True, text=True, check=True)
    data = json.loads(done.stdout or "null") or []
    return [{k: str(v) for k, v in record.items()} for record in data]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="remove pyrlab's BuildKit cache records")
    parser.add_argument("--mark", default=PYRLAB_STEP_MARK,
                        help="the text a step's description names (default: pyrlab's)")
    parser.add_argument("--docker", default="docker")
    args = parser.parse_args(argv)

    def remove(record_id: str) -> None:
        subprocess.run([args.docker, "builder", "prune", "--force", "--all", "--filter",
                        f"id={record_id}"], capture_output=True, check=False)

    removed = prune(lambda: docker_records(args.docker), remove, args.mark)
    left = marked_records(docker_records(args.docker), args.mark)
    print(f"removed {len(removed)} build cache records"
          + (f"; {len(left)} still in use" if left else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
