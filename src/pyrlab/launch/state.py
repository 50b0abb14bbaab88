"""The host side of a lab: its token file, the folders it mounts, its ports.

Tokens live in `<project>/.pyrlab/tokens/<container>.token` (or under $PYRLAB_STATE_DIR),
mode 0600 in a 0700 folder, and are reused for as long as the file exists: a restarted
lab keeps its URL. Deleting the file gives the next `up` a new token.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
from pathlib import Path

from pyrlab.config.model import Config
from pyrlab.config.paths import work_dir
from pyrlab.errors import RunError

TOKEN_BYTES = 24  # 48 hex characters


def state_dir(config: Config) -> Path:
    override = os.environ.get("PYRLAB_STATE_DIR")
    return Path(override).expanduser() if override else work_dir(config.root)


def name_note(config: Config) -> str | None:
    """Once per project folder (the first command after an upgrade): that a pyrlab.toml
    without `name` is named for its folder, and how to fix that. None when said before."""
    if not config.name_from_folder or config.file is None:
        return None
    marker = state_dir(config) / "name-from-folder"
    try:
        if marker.read_text(encoding="utf-8").strip() == config.name:
            return None
    except (OSError, UnicodeDecodeError):
        pass
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(config.name + "\n", encoding="utf-8")
    except OSError:
        pass  # a read-only project: said again next time
    return (f"{config.file.name} has no `name`: this project is named for its folder, "
            f"'{config.name}' (images {config.image_ref('IMAGE')}, home "
            f"{config.run.home}); add `name = \"{config.name}\"` at its top so that a "
            f"clone in another folder gets the same names (said once)")


def token_path(config: Config, container: str) -> Path:
    return state_dir(config) / "tokens" / f"{container}.token"


def read_token(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a token"
        raise RunError(f"cannot read the lab's token file {path}: {reason}",
                       hint="delete it to get a new token") from None
    return text or None


def ensure_token(path: Path, owner: tuple[int, int] | None = None) -> str:
    """The token stored at `path`, or a new random one written there with mode 0600.

    `owner` (UID, GID): give the file to the real user when pyrlab runs as root for them.
    """
    existing = read_token(path)
    if existing is not None:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # someone loosened it: the token is a password
        return existing
    token = secrets.token_hex(TOKEN_BYTES)
    try:
        path.unlink(missing_ok=True)  # an empty file: replaced
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
        if owner is not None and os.geteuid() == 0:
            for item in (path.parent, path):
                os.chown(item, *owner)
    except FileExistsError:  # another `up` wrote it first: use theirs
        return read_token(path) or token
    except OSError as exc:
        raise RunError(f"cannot write the lab's token file {path}: {exc.strerror}",
                       hint="make the project folder writable, or set PYRLAB_STATE_DIR") from None
    return token


def invoking_user() -> tuple[int, int] | None:
    """The real user behind sudo (who should own files pyrlab writes as root for them)."""
    uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    return (int(uid), int(gid)) if uid.isdigit() and gid.isdigit() else None


def prepare_folders(folders: tuple[Path, ...], uid: int, gid: int) -> list[str]:
    """Create the mounted folders; as root, give new ones to the lab's UID/GID.

    Returns notes about existing folders the lab will not be able to write to.
    """
    notes = []
    as_root = os.geteuid() == 0
    for folder in folders:
        missing: list[Path] = []
        node = folder
        while not node.exists() and node != node.parent:
            missing.append(node)
            node = node.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if as_root:
                for created in missing:
                    os.chown(created, uid, gid)
        except OSError as exc:
            raise RunError(f"cannot create {folder}: {exc.strerror}",
                           hint="create it yourself or change run.notebooks / run.home") from None
        if not folder.is_dir():
            raise RunError(f"{folder} is not a folder", hint="change run.notebooks / run.home")
        info = folder.stat()
        if not missing and info.st_uid != uid and not info.st_mode & 0o002 and uid != 0:
            notes.append(f"{folder} belongs to UID {info.st_uid}, but the lab runs as UID "
                         f"{uid}: it may not be able to save there (chown {uid}:{gid} it)")
    return notes


def port_in_use(host: str, port: int) -> bool:
    """Whether something on this machine already listens on host:port."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if address == "localhost":
        address = "127.0.0.1"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
