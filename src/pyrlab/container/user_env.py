"""What the lab's user installs at run time, kept in the mounted home, per project and image
(installed as /opt/pyrlab/user_env.py; run by jupyter_server_config.py when the server
starts). KEY is the image's PYRLAB_IMAGE: PROJECT/IMAGE (IMAGE with bare names).

    ~/.local/share/pyrlab/KEY/pythonX.Y/   a venv layered on the image's /opt/venv
    ~/.local/share/pyrlab/KEY/jupyter/     the python3 kernel spec, run in that venv
    ~/.local/share/pyrlab/KEY/R/X.Y/       R's user library (R_LIBS_USER, image ENV)

The layer is a venv whose site-packages come first and whose `_pyrlab_image.pth` then adds
the image's site-packages: kernels see the user's versions before the image's, and pip,
run by the layer's Python (`%pip`, `pip` in a terminal), installs into the layer, finds the
image's packages installed, and never touches /opt/venv ("Not uninstalling … outside
environment" when the user upgrades one of them). pip's --user cannot do this: a venv
disables the user site, and pip refuses to shadow a venv's package from it.

The server itself keeps running on /opt/venv alone; only the environment of what it starts
(kernels, terminals) gets the layer: PATH, and JUPYTER_PATH for the kernel spec and for
prebuilt JupyterLab extensions the user installs (read at the next server start).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import venv
from pathlib import Path

PTH = "_pyrlab_image.pth"
PIP_SCRIPT = '#!/bin/sh\n# pyrlab: pip of this layer\nexec "$(dirname "$0")/python" -m pip "$@"\n'


def layer_root(home: Path, image: str) -> Path:
    return home / ".local" / "share" / "pyrlab" / image


def python_layer(root: Path) -> Path:
    """Per Python version: a rebuild on a newer Python starts an empty layer."""
    return root / f"python{sys.version_info[0]}.{sys.version_info[1]}"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write when different, so that a read-only but correct layer is fine."""
    if path.is_file() and path.read_text() == text:
        return
    path.write_text(text)
    path.chmod(mode)


def ensure_python_layer(layer: Path, image_site: str) -> None:
    if not (layer / "pyvenv.cfg").is_file():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(layer)
    site = layer / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    # addsitedir, not a plain path line: the image's own .pth files must be processed too.
    _write(site / PTH, f"import site; site.addsitedir({image_site!r})\n")
    for name in ("pip", "pip3"):
        if not (layer / "bin" / name).exists():
            _write(layer / "bin" / name, PIP_SCRIPT, 0o755)


def ensure_kernel_spec(root: Path, layer: Path, image_kernel: Path) -> Path:
    """The python3 kernel spec, run by the layer's Python (the image's spec says "python",
    which Jupyter replaces with the server's own interpreter). Returns its jupyter dir."""
    jupyter = root / "jupyter"
    spec_dir = jupyter / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    source = image_kernel / "kernel.json"
    spec = json.loads(source.read_text()) if source.is_file() else {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}
    spec["argv"] = [str(layer / "bin" / "python"), *spec["argv"][1:]]
    for logo in sorted(image_kernel.glob("logo-*")) if image_kernel.is_dir() else []:
        if not (spec_dir / logo.name).exists():
            shutil.copyfile(logo, spec_dir / logo.name)
    _write(spec_dir / "kernel.json", json.dumps(spec, indent=1) + "\n")
    return jupyter


def configure(environ: dict[str, str] | os._Environ[str]) -> str:
    """Make the layer of environ's PYRLAB_IMAGE under its HOME and point what the server
    starts at it. Returns a line for the server's log."""
    image = environ.get("PYRLAB_IMAGE", "")
    home = environ.get("HOME", "")
    if not image or not home:
        return "pyrlab: no PYRLAB_IMAGE or HOME: run-time installs go nowhere"
    root = layer_root(Path(home), image)
    layer = python_layer(root)
    try:
        ensure_python_layer(layer, sysconfig.get_path("purelib"))
        jupyter = ensure_kernel_spec(
            root, layer, Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3")
    except OSError as error:
        return f"pyrlab: kernels use the image's environment only ({layer}: {error})"
    environ["PATH"] = os.pathsep.join([str(layer / "bin"), environ.get("PATH", "")])
    jupyter_path = [str(jupyter), str(layer / "share" / "jupyter")]
    if environ.get("JUPYTER_PATH"):
        jupyter_path.append(environ["JUPYTER_PATH"])
    environ["JUPYTER_PATH"] = os.pathsep.join(jupyter_path)
    return f"pyrlab: run-time installs go to {root}"
