"""Helpers the integration tests share (imported by conftest.py and by test modules):
the engine's own CLI, `pyrlab` as a subprocess, lab projects copied from cases/, free
ports, cleanup by image prefix and project label, what a container reports it holds
(independently of pyrlab's collector), and small wheels (one that installs but fails on
import).

Conventions every integration test follows:

- Image names start with `pyrlab-test-`: the session's base is
  `pyrlab-test-<session>/debian:trixie`, and each lab gets its own prefix
  (`pyrlab-test-<random>/`), so nothing a user built is touched, two test sessions on one
  machine do not share images, and cleanup can go by name.
- Ports are free ones the kernel hands out, never fixed numbers.
- Without a usable engine a test is skipped, except in CI (`CI=true`), where it fails.
- pyrlab runs as a subprocess through `run_pyrlab`, as a user would run it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CASES = Path(__file__).parent / "cases"
# PYRLAB_TEST_KEEP_BASE=1: keep the base after the session, under a fixed name, and reuse it.
KEEP_BASE = os.environ.get("PYRLAB_TEST_KEEP_BASE") == "1"
BASE_REF = ("pyrlab-test-debian:trixie" if KEEP_BASE
            else f"pyrlab-test-{secrets.token_hex(3)}/debian:trixie")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
# PYRLAB_* from the developer's shell would be read as config overrides, and their user
# file as this machine's settings: no user file unless a test gives one.
_CLEAN_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("PYRLAB_")},
              "PYRLAB_USER_CONFIG": ""}
# Every distribution the lab's venv sees, first one per name in sys.path order.
_VENV_DISTS = """
import importlib.metadata, json
found = {}
for dist in importlib.metadata.distributions():
    found.setdefault(dist.metadata["Name"], dist.version)
print(json.dumps(found))
"""
_DPKG_FORMAT = "${binary:Package}\\t${Version}\\t${db:Status-Status}\\n"
# What importing the module of make_bad_wheel's wheel raises.
BAD_WHEEL_ERROR = "RuntimeError: badmod refuses to import"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def engine_unavailable(message: str) -> None:
    """Skip the test, or fail it in CI, where a missing engine is a broken machine."""
    if _in_ci():
        pytest.fail(f"{message} (CI=true: integration tests must run here)")
    pytest.skip(message)


def run_pyrlab(*args: str, timeout: float = 1800, env: dict[str, str] | None = None,
               program: tuple[str, ...] = ("-m", "pyrlab")) -> subprocess.CompletedProcess[str]:
    """`pyrlab ARGS…` in a subprocess with a clean environment (no PYRLAB_* leaking in);
    `program`: what Python runs (a script that registers a test's ecosystem first)."""
    return subprocess.run([sys.executable, *program, *args], capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**_CLEAN_ENV, **(env or {})})


@dataclass
class EngineCli:
    """The engine's own CLI, for checking what pyrlab did (never used by pyrlab itself)."""

    name: str  # "docker" or "podman"
    binary: str

    def __call__(self, *args: str, check: bool = True,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.binary, *args], capture_output=True, text=True,
                              check=False, input=input, timeout=600)
        if check and done.returncode != 0:
            raise AssertionError(f"{self.binary} {' '.join(args)}: {done.stderr.strip()}")
        return done

    def image(self, ref: str) -> dict[str, object] | None:
        """`image inspect` of ref, or None when there is no such image."""
        done = self("image", "inspect", ref, check=False)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None

    def image_id(self, ref: str) -> str | None:
        info = self.image(ref)
        return str(info["Id"]).removeprefix("sha256:") if info else None

    def labels(self, ref: str) -> dict[str, str]:
        info = self.image(ref)
        assert info is not None, f"no image {ref}"
        config = info.get("Config") or {}
        assert isinstance(config, dict)
        return dict(config.get("Labels") or {})

    def refs(self, prefix: str) -> list[str]:
        """Every NAME:TAG whose repository starts with prefix (Podman's localhost/ too)."""
        done = self("images", "--format", "{{.Repository}}:{{.Tag}}")
        return sorted(ref.removeprefix("localhost/") for ref in done.stdout.split()
                      if ref.removeprefix("localhost/").startswith(prefix))

    def remove_by_prefix(self, prefix: str) -> None:
        """Remove every image named under prefix (a few rounds: an image whose child is
        removed in the same round may only go in the next). A name under prefix for an
        image that is named elsewhere too (the session's base, tagged into a lab; a
        bootstrap is reproducible, so a lab's own base can be the same image) only goes
        as a name: `rmi --force` would take the image from under the other names."""
        for _ in range(5):
            refs = self.refs(prefix)
            if not refs:
                return
            shared = [ref for ref in refs if any(
                not tag.removeprefix("localhost/").startswith(prefix)
                for tag in (self.image(ref) or {}).get("RepoTags") or [])]
            for ref in shared:
                self("rmi", ref, check=False)
            forced = [ref for ref in refs if ref not in shared]
            if forced:
                self("rmi", "--force", *forced, check=False)

    def remove_containers(self, label: str) -> None:
        """Remove every container, running or not, that carries label (KEY=VALUE): what a
        test started, or what pyrlab or compose started for it, by the label they put on."""
        for name in self("ps", "--all", "--quiet", "--filter", f"label={label}").stdout.split():
            self("rm", "--force", name, check=False)

    def remove_project(self, key: str, prefix: str | None = None) -> None:
        """Everything a test's project left: its containers and untagged images (by its
        org.pyrlab.project label), and the images named under prefix."""
        self.remove_containers(f"org.pyrlab.project={key}")
        if prefix is not None:
            self.remove_by_prefix(prefix)
        self.remove_by_label(f"org.pyrlab.project={key}")

    def remove_by_label(self, label: str) -> None:
        """Remove untagged images a test's builds left (by their org.pyrlab.project)."""
        for _ in range(5):
            done = self("images", "--all", "--quiet", "--no-trunc", "--filter",
                        f"label={label}", check=False)
            ids = sorted(set(done.stdout.split()))
            if not ids:
                return
            self("rmi", "--force", *ids, check=False)


def _engine_binary(name: str) -> str | None:
    if name == "podman":
        return shutil.which("podman")
    # The client pyrlab itself would pick; any docker client talks to the same daemon.
    return shutil.which("docker") or shutil.which("docker", path="/usr/bin")


def checked_engine(name: str) -> EngineCli:
    binary = _engine_binary(name)
    if binary is None:
        engine_unavailable(f"{name} is not installed")
    assert binary is not None
    done = subprocess.run([binary, "info"], capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        engine_unavailable(f"{name} does not work here: {done.stderr.strip()[-300:]}")
    return EngineCli(name, binary)


@dataclass
class Lab:
    """A lab project copied from cases/<name> with its own image prefix."""

    root: Path
    prefix: str
    engine_name: str
    sets: list[str] = field(default_factory=list)
    program: tuple[str, ...] = ("-m", "pyrlab")  # see run_pyrlab

    def pyrlab(self, command: str, *args: str,
               timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """`pyrlab COMMAND -C ROOT --engine E ARGS…` (commands without an engine: no flag)."""
        argv = [command, "-C", str(self.root)]
        for value in self.sets:
            argv += ["--set", value]
        if command in ("build", "clean", "bootstrap", "outdated", "upgrade"):
            argv += ["--engine", self.engine_name]
        return run_pyrlab(*argv, *args, timeout=timeout, program=self.program)

    def ref(self, image: str, tag: str = "latest") -> str:
        return f"{self.prefix}{image}:{tag}"


@dataclass(frozen=True)
class ForeignBase:
    """The session's base for the other supported platform (see foreign_bases)."""

    platform: str  # linux/arm64 on an amd64 machine
    ref: str  # its local name: BASE_REF's, with the platform's token (debian/arm64:trixie)
    bootstrap: dict[str, Any]  # `pyrlab bootstrap --json`'s answer ({} for a kept one)
    seconds: float  # how long that bootstrap took here


def named(text: str, prefix: str) -> str:
    """A pyrlab.toml's text with `name` set from a test prefix (`pyrlab-test-1a2b/` →
    `pyrlab-test-1a2b`) unless it has one: its images are then PREFIXIMAGE (what Lab.ref
    names), its labs PREFIX__IMAGE-PORT (container_name), and they go with the prefix's."""
    if re.search(r"(?m)^name\s*=", text):
        return text
    return f"name = {json.dumps(prefix.rstrip('/'))}\n" + text


def container_name(prefix: str, image: str, port: int) -> str:
    """The container of a lab of the project `named` for prefix."""
    return f"{prefix.rstrip('/')}__{image}-{port}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], *, grace: float = 30.0) -> None:
    """Stop a server a test started: SIGTERM, then SIGKILL after `grace` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def new_prefix() -> str:
    """A fresh `pyrlab-test-<random>/` image prefix."""
    return f"pyrlab-test-{secrets.token_hex(4)}/"


def copy_case(case: str, root: Path, *, prefix: str, engine_name: str,
              host_ca_files: list[Path], base: Callable[[str], str] | None = None,
              **values: str) -> Lab:
    """Copy cases/<case> to root and fill the placeholders of its pyrlab.toml: @PREFIX@,
    @BASE_IMAGE@ (base(engine_name): the bootstrapped base, made when first used),
    @CA_FILES@ (a TOML array of the host CA files) and any @NAME@ given as NAME=value.
    Given values are filled first, so they may hold placeholders themselves (e.g.
    BASE_IMAGE="@PREFIX@debian:trixie")."""
    shutil.copytree(CASES / case, root)
    config = root / "pyrlab.toml"
    text = config.read_text()
    fills = dict(values)
    fills.setdefault("CA_FILES", json.dumps([str(p) for p in host_ca_files]))
    if "@BASE_IMAGE@" in text and "BASE_IMAGE" not in values:
        assert base is not None, "this case needs the bootstrapped base"
        fills["BASE_IMAGE"] = base(engine_name)
    fills.setdefault("PREFIX", prefix)
    for key, value in fills.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"unfilled placeholders in {config}: {left}"
    config.write_text(named(text, prefix))
    return Lab(root=root, prefix=prefix, engine_name=engine_name)


def venv_dists(engine: EngineCli, ref: str) -> dict[str, str]:
    """What the lab's Python (/opt/venv) in image ref sees, by PEP 503 name."""
    from pyrlab.ecosystems.python import normalize_python_name

    done = engine("run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python",
                  ref, "-c", _VENV_DISTS)
    return {normalize_python_name(name): version
            for name, version in json.loads(done.stdout).items()}


def installed_debs(engine: EngineCli, ref: str) -> dict[str, str]:
    """dpkg's installed packages in image ref; those of its own architecture without `:ARCH`."""
    script = f"dpkg --print-architecture; dpkg-query -W -f '{_DPKG_FORMAT}'"
    lines = engine("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", ref, "-c",
                   script).stdout.splitlines()
    native, rows = lines[0], [line.split("\t") for line in lines[1:] if line]
    return {name.removesuffix(f":{native}"): version
            for name, version, status in rows if status == "installed"}


def make_wheel(folder: Path, name: str, version: str, modules: dict[str, str],
               metadata: tuple[str, ...] = ()) -> str:
    """A pure-Python wheel in folder: distribution `name` at `version` holding `modules`
    (path in the wheel → source), with `metadata`'s extra METADATA lines (e.g.
    "Requires-Dist: six<2"). Returns the wheel's file name."""
    info = f"{name}-{version}.dist-info"
    fields = "".join(f"{line}\n" for line in metadata)
    files = {
        **modules,
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                             f"{fields}"),
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: pyrlab-tests\n"
                          "Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel_name = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(folder / wheel_name, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return wheel_name


def make_bad_wheel(folder: Path) -> str:
    """badmod 1.0 in folder: installs fine, raises BAD_WHEEL_ERROR on import. Returns the
    wheel's file name."""
    return make_wheel(folder, "badmod", "1.0",
                      {"badmod.py": "raise RuntimeError('badmod refuses to import')\n"})


@contextmanager
def serving(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server of `handler` on 127.0.0.1 (builds reach it with host networking), in a
    thread, while the block runs; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """folder's files over HTTP on 127.0.0.1 while the block runs; yields the base URL (no
    trailing slash)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with serving(handler) as port:
        yield f"http://127.0.0.1:{port}"


def remove_lab_images(engine_name: str, prefix: str, labs: list[Lab]) -> None:
    """Remove every image under prefix and the untagged ones the labs' builds left."""
    binary = _engine_binary(engine_name)
    if binary is None:
        return
    engine = EngineCli(engine_name, binary)
    engine.remove_by_prefix(prefix)
    for lab in labs:
        engine.remove_by_label(f"org.pyrlab.project={project_key(lab.root)}")


def project_key(root: Path) -> str:
    """The org.pyrlab.project label value of images built from root: the project's name
    (a hash of the folder with bare names)."""
    from pyrlab.config.readers import load_config

    return load_config(root, environ={}).project_id
