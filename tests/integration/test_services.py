"""Every named port of a lab, for real: `pyrlab url` and `pyrlab ps` list each one as a
URL, and a TensorBoard started from the lab's kernel, the way `%tensorboard` starts it,
answers on the host at the URL `url` printed (cases/services: JupyterLab and TensorBoard;
the ports lab, tensorboard and dtale).

TensorBoard alone listens on localhost inside the container, which no published port
reaches: the image's defaults (/opt/pyrlab/bin/tensorboard first on PATH) make it listen
on every interface and on the image's tensorboard port. Everything is asked from the host
on 127.0.0.1.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from labclient import LabClient
from labtools import EngineCli, Lab, free_port, project_key

pytestmark = pytest.mark.integration

ENGINE = "docker"

# In the kernel: what `%tensorboard --logdir …` does (tensorboard.notebook.start runs
# tensorboard.manager.start, which runs `tensorboard` from PATH and waits for it to say
# where it serves), on an empty log folder.
START_TENSORBOARD = """
import tempfile
from tensorboard import manager
logdir = tempfile.mkdtemp(prefix="runs-")
started = manager.start(["--logdir", logdir])
print(type(started).__name__, getattr(getattr(started, "info", None), "port", None))
print(started if not hasattr(started, "info") else "")
"""


@dataclass
class ServicesLab:
    lab: Lab
    engine: EngineCli
    ports: dict[str, int]
    url: str  # what `up` printed

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.url).query)["token"][0]


def remove_containers(lab: Lab, engine: EngineCli) -> None:
    """Whatever a failed test left: the project's containers, by its label."""
    engine.remove_containers(f"org.pyrlab.project={project_key(lab.root)}")


@pytest.fixture(scope="module")
def running(get_engine: Callable[[str], EngineCli],
            make_module_lab: Callable[..., Lab]) -> Iterator[ServicesLab]:
    engine = get_engine(ENGINE)
    ports = {"lab": free_port(), "tensorboard": free_port(), "dtale": free_port()}
    # Notebooks and home in the project folder (outside it: --allow-unsafe or a user file).
    lab = make_module_lab("services", ENGINE, WORK="work",
                          **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    try:
        up = lab.pyrlab("up", "pylab", "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        yield ServicesLab(lab, engine, ports, json.loads(up.stdout)["url"])
    finally:
        lab.pyrlab("down", "--all", timeout=300)
        remove_containers(lab, engine)


def test_url_lists_every_named_port(running: ServicesLab) -> None:
    ports = running.ports
    done = running.lab.pyrlab("url", "pylab")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        running.url,
        f"tensorboard: http://127.0.0.1:{ports['tensorboard']}/",
        f"dtale: http://127.0.0.1:{ports['dtale']}/",
    ]
    data = json.loads(running.lab.pyrlab("url", "pylab", "--json").stdout)
    assert [(s["name"], s["port"]) for s in data["services"]] == [
        ("lab", ports["lab"]), ("tensorboard", ports["tensorboard"]), ("dtale", ports["dtale"])]


def test_ps_lists_every_named_port(running: ServicesLab) -> None:
    ports = running.ports
    done = running.lab.pyrlab("ps")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0] == ["IMAGE", "STATUS", "UPTIME", "URL", "PORTS"]
    assert rows[1][0] == "pylab"
    assert rows[1][-2:] == [f"http://127.0.0.1:{ports['lab']}/lab",
                            f"127.0.0.1:{ports['lab']}->{ports['lab']}"]
    assert rows[2:] == [[name, f"http://127.0.0.1:{ports[name]}/",
                         f"127.0.0.1:{ports[name]}->{ports[name]}"]
                        for name in ("tensorboard", "dtale")]
    listed = json.loads(running.lab.pyrlab("ps", "--json").stdout)[0]
    assert [s["url"] for s in listed["services"]] == [
        f"http://127.0.0.1:{ports['lab']}/lab", f"http://127.0.0.1:{ports['tensorboard']}/",
        f"http://127.0.0.1:{ports['dtale']}/"]


def test_tensorboard_started_in_the_lab_answers_on_the_host(running: ServicesLab) -> None:
    urls = json.loads(running.lab.pyrlab("url", "pylab", "--json").stdout)["services"]
    board = next(s["url"] for s in urls if s["name"] == "tensorboard")
    client = LabClient(f"http://127.0.0.1:{running.ports['lab']}", running.token)
    with client.kernel("python3") as kernel:
        out = kernel.execute(START_TENSORBOARD, timeout=180)
        assert out.ok, out.describe()
        # Started on the image's tensorboard port, with no --port or --bind_all given.
        assert out.stdout.split()[:2] == ["StartLaunched", str(running.ports["tensorboard"])], \
            out.describe()
        # From the host, at the URL `pyrlab url` printed: TensorBoard serves that logdir.
        with urllib.request.urlopen(board + "data/environment", timeout=30) as response:
            assert response.status == 200
            environment = json.loads(response.read())
        assert Path(environment["data_location"]).name.startswith("runs-"), environment
