"""Installs at run time, end to end: a pylab and an rlab (cases/user-installs) share one
mounted home, as a user's labs do, and the user installs packages from inside them.

- pylab: `%pip install` of a small package from a kernel, `pip install` of a prebuilt
  JupyterLab extension in a JupyterLab terminal; both land in the home, survive `down`
  + `up`, and /opt/venv is byte for byte the image's; `inspect --home` lists them; rlab
  does not see them.
- A user "downgrade" of a package the server imports at start (send2trash) that cannot be
  imported: the restarted server runs on the image's copy, kernels see the user's first.
- rlab: install.packages() from the CRAN-like repository the build used, served on
  127.0.0.1, goes to the per-image library in the home and survives `restart`.

The wheels are made by the test and installed from a folder in the home (`--no-index`):
nothing is fetched from the internet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import rrepo
from labclient import LabClient
from labtools import (
    CASES,
    EngineCli,
    Lab,
    container_name,
    free_port,
    make_wheel,
    named,
    new_prefix,
    project_key,
)

pytestmark = pytest.mark.integration

UID, GID = 4242, 4343
HOME = "/home/notebook"
WHEELS = f"{HOME}/wheels"
PIP = f"--no-index --find-links {WHEELS} --disable-pip-version-check"
LAYERS = f"{HOME}/.local/share/pyrlab"
# A digest of every file, link and folder under /opt/venv (names, modes, contents).
VENV_DIGEST = """
import hashlib, os, stat
digest = hashlib.sha256()
for top, folders, files in os.walk("/opt/venv"):
    folders.sort()
    for name in sorted(folders + files):
        path = os.path.join(top, name)
        info = os.lstat(path)
        digest.update(f"{path}\\0{stat.S_IMODE(info.st_mode):o}\\0".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(path).encode())
        elif stat.S_ISREG(info.st_mode):
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
print(digest.hexdigest())
"""
# A prebuilt JupyterLab extension as pip installs one: data files under share/jupyter.
EXTENSION_PACKAGE = json.dumps({
    "name": "pyrlab-test-extension", "version": "1.0.0",
    "jupyterlab": {"extension": True, "_build": {"load": "static/remoteEntry.0.js",
                                                 "extension": "./extension"}}})


@dataclass
class Labs:
    lab: Lab
    engine: EngineCli
    work: Path
    ports: dict[str, int]
    repo_url: str

    def pyrlab(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.lab.pyrlab(*args, timeout=timeout)

    def up(self, image: str) -> LabClient:
        # --allow-unsafe: the case's run_args ask for the host's network (the repository).
        done = self.pyrlab("up", image, "--no-build", "--json", "--allow-unsafe")
        assert done.returncode == 0, done.stdout + done.stderr
        url = urlsplit(json.loads(done.stdout)["url"])
        assert url.port == self.ports[image]
        client = LabClient(f"http://127.0.0.1:{url.port}", parse_qs(url.query)["token"][0])
        client.wait_ready(timeout=120)
        return client

    def down(self, image: str) -> None:
        done = self.pyrlab("down", image)
        assert done.returncode == 0, done.stdout + done.stderr

    def restart(self, image: str) -> LabClient:
        done = self.pyrlab("restart", image, "--json", "--allow-unsafe")
        assert done.returncode == 0, done.stdout + done.stderr
        url = urlsplit(json.loads(done.stdout)["url"])
        client = LabClient(f"http://127.0.0.1:{url.port}", parse_qs(url.query)["token"][0])
        client.wait_ready(timeout=120)
        return client

    def container(self, image: str) -> str:
        return container_name(self.lab.prefix, image, self.ports[image])

    def venv_digest(self, *, container: str | None = None) -> str:
        """/opt/venv's digest in a running lab, or in a fresh container of pylab's image."""
        if container:
            done = self.engine("exec", container, "/opt/venv/bin/python", "-I", "-c",
                               VENV_DIGEST)
        else:
            done = self.engine("run", "--rm", "--network", "none", "--entrypoint",
                               "/opt/venv/bin/python", self.lab.ref("pylab"), "-I", "-c",
                               VENV_DIGEST)
        return done.stdout.strip()

    def inspect_home(self, image: str) -> dict[str, list[dict[str, str]]]:
        done = self.pyrlab("inspect", "--home", "--json", image)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def labs(bootstrapped_bases: Callable[[str], str], host_ca_files: list[Path],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labs]:
    base = bootstrapped_bases("docker")  # fails in CI (skips elsewhere) without an engine
    binary = shutil.which("docker")
    assert binary is not None
    engine = EngineCli("docker", binary)
    tmp = tmp_path_factory.mktemp("user-installs")
    root = tmp / "lab"
    # Notebooks and home in the project folder (outside it: --allow-unsafe or a user file).
    work = root / "work"
    for folder in ("notebooks", "home"):
        (work / folder).mkdir(parents=True)
        os.chown(work / folder, UID, GID)
    wheels = work / "home" / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "pyrlabtiny", "1.0", {"pyrlabtiny.py": "VALUE = 'tiny 1.0'\n"})
    make_wheel(wheels, "pyrlab_test_extension", "1.0", {
        "pyrlab_test_extension/__init__.py": "",
        "pyrlab_test_extension-1.0.data/data/share/jupyter/labextensions/"
        "pyrlab-test-extension/package.json": EXTENSION_PACKAGE})
    # A "downgrade" of a package the server imports at start, which cannot be imported.
    make_wheel(wheels, "send2trash", "0.1", {
        "send2trash/__init__.py": "raise ImportError('the user\\'s send2trash 0.1')\n"})
    repo = rrepo.make_repo(tmp / "cran", {"pyrlabextra": ["0.3"]})
    ports = {"pylab": free_port(), "rlab": free_port()}
    prefix = new_prefix()
    shutil.copytree(CASES / "user-installs", root, dirs_exist_ok=True)
    with rrepo.serve(repo) as (url, _):
        config = root / "pyrlab.toml"
        text = config.read_text()
        for key, value in {"PREFIX": prefix, "BASE_IMAGE": base, "CRAN_URL": url,
                           "CA_FILES": json.dumps([str(p) for p in host_ca_files]),
                           "PYLAB_PORT": str(ports["pylab"]), "RLAB_PORT": str(ports["rlab"]),
                           "WORK": str(work), "UID": str(UID), "GID": str(GID)}.items():
            text = text.replace(f"@{key}@", value)
        config.write_text(named(text, prefix))
        lab = Lab(root=root, prefix=prefix, engine_name="docker")
        try:
            started = time.monotonic()
            built = lab.pyrlab("build", "pylab", "rlab", timeout=3600)
            assert built.returncode == 0, built.stdout + built.stderr
            print(f"\npylab and rlab built in {time.monotonic() - started:.0f} s")
            yield Labs(lab, engine, work, ports, url)
        finally:
            lab.pyrlab("down", "--all", timeout=300)
            engine.remove_project(project_key(root), prefix)


def run_ok(client: LabClient, code: str, kernel: str = "python3", timeout: float = 300) -> str:
    with client.kernel(kernel) as k:
        done = k.execute(code, timeout=timeout)
        assert done.ok, done.describe()
        return done.stdout


def federated_extensions(client: LabClient) -> list[str]:
    """The prebuilt extensions the lab page tells the browser to load."""
    status, page = client.request("GET", "/lab")
    assert status == 200
    start = page.index('<script id="jupyter-config-data" type="application/json">')
    data = json.loads(page[page.index(">", start) + 1:page.index("</script>", start)])
    return sorted(e["name"] for e in data["federated_extensions"])


def test_pip_installs_in_pylab_persist_in_the_home_and_leave_the_image_alone(labs: Labs) -> None:
    image_digest = labs.venv_digest()
    client = labs.up("pylab")
    try:
        spec = client.json("GET", "/api/kernelspecs")["kernelspecs"]["python3"]["spec"]
        layer = spec["argv"][0].removesuffix("/bin/python")
        # Per project and image (the project is named for the prefix).
        assert layer.startswith(f"{LAYERS}/{labs.lab.prefix}pylab/python3."), spec
        out = run_ok(client, f"%pip install {PIP} pyrlabtiny\n"
                             "import pyrlabtiny; print(pyrlabtiny.VALUE, pyrlabtiny.__file__)")
        assert out.splitlines()[-1] == \
            f"tiny 1.0 {layer}/lib/{layer.rsplit('/', 1)[1]}/site-packages/pyrlabtiny.py", out
        # pip in a terminal: a JupyterLab extension.
        out = client.terminal(f"pip install {PIP} pyrlab_test_extension && command -v pip")
        assert re.search(r"Successfully installed pyrlab[-_]test[-_]extension-1\.0", out), out
        assert f"{layer}/bin/pip\r\n" in out, out
        assert labs.venv_digest(container=labs.container("pylab")) == image_digest
    finally:
        labs.down("pylab")
    home = labs.work / "home"
    assert (home / layer.removeprefix(f"{HOME}/")).is_dir()

    client = labs.up("pylab")
    try:
        out = run_ok(client, "import pyrlabtiny; print(pyrlabtiny.VALUE)")
        assert out == "tiny 1.0\n"
        assert "pyrlab-test-extension" in federated_extensions(client)
        assert labs.venv_digest(container=labs.container("pylab")) == image_digest
    finally:
        labs.down("pylab")
    assert labs.venv_digest() == image_digest
    added = {p["name"]: p["version"] for p in labs.inspect_home("pylab")["python"]}
    assert added == {"pyrlabtiny": "1.0", "pyrlab-test-extension": "1.0"}

    # rlab shares the home, not the packages.
    client = labs.up("rlab")
    try:
        out = run_ok(client, "import importlib.util as u; print(u.find_spec('pyrlabtiny'))")
        assert out == "None\n"
        assert "pyrlab-test-extension" not in federated_extensions(client)
    finally:
        labs.down("rlab")
    assert labs.inspect_home("rlab")["python"] == []


def test_a_user_downgrade_of_a_server_package_reaches_kernels_not_the_server(
        labs: Labs) -> None:
    client = labs.up("pylab")
    try:
        out = run_ok(client, f"%pip install {PIP} send2trash==0.1")
        assert "Not uninstalling send2trash" in out, out  # the image's copy stays
        # The server imports send2trash when it starts (its contents manager): it starts
        # and serves files, on the image's copy.
        client = labs.restart("pylab")
        assert client.request("GET", "/api/contents")[0] == 200
        with client.kernel() as kernel:
            failed = kernel.execute("import send2trash")
            assert not failed.ok
            assert "the user's send2trash 0.1" in failed.describe()  # user's first in kernels
        # Uninstalling removes the user's copy only: kernels are back on the image's.
        out = run_ok(client, "%pip uninstall --yes send2trash\n"
                             "import send2trash; print(send2trash.__file__)")
        assert out.splitlines()[-1].startswith("/opt/venv/"), out
    finally:
        labs.down("pylab")


def test_install_packages_in_rlab_goes_to_the_home_and_survives_a_restart(labs: Labs) -> None:
    client = labs.up("rlab")
    try:
        out = run_ok(client, 'install.packages("pyrlabextra")\n'
                             'library(pyrlabextra)\ncat(find.package("pyrlabextra"), "\\n")',
                     kernel="ir")
        library = out.strip().splitlines()[-1].strip()
        assert library.startswith(f"{LAYERS}/{labs.lab.prefix}rlab/R/"), out
        client = labs.restart("rlab")
        out = run_ok(client, 'library(pyrlabextra)\ncat(find.package("pyrlabextra"), "\\n")',
                     kernel="ir")
        assert out.strip() == library
    finally:
        labs.down("rlab")
    added = labs.inspect_home("rlab")["r"]
    assert [(p["name"], p["version"]) for p in added] == [("pyrlabextra", "0.3")]
    assert labs.inspect_home("pylab")["r"] == []

