"""Writing a rendered build context to disk, reproducibly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pyrlab.dockerfile.render import BuildContext
from pyrlab.errors import ConfigError, Problem

# Fixed mtime (2000-01-01) so that nothing about a context depends on when it was written.
FIXED_MTIME = 946684800


def write_context(context: BuildContext, folder: Path) -> Path:
    """Replace `folder` with exactly the context's files (fixed modes and mtimes)."""
    try:
        if folder.exists():
            shutil.rmtree(folder)
        for rel, (content, mode) in context.files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            os.chmod(path, mode)
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        for directory in sorted({p for p in folder.rglob("*") if p.is_dir()} | {folder},
                                reverse=True):
            os.utime(directory, (FIXED_MTIME, FIXED_MTIME))
    except OSError as exc:
        raise ConfigError(Problem(str(exc.filename or folder), f"cannot write: {exc.strerror}")) \
            from None
    return folder
