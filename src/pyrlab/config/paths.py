"""Where pyrlab keeps its own files inside a project folder, named in one place."""

from __future__ import annotations

from pathlib import Path

# pyrlab's own files in a project folder: the build lock, build logs and contexts, rendered
# contexts, lab tokens (those may go elsewhere: launch/state.py's PYRLAB_STATE_DIR).
WORK_DIR = ".pyrlab"


def work_dir(root: Path) -> Path:
    """The project's folder for pyrlab's own files (see WORK_DIR)."""
    return root / WORK_DIR
