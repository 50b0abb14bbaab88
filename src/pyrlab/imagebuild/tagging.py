"""Moving tags after a successful build, keeping the replaced image as NAME:previous.

Images are built by ID with no tag, so a failed build changes no tag. Only then:
`previous` moves to the image `latest` pointed to, and `latest` (plus the base tag) move
to the new image. The image `previous` pointed to before is removed when nothing else
names or uses it, so rebuilding does not pile up untagged images.

The moves are one uninterruptible step (proc.uninterruptible): an interrupt before it
moves nothing, one during it waits for its end. `latest` moves last, so even pyrlab killed
in the middle leaves `latest` on an image that passed its build (old or new) and the next
build, seeing `latest` not on its inputs, makes the same move again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyrlab import proc
from pyrlab.engines.base import Engine


@dataclass(frozen=True)
class Promotion:
    tags: tuple[str, ...]  # now on the new image
    previous: str | None  # the ID now tagged NAME:previous, when it changed
    removed: str | None  # the ID of the image that lost NAME:previous and was removed


def promote(engine: Engine, new_id: str, refs: tuple[str, ...], previous_ref: str) -> Promotion:
    """Point `refs` (first: NAME:latest) at `new_id`; the old `latest` becomes `previous`."""
    latest = refs[0]
    proc.check_interrupted()
    with proc.uninterruptible():
        old = engine.image(latest)
        displaced = engine.image(previous_ref)
        moved_previous = None
        if old is not None and old.id != new_id:
            engine.tag(old.id, previous_ref)
            moved_previous = old.id
        for ref in (*refs[1:], latest):
            engine.tag(new_id, ref)
        removed = None
        if (moved_previous and displaced is not None
                and displaced.id not in (old.id if old else "", new_id)):
            after = engine.image(displaced.id)
            # Untagged now and not used by a container or a child image: nobody can reach it.
            if after is not None and not after.tags and engine.remove_image(displaced.id) is None:
                removed = displaced.id
    return Promotion(tags=refs, previous=moved_previous, removed=removed)
