"""What every lab has without asking, and what two config keys add, checked in one real
lab (cases/lab-defaults): JupyterLab's news prompt is off (its settings REST API), a
`[base] locale` other than C.UTF-8 is generated and active in the kernel, and
`run.sudo = true` gives the lab's user (a UID the image does not know) sudo, while the same
image started without run.sudo refuses it. pyrlab runs with its global options before the
verb (`pyrlab -C DIR --set … up pylab`), as its hints print them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from labclient import LabClient
from labtools import Lab, checked_engine, free_port, project_key, run_pyrlab

pytestmark = pytest.mark.integration

UID, GID = 4242, 4343  # no passwd or group entry in the image
NEWS = "/lab/api/settings/@jupyterlab/apputils-extension:notification"


@dataclass
class DefaultsLab:
    lab: Lab
    port: int
    token: str

    def pyrlab(self, *args: str) -> subprocess.CompletedProcess[str]:
        """pyrlab with -C before the verb."""
        return run_pyrlab("-C", str(self.lab.root), *args, timeout=1800)

    @property
    def client(self) -> LabClient:
        return LabClient(f"http://127.0.0.1:{self.port}", self.token)


@pytest.fixture(scope="module")
def lab(make_module_lab: Callable[..., Lab]) -> Iterator[DefaultsLab]:
    port = free_port()
    # Notebooks and home in the project folder (outside it: --allow-unsafe or a user file).
    made = make_module_lab("lab-defaults", "docker", LAB_PORT=str(port), WORK="work",
                           UID=str(UID), GID=str(GID))
    running = DefaultsLab(made, port, "")
    engine = checked_engine("docker")
    try:
        up = running.pyrlab("up", "pylab", "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        running.token = json.loads(up.stdout)["url"].split("token=", 1)[1]
        yield running
    finally:
        down = running.pyrlab("down", "--all")
        engine.remove_containers(f"org.pyrlab.project={project_key(made.root)}")
        assert down.returncode == 0, down.stdout + down.stderr


def test_the_jupyter_news_prompt_is_off(lab: DefaultsLab) -> None:
    setting = lab.client.json("GET", NEWS)
    default = setting["schema"]["properties"]["fetchNews"]["default"]
    assert default == "false"  # the environment's overrides.json, not the schema's "none"
    assert setting["settings"].get("fetchNews", default) == "false"  # nobody changed it


def test_the_locale_is_active_in_the_kernel(lab: DefaultsLab) -> None:
    with lab.client.kernel() as kernel:
        done = kernel.execute(
            "import json, locale, os\n"
            "locale.setlocale(locale.LC_ALL, '')\n"
            "print(json.dumps([locale.getlocale(), os.environ['LANG'], os.environ['LC_ALL'],\n"
            "                  locale.localeconv()['decimal_point']]))")
    assert done.ok, done.describe()
    assert json.loads(done.stdout) == [["de_DE", "UTF-8"], "de_DE.UTF-8", "de_DE.UTF-8", ","]


def test_sudo_works_for_the_lab_user(lab: DefaultsLab) -> None:
    shell = lab.pyrlab("shell", "pylab", "--", "sh", "-c", "id -u; id -un; sudo -n id -u")
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert shell.stdout.split() == [str(UID), f"notebook-{UID}", "0"]
    # The same from a notebook: what the kernel runs is the lab's user too.
    with lab.client.kernel() as kernel:
        done = kernel.execute("import subprocess\n"
                              "print(subprocess.run(['sudo', '-n', 'id', '-u'], text=True,\n"
                              "                     capture_output=True).stdout)")
    assert done.ok and done.stdout.strip() == "0", done.describe()


def test_without_run_sudo_the_same_image_refuses_sudo(lab: DefaultsLab) -> None:
    port = free_port()
    # --no-build: run.sudo = false would rebuild without sudo; the point is the run time.
    up = lab.pyrlab("--set", "run.sudo=false", "up", "pylab", "--no-build", "--port", str(port))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        shell = lab.pyrlab("--set", "run.sudo=false", "shell", "--port", str(port), "pylab",
                           "--", "sudo", "-n", "true")
        assert shell.returncode != 0
        assert "no new privileges" in shell.stderr, shell.stderr
    finally:
        down = lab.pyrlab("down", "pylab", "--port", str(port))
        assert down.returncode == 0, down.stdout + down.stderr
