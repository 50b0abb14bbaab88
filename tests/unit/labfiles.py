"""Helpers shared by the unit tests: lab projects written into tmp folders, and the command
line run in-process (the fake engine is in fakes.py)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pyrlab.cli import main
from pyrlab.contents.lockfile import read_lock

REPO = Path(__file__).resolve().parents[2]
# Read before the fixture below clears PYRLAB_* (which pyrlab would read as config keys).
UPDATE_GOLDEN = os.environ.get("PYRLAB_UPDATE_GOLDEN") == "1"
VENV_BIN = REPO / ".venv" / "bin"
CONTAINER = REPO / "src" / "pyrlab" / "container"

# A realistic project that exercises everything the default one does not: apt and pip
# proxies (apt-cacher-ng HTTPS style, an http index → trusted-host), a CRAN mirror, an
# extra CA file, CUDA and a flavour image on top of pylab.
FULL_TOML = """\
name = "full"

[base]
bootstrap = "trixie"
debs = ["base_debs.txt"]
cuda = true
ca_certificates = ["certs/corp-root.pem"]
locale = "de_DE.UTF-8"

[proxy]
apt = "http://apt-cache.internal:3142"
apt_https = true
pip_index = "http://devpi.internal:3141/root/pypi/+simple/"
cran = "https://packagemanager.posit.co/cran/__linux__/trixie/latest"

[images.pyrlab-base]

[images.pylab]
from = "pyrlab-base"
requirements = ["requirements.txt"]
ports = { lab = 8888, dtale = 40000, tensorboard = 6006 }

[images.pylab-torch]
from = "pylab"
requirements = ["requirements_torch.txt"]
ports = { lab = 8890 }

[images.rlab-base]
from = "pyrlab-base"
debs = ["r_debs.txt"]
r = "cran"

[images.rlab]
from = "rlab-base"
requirements = ["r_requirements.txt"]
r_packages = ["r_packages.txt"]
ports = { lab = 9999 }

[run]
sudo = true
"""

PEM = b"""\
-----BEGIN CERTIFICATE-----
MIIBjjCCATOgAwIBAgIUNGimfmF1uqnzIlkgZy7BRDMv/V0wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcHlybGFiIHRlc3Qgb25seTAgFw0yNjEyMDEyMTMyNDBaGA8y
MTI2MTEwNzIxMzI0MFowGzEZMBcGA1UEAwwQcHlybGFiIHRlc3Qgb25seTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABBGKwgsDMCNU2PXpF0OdaRXHhGT4DlaTEiUc
ztXvItL8b+TigWp4NkGPP+Jhtx/ZdUVAC45rn+DtjcfpfOpbKeujUzBRMB0GA1Ud
DgQWBBSGlRdtHg5WmvKmyOoCDWYxg1J/AzAfBgNVHSMEGDAWgBSGlRdtHg5WmvKm
yOoCDWYxg1J/AzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDO
Y6pFROaHo6YyRrbsdZS6JD9v8RLoybsBB3hD/L5uDQIhAKMB65SBbwSLg0x+AvXy
QxpU1kNnNeTNzxdubquMOP8t
-----END CERTIFICATE-----
"""  # a real self-signed certificate (CN "pyrlab test only"), key discarded

FULL_FILES: dict[str, str | bytes] = {
    "pyrlab.toml": FULL_TOML,
    "base_debs.txt": "git\nless\n",
    "requirements.txt": "jupyterlab\nipykernel\nnumpy==2.3.1\n",
    "requirements_torch.txt": "torch>=2.8\ntorchvision\n",
    "r_debs.txt": "libxml2-dev\n",
    "r_requirements.txt": "jupyterlab\n",
    "r_packages.txt": "IRkernel\njsonlite==1.8.9\napt:ggplot2\n",
    "certs/corp-root.pem": PEM,
}


def write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(textwrap.dedent(content), encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def make_project(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write(root, name, content)
    return root


def init_lab(root: Path, *extra: str) -> Path:
    """`pyrlab init ROOT --base debian` through the real entry point.

    Without the host's CA files, so that the rendered contexts do not depend on the machine.
    """
    assert main(["init", str(root), "--base", "debian", "--no-host-ca", *extra]) == 0
    return root


def pyrlab(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `pyrlab ARGV`, which never shows a traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def build_json(capsys: pytest.CaptureFixture[str], lab: Path, *args: str) -> dict[str, Any]:
    """`pyrlab build --json` of `lab`, which must succeed; its report."""
    code, out, err = pyrlab(capsys, "build", "-C", str(lab), "--json", *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def python_versions(lab: Path, image: str, lock: str = "pyrlab.lock") -> dict[str, str]:
    """name → version of the Python distributions the lock records for `image`."""
    return {d.name: d.version for d in read_lock(lab / lock)[image].packages("python")}
