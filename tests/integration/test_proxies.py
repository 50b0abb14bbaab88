"""Proxies for real: Debian's apt-cacher-ng and devpi-server on 127.0.0.1, a lab built
through them (with host networking, which pyrlab turns on because the proxies are local),
and their logs and caches showing that the packages went through them.

The build itself never reaches PyPI over TLS (the lab has no extra CA certificates): where
TLS is intercepted, a pip or uv request that bypassed devpi would fail the build.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labtools import free_port, stop_process

from pyrlab.baseimage import DEFAULT_MIRROR, host_mirror

pytestmark = pytest.mark.integration

ENGINE = "docker"
ACNG = Path("/usr/sbin/apt-cacher-ng")
ACNG_INIT = Path("/etc/init.d/apt-cacher-ng")
ACNG_BACKENDS = Path("/etc/apt-cacher-ng/backends_debian")
ACNG_LOG = Path("/var/log/apt-cacher-ng/apt-cacher.log")
ACNG_CACHE = Path("/var/cache/apt-cacher-ng")
ACNG_PORT = 3142
DEVPI_VENV = Path(os.environ.get("PYRLAB_TEST_DEVPI_VENV",
                                 Path.home() / ".cache" / "pyrlab-tests" / "devpi"))

EngineCli = Any  # conftest's (not importable here: tests/unit has a conftest too)
Lab = Any


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: integration tests must run here)")
    pytest.skip(message)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {seconds:.0f}s")
        time.sleep(0.5)


@dataclass
class AptCacher:
    url: str
    log_offset: int  # the log's size before the tests: what follows is theirs

    def new_log(self) -> str:
        if not ACNG_LOG.exists():
            return ""
        with ACNG_LOG.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def cached(self, pattern: str) -> list[Path]:
        return sorted(ACNG_CACHE.rglob(pattern))


@pytest.fixture(scope="module")
def apt_cacher() -> Iterator[AptCacher]:
    """Debian's apt-cacher-ng on 127.0.0.1:3142 with the host's mirror as its Debian
    backend (its default upstream name does not resolve everywhere). Started if it was not
    running (and stopped after); its backend file is restored after."""
    if not ACNG.exists() or not ACNG_INIT.exists():
        unavailable("apt-cacher-ng is not installed (apt-get install apt-cacher-ng)")
    if os.geteuid() != 0:
        unavailable("configuring apt-cacher-ng needs root")
    mirror = (host_mirror() or DEFAULT_MIRROR).rstrip("/") + "/\n"
    original = ACNG_BACKENDS.read_text() if ACNG_BACKENDS.exists() else None
    was_running = port_open(ACNG_PORT)
    if original != mirror:
        ACNG_BACKENDS.write_text(mirror)
        if was_running:
            subprocess.run([str(ACNG_INIT), "restart"], check=True, capture_output=True)
    if not port_open(ACNG_PORT):
        subprocess.run([str(ACNG_INIT), "start"], check=True, capture_output=True)
    wait_for(lambda: port_open(ACNG_PORT), "apt-cacher-ng")
    offset = ACNG_LOG.stat().st_size if ACNG_LOG.exists() else 0
    yield AptCacher(f"http://127.0.0.1:{ACNG_PORT}", offset)
    if original is not None and original != mirror:
        ACNG_BACKENDS.write_text(original)
    if not was_running:
        subprocess.run([str(ACNG_INIT), "stop"], check=False, capture_output=True)
    elif original != mirror:
        subprocess.run([str(ACNG_INIT), "restart"], check=False, capture_output=True)


@dataclass
class Devpi:
    index: str  # the +simple URL of its PyPI mirror
    log: Path
    serverdir: Path

    def files(self, pattern: str) -> list[Path]:
        return sorted(self.serverdir.rglob(pattern))


def devpi_server() -> Path:
    """devpi-server from its own virtual environment (made here once when missing)."""
    server = DEVPI_VENV / "bin" / "devpi-server"
    if not server.exists():
        shutil.rmtree(DEVPI_VENV, ignore_errors=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(DEVPI_VENV)],
                              capture_output=True, text=True, check=False)
        installed = made.returncode == 0 and subprocess.run(
            [str(DEVPI_VENV / "bin" / "pip"), "install", "--quiet", "devpi-server"],
            capture_output=True, text=True, timeout=600, check=False).returncode == 0
        if not installed:
            unavailable(f"cannot install devpi-server into {DEVPI_VENV}")
    return server


@pytest.fixture(scope="module")
def devpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devpi]:
    """A fresh devpi-server (its PyPI mirror root/pypi) on a free port of 127.0.0.1: a new
    index URL each run, so no download cache of an earlier run can answer for it."""
    server = devpi_server()
    work = tmp_path_factory.mktemp("devpi")
    serverdir, log = work / "server", work / "devpi.log"
    init = subprocess.run([str(server.parent / "devpi-init"), "--serverdir", str(serverdir)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(server), "--serverdir", str(serverdir), "--host", "127.0.0.1",
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            assert process.poll() is None, f"devpi-server exited:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/+api", timeout=2):
                    return True
            except OSError:
                return False

        wait_for(answers, "devpi-server", 120)
        yield Devpi(f"http://127.0.0.1:{port}/root/pypi/+simple/", log, serverdir)
    finally:
        stop_process(process)


def proxy_block(**values: str) -> str:
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in values.items())


def leftover_proxy_settings(engine: EngineCli, ref: str) -> str:
    """Whatever in the image still names a proxy (there must be nothing)."""
    done = engine("run", "--rm", ref, "sh", "-c",
                  "grep -rs -e 3142 -e 3141 -e 127.0.0.1 /etc/apt /etc/pip.conf "
                  "/etc/xdg/pip /root/.config 2>/dev/null; env | grep -i proxy; true")
    return done.stdout


@pytest.fixture(scope="module")
def engine(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


def test_apt_and_pip_packages_come_through_the_proxies(
        make_module_lab: Callable[..., Lab], engine: EngineCli, apt_cacher: AptCacher,
        devpi: Devpi) -> None:
    lab = make_module_lab("proxies", ENGINE, PROXY=proxy_block(
        apt=apt_cacher.url, pip_index=devpi.index))
    done = lab.pyrlab("build", "--json")
    assert done.returncode == 0, done.stderr
    assert f"builds use host networking: a proxy is on this host (127.0.0.1:{ACNG_PORT})" \
        in done.stderr
    # apt: this build asked apt-cacher-ng for trixie's indexes (apt asks for them every
    # time), in the part of its log written during this run.
    log = apt_cacher.new_log()
    assert "dists/trixie/" in log, log[-2000:]
    # hello: when apt downloaded it in this build (an earlier run may have left it in the
    # build's apt cache), the download went through apt-cacher-ng in this run too.
    build_log = Path(str(json.loads(done.stdout)["images"][0]["log"])).read_text()
    if any(line.startswith("Get:") and " hello " in line
           for line in (entry.split(" ", 2)[-1] for entry in build_log.splitlines())):
        assert "hello_" in log, log[-2000:]
    assert apt_cacher.cached("hello_*.deb"), "hello was never fetched through apt-cacher-ng"
    # uv (six, in pylab) through devpi; and pip, when this build had to fetch uv itself
    # (once per machine: uv then stays in the build's uv cache).
    devpi_log = devpi.log.read_text()
    assert "/root/pypi/+simple/six/" in devpi_log, devpi_log[-2000:]
    assert devpi.files("six-*.whl")
    pylab_log = Path(str(json.loads(done.stdout)["images"][1]["log"])).read_text()
    if "pyrlab: fetching uv" in pylab_log:
        assert "/root/pypi/+simple/uv/" in devpi_log, devpi_log[-2000:]
        assert devpi.files("uv-*.whl")
    engine("run", "--rm", lab.ref("pyrlab-base"), "hello")
    engine("run", "--rm", lab.ref("pylab"), "python", "-c", "import six")
    # The proxies were for the build only: the images do not keep them.
    assert leftover_proxy_settings(engine, lab.ref("pylab")) == ""


def test_http_proxy_and_no_proxy_reach_the_build(
        make_module_lab: Callable[..., Lab], engine: EngineCli, apt_cacher: AptCacher,
        devpi: Devpi) -> None:
    """HTTP_PROXY/NO_PROXY from the config are build args: apt (no apt proxy configured)
    goes through HTTP_PROXY, pip reaches the local index directly thanks to NO_PROXY."""
    lab = make_module_lab("proxies", ENGINE, name="http-proxy", PROXY=proxy_block(
        http_proxy=apt_cacher.url, no_proxy="127.0.0.1,localhost", pip_index=devpi.index))
    before = len(apt_cacher.new_log())
    done = lab.pyrlab("build", "pyrlab-base")
    assert done.returncode == 0, done.stderr
    assert "dists/trixie/" in apt_cacher.new_log()[before:], "apt did not use HTTP_PROXY"
    rendered = lab.pyrlab("render", "pyrlab-base", "-o", str(lab.root / "rendered"))
    assert rendered.returncode == 0, rendered.stderr
    net = lab.root / "rendered" / "pyrlab-base" / "pyrlab" / "net"
    assert not (net / "apt-proxy.conf").exists()  # so apt really used the build arg
    assert leftover_proxy_settings(engine, lab.ref("pyrlab-base")) == ""
