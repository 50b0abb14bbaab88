"""Writing a rendered build context to disk, reproducibly."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
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
    """Replace `folder` with exactly the context's files (fixed modes, content mtimes).
    `folder` is pyrlab's: a fresh build folder, or one in a folder render claimed
    (safewrite.claim_folder), so what is in it may go."""
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


@contextlib.contextmanager
def secret_folder(secrets: Mapping[str, bytes]) -> Iterator[Path]:
    """The build secrets (see network.build_secrets) as files NAME in a fresh folder of the
    system's temporary directory, outside any build context (0700, files 0600), removed
    when the block ends however it ends."""
    folder = Path(tempfile.mkdtemp(prefix="pyrlab-secrets-"))
    try:
        for name, content in secrets.items():
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(content)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
