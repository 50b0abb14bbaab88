"""Confinement to the project folder: a lab project may come from someone else.

Every file a project names (package lists and their includes, the rc and userlab scripts,
the env file) must lie inside the project folder once symlinks are resolved. The check
only resolves names (readlink, stat): a file outside is never opened. CA files are the
one declared exception (see project.py), and they must hold nothing but certificates.
"""

from __future__ import annotations

import base64
import binascii
import re
import stat
from pathlib import Path


def resolved(path: Path) -> Path | None:
    """`path` with `..` and every symlink resolved; None for a symlink loop."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop before Python 3.13
        return None


def outside(path: Path, root: Path) -> str | None:
    """Why `path` may not be read as part of the project at `root`, or None when it lies
    inside. Nothing is opened."""
    target = resolved(path)
    if target is None:
        return "is a symlink loop"
    base = resolved(root) or root
    if not target.is_relative_to(base):
        shown = f" (it resolves to {target})" if target != path else ""
        return f"lies outside the project folder {base}{shown}"
    return None


def regular_file(path: Path) -> str | None:
    """Why `path` is no regular file to read (a FIFO or a device would block or never
    end), or None; a missing file is the reader's to report. Nothing is opened."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None


_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([^-\r\n]*)-----(.*?)-----END ([^-\r\n]*)-----", re.DOTALL)


def pem_certificates(content: bytes) -> bytes | str:
    """The certificates in a PEM file, re-encoded (so that nothing else in the file can
    reach an image), or why the file is not a certificate file: it must hold at least
    one block, and every block must decode as a certificate."""
    blocks = list(_PEM_BLOCK_RE.finditer(content))
    if content.count(b"-----BEGIN ") != len(blocks):
        return "has a PEM block without its END line"
    if not blocks:
        return "holds no PEM certificate"
    out = []
    for number, block in enumerate(blocks, start=1):
        label = block.group(1).decode("ascii", "replace")
        if label != "CERTIFICATE" or block.group(3) != block.group(1):
            return f"PEM block {number} is a {label!r}, not a 'CERTIFICATE'"
        try:
            der = base64.b64decode(b"".join(block.group(2).split()), validate=True)
        except (binascii.Error, ValueError):
            return f"PEM block {number} is not valid base64"
        if not _is_der_sequence(der):
            return f"PEM block {number} does not decode as a certificate"
        out.append(der_to_pem(der))
    return b"".join(out)


def der_to_pem(der: bytes) -> bytes:
    """One certificate in PEM, byte for byte as ssl.DER_cert_to_PEM_cert writes it (64
    base64 characters a line), without importing ssl for it."""
    text = base64.standard_b64encode(der).decode("ascii")
    lines = [text[at:at + 64] for at in range(0, len(text), 64)]
    return "\n".join(["-----BEGIN CERTIFICATE-----", *lines,
                      "-----END CERTIFICATE-----\n"]).encode("ascii")


def _is_der_sequence(der: bytes) -> bool:
    """A certificate is one DER SEQUENCE that fills the block, holding a SEQUENCE first
    (the to-be-signed part). Enough to refuse a key, text or a truncated block."""

    def header(data: bytes, at: int) -> tuple[int, int] | None:
        """(offset of the content, its length) of the SEQUENCE at `at`."""
        if len(data) < at + 2 or data[at] != 0x30:
            return None
        first = data[at + 1]
        if first < 0x80:
            return at + 2, first
        count = first & 0x7F
        if not 1 <= count <= 4 or len(data) < at + 2 + count:
            return None
        return at + 2 + count, int.from_bytes(data[at + 2: at + 2 + count], "big")

    outer = header(der, 0)
    if outer is None or outer[0] + outer[1] != len(der):
        return False
    inner = header(der, outer[0])
    return inner is not None and inner[0] + inner[1] <= len(der)
