"""The run-time install layer (container/user_env.py) on the host: this test's own venv
stands in for the image's /opt/venv, a temporary folder for the mounted home, and pip
installs small local wheels (no index, no network). In a lab the same code runs when the
server starts; test_user_installs.py checks it there for real."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest
from labfiles import CONTAINER

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from labtools import make_wheel  # a helper module of the integration tests


def load_user_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("user_env", CONTAINER / "user_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A home with pylab's layer made, and the environment the server's children get."""
    home = tmp_path_factory.mktemp("home")
    environ = {"HOME": str(home), "PYRLAB_IMAGE": "pylab", "PATH": "/usr/bin:/bin"}
    line = load_user_env().configure(environ)
    assert line == f"pyrlab: run-time installs go to {home}/.local/share/pyrlab/pylab"
    return environ


def layer(environ: dict[str, str]) -> Path:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return Path(environ["HOME"]) / ".local/share/pyrlab/pylab" / f"python{version}"


def run(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A command as a kernel or terminal of the lab would run it (the layer on PATH)."""
    return subprocess.run(list(args), env={**os.environ, **environ}, capture_output=True,
                          text=True, timeout=300, check=False)


def pip(environ: dict[str, str], wheels: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(environ, "pip", "install", "--no-index", "--find-links", str(wheels),
               "--disable-pip-version-check", *args)


def test_the_server_starts_kernels_in_the_layer(lab: dict[str, str]) -> None:
    bin_dir = layer(lab) / "bin"
    assert lab["PATH"] == f"{bin_dir}:/usr/bin:/bin"
    jupyter, data = lab["JUPYTER_PATH"].split(os.pathsep)
    assert data == str(layer(lab) / "share" / "jupyter")  # the user's lab extensions
    spec = json.loads((Path(jupyter) / "kernels" / "python3" / "kernel.json").read_text())
    assert spec["argv"][0] == str(bin_dir / "python")
    assert spec["argv"][1:3] == ["-m", "ipykernel_launcher"]


def test_kernels_see_the_image_packages_and_the_user_versions_first(
        lab: dict[str, str], tmp_path: Path) -> None:
    image_site = sysconfig.get_path("purelib")
    probe = "import jinja2, sys; print(jinja2.__file__); print(sys.path.index({!r}))"
    seen = run(lab, "python", "-c", probe.format(image_site))
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.splitlines()[0].startswith(image_site)

    # A user version of a package the image has (mdurl: small, pure, in this venv).
    image_mdurl = next(Path(image_site).glob("mdurl-*.dist-info"))
    make_wheel(tmp_path, "mdurl", "99.0", {"mdurl/__init__.py": "__version__ = 'user'\n"})
    done = pip(lab, tmp_path, "--upgrade", "mdurl==99.0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Not uninstalling mdurl" in done.stdout  # the image's copy is left alone
    assert image_mdurl.is_dir()
    which = run(lab, "python", "-c", "import mdurl; print(mdurl.__version__, mdurl.__file__)")
    assert which.stdout.split()[0] == "user"
    assert which.stdout.split()[1].startswith(str(layer(lab)))
    # The server's own interpreter (the image's) still imports the image's version.
    server = subprocess.run([sys.executable, "-c", "import mdurl; print(mdurl.__file__)"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert server.stdout.startswith(image_site)


def test_pip_installs_a_new_package_into_the_home_only(
        lab: dict[str, str], tmp_path: Path) -> None:
    make_wheel(tmp_path, "pyrlabtiny", "1.0", {"pyrlabtiny.py": "VALUE = 42\n"})
    done = pip(lab, tmp_path, "pyrlabtiny")
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(layer(lab).glob("lib/python*/site-packages/pyrlabtiny-1.0.dist-info"))
    assert not list(Path(sysconfig.get_path("purelib")).glob("pyrlabtiny*"))
    value = run(lab, "python", "-c", "import pyrlabtiny; print(pyrlabtiny.VALUE)")
    assert value.stdout.strip() == "42", value.stderr


def test_another_image_sharing_the_home_gets_its_own_layer(lab: dict[str, str]) -> None:
    other = {"HOME": lab["HOME"], "PYRLAB_IMAGE": "rlab", "PATH": "/usr/bin:/bin"}
    load_user_env().configure(other)
    assert other["PATH"].startswith(f"{lab['HOME']}/.local/share/pyrlab/rlab/python")
    done = run(other, "python", "-c", "import pyrlabtiny")
    assert done.returncode != 0
    assert "No module named 'pyrlabtiny'" in done.stderr


def test_a_home_that_cannot_hold_the_layer_leaves_the_environment_alone(tmp_path: Path) -> None:
    home = tmp_path / "file-not-folder"
    home.write_text("")
    environ = {"HOME": str(home), "PYRLAB_IMAGE": "pylab", "PATH": "/usr/bin"}
    line = load_user_env().configure(environ)
    assert line.startswith("pyrlab: kernels use the image's environment only")
    assert environ == {"HOME": str(home), "PYRLAB_IMAGE": "pylab", "PATH": "/usr/bin"}
