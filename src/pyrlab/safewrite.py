"""Writing files without losing any of the user's.

The rule, for every command that writes files (render, init, export, sbom, lock, build's
lock update):

- A folder of outputs is written only when it is new, empty, or one pyrlab made: pyrlab
  leaves MARKER in it, and only then may it replace what is inside. Any other folder is
  refused, naming what it holds.
- A single file is written only when it is new or pyrlab wrote it (its header says so, see
  has_pyrlab_header); any other file is replaced only when the user asks (--force).

Files are written through a temporary file and a rename: a reader (or a crash) sees the
old file or the new one, never half of either.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from pyrlab.errors import ConfigError, Problem

MARKER = ".pyrlab-output"
MARKER_TEXT = (
    "pyrlab made this folder ({by}) and may replace anything in it.\n"
    "Delete this file to keep pyrlab from writing here again.\n"
)
SHOWN_ENTRIES = 3  # entries a refusal names before "and N more"
HEADER_LINES = 20  # how far into a file its header comment is looked for
# What os.link raises on a file system without hard links (then: a plain rename).
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV)


def claim_folder(folder: Path, *, by: str, writes: Iterable[str] = (),
                 owned: bool = False) -> None:
    """Make `folder` pyrlab's to write in, or refuse: create it when missing, take it when
    it is empty, holds MARKER, or is `owned` (a place of pyrlab's own, such as
    .pyrlab/contexts); then leave MARKER, naming `by` (the command). `writes` are the
    entries the caller will replace, named first when the folder is refused."""
    try:
        if folder.exists() and not folder.is_dir():  # a link to a folder is that folder
            raise ConfigError(Problem(str(folder), "is not a folder"),
                              hint="-o takes a folder: name a new or empty one")
        if folder.is_dir() and not owned and not (folder / MARKER).is_file():
            entries = sorted(p.name for p in folder.iterdir())
            if entries:
                raise _refusal(folder, entries, writes)
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / MARKER
        text = MARKER_TEXT.format(by=by)
        if not marker.is_file() or marker.read_text(encoding="utf-8", errors="replace") != text:
            write_file(marker, text, force=True)
    except OSError as exc:
        raise ConfigError(Problem(str(exc.filename or folder), f"cannot write: {exc.strerror}")) \
            from None


def _refusal(folder: Path, entries: list[str], writes: Iterable[str]) -> ConfigError:
    # Name first what would be lost: the user's files in what the command replaces.
    at_risk = [str(path.relative_to(folder)) for name in writes
               for path in sorted(_files_under(folder / name))]
    named = at_risk + [e for e in entries if not any(r == e or r.startswith(f"{e}/")
                                                      for r in at_risk)]
    shown = ", ".join(named[:SHOWN_ENTRIES])
    if len(named) > SHOWN_ENTRIES:
        shown += f" and {len(named) - SHOWN_ENTRIES} more"
    return ConfigError(
        Problem(str(folder), f"holds files pyrlab did not make ({shown}); pyrlab writes only "
                f"into a new or empty folder, or one it made (with a {MARKER} file)"),
        hint="name a new or empty folder with -o; nothing was written")


def _files_under(path: Path) -> list[Path]:
    if path.is_symlink() or path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_symlink() or not p.is_dir()]
    return []


def check_new(paths: Iterable[Path], *, force: bool, hint: str) -> None:
    """Refuse, naming every one of `paths` that exists, unless `force`: for a command that
    writes several files and must write none of them when it may not write them all."""
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing and not force:
        raise ConfigError([Problem(str(path), "already exists") for path in existing],
                          hint=hint)


def has_pyrlab_header(content: bytes) -> bool:
    """Whether a file's leading comment block (`#` lines) says pyrlab wrote it, as every
    text file pyrlab writes does ("written by `pyrlab export compose`", "written by
    `pyrlab build`"): a file pyrlab wrote, which it may write again."""
    for line in content.decode("utf-8", errors="replace").splitlines()[:HEADER_LINES]:
        if not line.startswith("#"):
            return False
        if "written by `pyrlab " in line.lower():
            return True
    return False


def write_file(path: Path, data: str | bytes, *, force: bool = False,
               ours: Callable[[bytes], bool] = has_pyrlab_header,
               hint: str = "add --force to replace it, or choose another file",
               parents: bool = False, shown: str | None = None) -> None:
    """Write `path` atomically. A file already there is replaced when `ours(its content)`
    says pyrlab wrote it, or with `force`; otherwise it is refused, naming it (as `shown`),
    and kept. The file written is new: 0o666 less the umask, as any a person creates.
    `parents`: create missing folders above it."""
    where = shown or str(path)
    content = data.encode("utf-8") if isinstance(data, str) else data
    if path.is_symlink():
        path = path.resolve()  # write where the link points, as a shell's `>` would
    try:
        if path.is_dir():
            raise ConfigError(Problem(where, "is a folder"), hint="name a file")
        try:
            existing: bytes | None = path.read_bytes()
        except FileNotFoundError:
            existing = None
        if existing is not None and not force and not ours(existing):
            raise ConfigError(Problem(where, "exists and pyrlab did not write it"), hint=hint)
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            if existing is None:
                # A file that appeared since it was looked at is not replaced unasked.
                try:
                    os.link(temporary, path)
                except FileExistsError:
                    if not force:
                        raise ConfigError(Problem(where, "exists and pyrlab did not "
                                                  "write it"), hint=hint) from None
                    os.replace(temporary, path)
                except OSError as exc:
                    if exc.errno not in NO_HARD_LINKS:
                        raise
                    os.replace(temporary, path)  # a file system without hard links
            else:
                os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(Problem(where, f"cannot write: {exc.strerror or exc}")) from None
