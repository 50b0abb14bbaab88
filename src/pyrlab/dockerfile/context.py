"""Writing a rendered build context to disk, reproducibly."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from pyrlab.dockerfile.render import BuildContext
from pyrlab.errors import ConfigError, Problem

# Folders get a fixed mtime (2000-01-01). Files get that plus a number derived from their
# content: reproducible, yet different whenever the content differs. A single fixed mtime
# is not enough: BuildKit's context transfer treats a file with the same path, size and
# mtime as unchanged and silently builds from the stale copy it synced before.
FIXED_MTIME = 946684800
CONTENT_SPAN = 10**8  # about three years of seconds


def content_mtime(content: bytes) -> int:
    return FIXED_MTIME + int.from_bytes(hashlib.sha256(content).digest()[:8], "big") % CONTENT_SPAN


def write_context(context: BuildContext, folder: Path) -> Path:
    """Replace `folder` with exactly the context's files (fixed modes, content mtimes)."""
    try:
        if folder.exists():
            shutil.rmtree(folder)
        for rel, (content, mode) in context.files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            os.chmod(path, mode)
            mtime = content_mtime(content)
            os.utime(path, (mtime, mtime))
        for directory in sorted({p for p in folder.rglob("*") if p.is_dir()} | {folder},
                                reverse=True):
            os.chmod(directory, 0o755)
            os.utime(directory, (FIXED_MTIME, FIXED_MTIME))
    except OSError as exc:
        raise ConfigError(Problem(str(exc.filename or folder), f"cannot write: {exc.strerror}")) \
            from None
    return folder
