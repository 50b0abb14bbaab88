"""`pyrlab init [DIR]`: write a working lab project with commented defaults."""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pyrlab.config.confine import pem_certificates, regular_file
from pyrlab.config.guess import did_you_mean
from pyrlab.config.model import name_from_folder
from pyrlab.config.user import shown_path, user_config_path
from pyrlab.errors import ConfigError, Problem, UsageError
from pyrlab.safewrite import check_new, write_file

# (file in the package, name in the project)
FILES = (
    ("pyrlab.toml", "pyrlab.toml"),
    ("base_debs.txt", "base_debs.txt"),
    ("requirements.txt", "requirements.txt"),
    ("r_debs.txt", "r_debs.txt"),
    ("r_packages.txt", "r_packages.txt"),
    ("r_requirements.txt", "r_requirements.txt"),
    ("Makefile", "Makefile"),
    ("gitignore", ".gitignore"),
)

# Where Debian keeps locally added CAs. A host behind a TLS-intercepting proxy trusts them;
# recording them (in the user's file: they are this machine's, not the project's) makes the
# new lab's builds work behind the same proxy.
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")

# The suites `--base debian:SUITE` takes: those Debian's mirrors carry (codenames and
# their aliases). Another suite can still be written in pyrlab.toml's base.bootstrap.
DEBIAN_SUITES = ("bookworm", "trixie", "forky", "duke", "sid",
                 "oldstable", "stable", "testing", "unstable")

BASE_IMAGE = '''image = "python:3.14-trixie"   # any Debian-based image with python3
python = "image"               # "image": the image's Python; "debian": apt's python3'''
BASE_BOOTSTRAP = '''bootstrap = "{suite}"           # made from a Debian mirror by `pyrlab bootstrap`: no registry
image = "pyrlab-debian:{suite}"
python = "debian"              # Python from Debian's python3, packages in a venv'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=None, help="folder to create (default: -C or .)")
    parser.add_argument("--base", default="image", metavar="image|debian[:SUITE]",
                        help="'image': start from python:3.14-trixie (needs a registry); "
                        "'debian' or 'debian:SUITE': bootstrap Debian from its mirror")
    parser.add_argument("--ca", metavar="FILE", action="append", default=None,
                        help="extra CA certificate to trust in builds and labs (repeatable), "
                        "recorded in your user file (~/.config/pyrlab/config.toml), not in "
                        f"the project; default: the host's own extra CAs ({HOST_CA_DIR}/*.crt)")
    parser.add_argument("--no-host-ca", action="store_true",
                        help=f"do not list the host's {HOST_CA_DIR}/*.crt")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


@dataclass(frozen=True)
class InitResult:
    root: Path
    written: tuple[str, ...]
    # This machine's CA files, and what became of them in the user's file.
    ca_files: tuple[str, ...] = ()
    user_file: Path | None = None
    user_file_note: str = ""

    def to_data(self) -> Any:
        return {"project": str(self.root), "written": list(self.written),
                "ca_certificates": list(self.ca_files),
                "user_file": str(self.user_file) if self.user_file else None,
                "user_file_note": self.user_file_note}

    def to_text(self) -> str:
        lines = [f"created lab project in {self.root}:"]
        lines += [f"  {name}" for name in self.written]
        if self.user_file_note:
            lines.append(self.user_file_note)
        lines.append(f"next: cd {self.root} && pyrlab build && pyrlab up pylab")
        return "\n".join(lines)


def base_block(base: str) -> str:
    if base == "image":
        return BASE_IMAGE
    kind, _, suite = base.partition(":")
    suite = suite or "trixie"
    if kind != "debian":
        raise UsageError(f"--base: expected 'image', 'debian' or 'debian:SUITE', got {base!r}")
    if suite not in DEBIAN_SUITES:
        close = did_you_mean(suite, DEBIAN_SUITES, cutoff=0.6, fold_case=False)
        guess = f"; did you mean debian:{close}?" if close else ""
        raise UsageError(f"--base: {suite!r} is not a Debian suite on its mirrors{guess}",
                         hint=f"one of {', '.join(DEBIAN_SUITES)} (another suite: write it "
                         "in pyrlab.toml's base.bootstrap after init)")
    return BASE_BOOTSTRAP.format(suite=suite)


def not_a_ca_file(path: Path) -> str | None:
    """Why `path` cannot be a CA file of a build (as `pyrlab check` would say), or None."""
    why = regular_file(path)
    if why is not None:
        return why
    try:
        content = path.read_bytes()
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    certificates = pem_certificates(content)
    return f"is not a PEM certificate file: {certificates}" if isinstance(certificates, str) \
        else None


def ca_files(args: argparse.Namespace) -> list[str]:
    if args.ca is not None:
        files = [Path(f).expanduser().resolve() for f in args.ca]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise UsageError(f"--ca: no such file: {', '.join(missing)}")
        problems = [f"{f}: {why}" for f in files if (why := not_a_ca_file(f)) is not None]
        if problems:
            raise UsageError(f"--ca {'; '.join(problems)}",
                             hint="--ca takes a CA certificate in PEM form (-----BEGIN "
                             "CERTIFICATE-----)")
        return [str(f) for f in files]
    if args.no_host_ca or not HOST_CA_DIR.is_dir():
        return []
    # The host's own files: one that holds no certificate would fail every build.
    return [str(f) for f in sorted(HOST_CA_DIR.rglob("*.crt")) if not_a_ca_file(f) is None]


def record_ca_files(files: list[str]) -> tuple[Path | None, str]:
    """Put this machine's CA files in the user's file: create it, or add a [base] table to
    one that has none. A file that already names CA files, or has a [base] table of its
    own, is left as the user wrote it; the note says what to add. (user file, note)"""
    path = user_config_path(os.environ)
    listed = "[" + ", ".join(json.dumps(f) for f in files) + "]"  # TOML basic strings
    block = f"[base]\nca_certificates = {listed}\n"
    if not files:
        return path, ""
    if path is None:
        return None, (f"note: no user file (PYRLAB_USER_CONFIG is empty), so this machine's "
                      f"CA files are not recorded; builds behind its TLS proxy need {block!r}")
    shown = shown_path(path)
    try:
        if not path.exists():
            write_file(path, "# pyrlab's settings for this machine (CA files, proxies, "
                       "engine, where notebooks\n# and home folders live): they win over "
                       "each project's pyrlab.toml.\n" + block, parents=True, shown=shown)
            return path, f"recorded this machine's CA files in {shown}"
        text = path.read_text(encoding="utf-8-sig")
        try:
            base = tomllib.loads(text).get("base")
        except tomllib.TOMLDecodeError:
            base = {}  # `pyrlab check` reports it; nothing is added to it here
        if isinstance(base, dict) and "ca_certificates" in base:
            return path, f"kept the CA files your {shown} lists"
        if base is None:
            # Added to, never changed: what the user wrote stays as it was.
            write_file(path, text + ("" if text.endswith("\n") or not text else "\n")
                       + "\n" + block, force=True, shown=shown)
            return path, f"recorded this machine's CA files in {shown}"
    except OSError as exc:
        raise ConfigError(Problem(shown, f"cannot write: {exc.strerror}")) from None
    return path, f"note: add this machine's CA files to {shown} yourself: {block!r}"


def run(args: argparse.Namespace) -> InitResult:
    """Write the project's files; its `name` is the folder's (see name_from_folder)."""
    root = Path(args.dir if args.dir is not None else args.project).expanduser().resolve()
    block = base_block(args.base)
    cas = ca_files(args)
    # A project folder may hold the user's work already (a git repository, notebooks):
    # init adds its files beside them, and replaces one only when asked (--force).
    check_new([root / dst for _, dst in FILES], force=args.force,
              hint="use --force to overwrite")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(Problem(str(exc.filename or root), f"cannot write: {exc.strerror}")) from None
    package = resources.files("pyrlab.init")
    for src, dst in FILES:
        text = package.joinpath(src).read_text(encoding="utf-8")
        if src == "pyrlab.toml":
            text = (text.replace("@BASE@", block)
                    .replace("@NAME@", json.dumps(name_from_folder(root))))
        write_file(root / dst, text, force=args.force, ours=lambda _: False,
                   hint="use --force to overwrite")
    user_file, note = record_ca_files(cas)
    return InitResult(root=root, written=tuple(dst for _, dst in FILES), ca_files=tuple(cas),
                      user_file=user_file, user_file_note=note)
