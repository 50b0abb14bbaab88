"""The pylab that test_run and test_browser run (cases/pylab-run): how it is made, reached
and cleaned up.

The lab runs as UID 4242 / GID 4343 (nobody's default) under a fresh image prefix, on
free ports.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from labclient import LabClient
from labtools import CASES, EngineCli, Lab, container_name, named, new_prefix, project_key

UID, GID = 4242, 4343
CASE = "pylab-run"


@dataclass
class RunningLab:
    lab: Lab
    engine: EngineCli
    work: Path  # holds notebooks/ and home/
    ports: dict[str, int]
    url: str
    token: str
    up_seconds: float  # the first `up`, which also built the images

    @property
    def port(self) -> int:
        return self.ports["lab"]

    @property
    def container(self) -> str:
        return container_name(self.lab.prefix, "pylab", self.port)

    @property
    def client(self) -> LabClient:
        return LabClient(f"http://127.0.0.1:{self.port}", self.token)

    def pyrlab(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.lab.pyrlab(*args, timeout=timeout)

    def inspect(self, name: str | None = None) -> dict[str, object] | None:
        done = self.engine("container", "inspect", name or self.container, check=False)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def copy_case(case: str, root: Path, fills: dict[str, str]) -> Path:
    """cases/<case> → root with its @PLACEHOLDERS@ filled (what make_lab does, for a lab
    that a whole module shares)."""
    shutil.copytree(CASES / case, root)
    config = root / "pyrlab.toml"
    text = config.read_text()
    for key, value in fills.items():
        text = text.replace(f"@{key}@", value)
    assert "@" not in text.replace("@jupyterlab", ""), text
    config.write_text(named(text, fills["PREFIX"]))
    return root


def pylab_case(tmp: Path, base: str, ca_files: list[Path]) -> tuple[Lab, dict[str, int]]:
    """cases/pylab-run in tmp/lab with a fresh prefix and free ports (lab, dtale,
    tensorboard)."""
    prefix = new_prefix()
    ports = dict(zip(("lab", "dtale", "tensorboard"), free_ports(3), strict=True))
    root = copy_case(CASE, tmp / "lab", {
        "PREFIX": prefix, "BASE_IMAGE": base, "CA_FILES": json.dumps([str(p) for p in ca_files]),
        "WORK": str(tmp / "lab" / "work"), "UID": str(UID), "GID": str(GID),
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()}})
    return Lab(root=root, prefix=prefix, engine_name="docker"), ports


def cleanup(lab: Lab, engine: EngineCli) -> subprocess.CompletedProcess[str]:
    """`down --all`, then whatever is left: containers of the project, its images."""
    down = lab.pyrlab("down", "--all", timeout=300)
    engine.remove_project(project_key(lab.root), lab.prefix)
    return down


def url_parts(url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", url
    assert parts.port is not None
    return parts.port, parse_qs(parts.query)["token"][0]
