"""The container-side collector (src/pyrlab/container/inventory.py) run on the host: its
JSON must be what `from_manifest` reads. dpkg is faked where exact rows matter; the real
dpkg-query and R check the commands themselves. Inside images it runs in the integration
tests."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labfiles import CONTAINER

from pyrlab.contents.model import from_manifest
from pyrlab.ecosystems.debian import Deb
from pyrlab.ecosystems.python import PyDist
from pyrlab.ecosystems.r import RPkg

COLLECTOR = CONTAINER / "inventory.py"
META = {"image": "pylab", "input_hash": "0" * 64, "pyrlab_version": "0.1.0",
        "extra": ["kept", "as", "given"]}
BASE_ID = "sha256:" + "1" * 64  # the build argument: it joins META's facts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import rrepo  # a helper module of the integration tests


def fake_dpkg(bin_dir: Path) -> None:
    """dpkg for amd64 with libc6 for two architectures and a removed package."""
    bin_dir.mkdir(exist_ok=True)
    rows = ("zlib1g:amd64\t1:1.3.dfsg+really1.3.1-1+b1\tamd64\tinstalled",
            "libc6:amd64\t2.41-12\tamd64\tinstalled",
            "libc6:i386\t2.41-12\ti386\tinstalled",
            "tzdata\t2025b-4\tall\tinstalled",
            "oldpkg\t1.0-1\tall\tconfig-files",
            "halfway:amd64\t2.0\tamd64\thalf-installed")
    scripts = {"dpkg": "printf 'amd64\\n'\n",
               "dpkg-query": "".join(f"printf '%s\\n' '{row}'\n" for row in rows)}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}")
        (bin_dir / name).chmod(0o755)


def collect(tmp_path: Path, path: str, **env: str) -> dict[str, Any]:
    out, meta = tmp_path / "out.json", tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    result = subprocess.run([sys.executable, str(COLLECTOR), str(out), str(meta), BASE_ID],
                            env={**os.environ, "PATH": path, **env},
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_collector_is_short() -> None:
    # It runs where only a container can test it: logic belongs on the host.
    assert len(COLLECTOR.read_text().splitlines()) <= 60


def test_collector_output_without_r(tmp_path: Path) -> None:
    fake_dpkg(tmp_path / "bin")
    data = collect(tmp_path, str(tmp_path / "bin"))  # nothing else on PATH: no Rscript
    assert data["format"] == 1
    assert data["meta"] == {**META, "base_id": BASE_ID}
    assert data["python"] == platform.python_version()
    release = platform.freedesktop_os_release()
    assert data["os_release"] == {key: release.get(key, "") for key in
                                  ("PRETTY_NAME", "ID", "VERSION_ID", "VERSION_CODENAME")}
    assert data["debs"] == [
        ["libc6", "2.41-12", "amd64"],  # dpkg's own architecture: no ":amd64"
        ["libc6:i386", "2.41-12", "i386"],  # another one keeps it, so names stay unique
        ["tzdata", "2025b-4", "all"],
        ["zlib1g", "1:1.3.dfsg+really1.3.1-1+b1", "amd64"],
    ]
    assert data["r"] is None
    dists = {name: (version, url) for name, version, url in data["python_dists"]}
    assert dists["packaging"] == (importlib.metadata.version("packaging"), "")
    assert dists["pyrlab"][1].startswith("file://")  # installed editable: a direct reference
    assert data["python_dists"] == sorted(data["python_dists"])

    inv = from_manifest(data, "out.json")
    assert inv.meta.image == "pylab"
    assert inv.meta.r == ""
    assert Deb("libc6:i386", "2.41-12", "i386") in inv.packages("debian")
    assert PyDist("packaging", importlib.metadata.version("packaging")) in inv.packages("python")


def test_collector_reads_the_real_dpkg_database(tmp_path: Path) -> None:
    dpkg_query = shutil.which("dpkg-query")
    if dpkg_query is None:
        pytest.skip("not a Debian host")
    version = subprocess.run([dpkg_query, "-W", "-f", "${Version}", "dpkg"],
                             capture_output=True, text=True, check=True).stdout
    data = collect(tmp_path, os.environ["PATH"])
    debs = {name: (v, arch) for name, v, arch in data["debs"]}
    assert debs["dpkg"][0] == version
    assert all(":" not in name or not name.endswith(":" + debs["dpkg"][1]) for name in debs)
    from_manifest(data, "out.json")


@pytest.fixture(scope="module")
def rscript() -> str:
    if os.geteuid() != 0 and not shutil.which("Rscript"):
        pytest.skip("R is not installed and installing it needs root")
    return rrepo.ensure_r()


def install_r_package(r: str, lib: Path, name: str, version: str) -> None:
    lib.mkdir(exist_ok=True)
    tarball = rrepo.build_package(lib.parent / f"build-{lib.name}-{name}", name, version)
    subprocess.run([r, "CMD", "INSTALL", "--no-test-load", "-l", str(lib), str(tarball)],
                   check=True, capture_output=True, text=True, timeout=300)


def test_collector_lists_r_packages_as_r_loads_them(tmp_path: Path, rscript: str) -> None:
    first, second = tmp_path / "lib1", tmp_path / "lib2"
    r = str(Path(rscript).with_name("R"))
    install_r_package(r, first, "pyrlabinv", "0.2.0")
    install_r_package(r, second, "pyrlabinv", "0.1.0")
    install_r_package(r, second, "pyrlabother", "1.0-3")
    fake_dpkg(tmp_path / "bin")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    data = collect(tmp_path, path, R_LIBS=f"{first}{os.pathsep}{second}")

    r_version = subprocess.run([rscript, "--vanilla", "-e", "cat(format(getRversion()))"],
                               capture_output=True, text=True, check=True).stdout
    assert data["r"]["version"] == r_version
    packages = {row[0]: row[1:] for row in data["r"]["packages"]}
    assert packages["pyrlabinv"] == ["0.2.0", str(first), ""]  # the first library wins
    assert packages["pyrlabother"] == ["1.0-3", str(second), ""]
    assert "base" not in packages and "stats" not in packages  # they come with R
    assert data["r"]["packages"] == sorted(data["r"]["packages"])

    inv = from_manifest(data, "out.json", pinned={"r": {"pyrlabother"}})
    assert inv.meta.r == r_version
    assert RPkg("pyrlabinv", "0.2.0", "cran") in inv.packages("r")
    assert RPkg("pyrlabother", "1.0-3", "archive") in inv.packages("r")
