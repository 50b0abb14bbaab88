"""Signing keys of the apt repositories pyrlab can add, shipped inside the package.

A key is never fetched from a key server at build time: that needs a network the build may
not have, and trusts whatever the server answers. Each shipped key is checked against its
published fingerprint before it goes into a build context.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from importlib import resources

from pyrlab.errors import ConfigError, Problem


@dataclass(frozen=True)
class RepositoryKey:
    file: str  # in this package, ASCII-armoured
    fingerprint: str  # the OpenPGP v4 fingerprint of the primary key, upper-case hex
    owner: str


# CRAN's Debian repository (https://cloud.r-project.org/bin/linux/debian), signed by its
# maintainer since November 2021.
CRAN_DEBIAN = RepositoryKey(
    file="cran-debian.asc",
    fingerprint="95C0FAF38DB3CCAD0C080A7BDC78B2DDEABC47B7",
    owner="Johannes Ranke <johannes.ranke@jrwb.de>",
)


def load_key(key: RepositoryKey, where: str) -> bytes | None:
    """The armoured key file, or None when this installation lacks it.

    A file that is there but is not that key (fingerprint checked) is a ConfigError located
    at `where`: a build must never trust a substitute.
    """
    resource = resources.files("pyrlab.keys").joinpath(key.file)
    try:
        data = resource.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        fingerprints = primary_fingerprints(data)
    except ValueError as exc:
        raise ConfigError(Problem(where, f"pyrlab/keys/{key.file} is not an OpenPGP key: {exc}")) \
            from None
    if key.fingerprint not in fingerprints:
        found = ", ".join(fingerprints) or "none"
        raise ConfigError(Problem(where, f"pyrlab/keys/{key.file} is not the key of {key.owner} "
                                  f"(expected fingerprint {key.fingerprint}, found {found})"))
    return data


def dearmor(data: bytes) -> bytes:
    """The binary packets of an ASCII-armoured OpenPGP block (checksum line ignored)."""
    lines = data.decode("ascii", errors="strict").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP "))
        end = next(i for i, line in enumerate(lines) if line.startswith("-----END PGP "))
    except StopIteration:
        raise ValueError("no ASCII-armoured block") from None
    body = lines[start + 1 : end]
    if "" in body:  # armour headers end at the first blank line
        body = body[body.index("") + 1 :]
    encoded = "".join(line.strip() for line in body if not line.startswith("="))
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from None


def _packets(raw: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) for every OpenPGP packet (RFC 4880 §4.2, old and new formats)."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        header = raw[i]
        if not header & 0x80:
            raise ValueError(f"bad packet header at byte {i}")
        if header & 0x40:  # new format
            tag = header & 0x3F
            first = raw[i + 1]
            if first < 192:
                length, i = first, i + 2
            elif first < 224:
                length, i = ((first - 192) << 8) + raw[i + 2] + 192, i + 3
            elif first == 255:
                length, i = int.from_bytes(raw[i + 2 : i + 6], "big"), i + 6
            else:
                raise ValueError("partial body lengths do not occur in keys")
        else:  # old format
            tag = (header >> 2) & 0x0F
            size = {0: 1, 1: 2, 2: 4}.get(header & 0x03)
            if size is None:
                raise ValueError("indeterminate packet length")
            length, i = int.from_bytes(raw[i + 1 : i + 1 + size], "big"), i + 1 + size
        if i + length > len(raw):
            raise ValueError("truncated packet")
        out.append((tag, raw[i : i + length]))
        i += length
    return out


def primary_fingerprints(armoured: bytes) -> list[str]:
    """The v4 fingerprints of the primary keys (tag 6 packets) in an armoured key block."""
    found = []
    for tag, body in _packets(dearmor(armoured)):
        if tag == 6 and body[:1] == b"\x04":
            digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()
            found.append(digest.upper())
    return found
