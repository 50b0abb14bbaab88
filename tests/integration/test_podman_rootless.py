"""A lab's whole cycle with rootless Podman, as an ordinary user: the test makes a user of
its own (with subordinate IDs, as Debian's useradd gives them), hands it a copy of pyrlab
and of a small lab (cases/podman-run), and runs, as that user, `pyrlab bootstrap` (the
base, the same image as root's Docker bootstrap from the same mirror state), `pyrlab up`
(which builds), `pyrlab test`, `pyrlab down` and
`pyrlab clean`. The lab runs as UID 4242 / GID 4343, and what it writes into its mounted
home folder belongs to the user on the host. At the end the user's Podman storage and the
user go.

It needs root (to create the user), Podman with uidmap and slirp4netns, and a
/dev/net/tun that users may open (`.ci/setup-host.sh --tests` prepares that).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labclient import LabClient
from labtools import EngineCli, container_name, copy_case, engine_unavailable, free_port, new_prefix
from packaging.requirements import Requirement

import pyrlab

pytestmark = pytest.mark.integration

UID, GID = 4242, 4343  # the lab's, inside the container


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path
    env: dict[str, str]
    python: str = ""  # an interpreter of this Python version the user may run

    def run(self, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, user=self.uid, group=self.gid, extra_groups=[],
                              cwd=self.home, env=self.env)

    def pyrlab(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.run(self.python, "-m", "pyrlab", *args, timeout=timeout)

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args, timeout=300)


def copy_pyrlab(dest: Path) -> None:
    """pyrlab's package and every distribution it needs at run time, copied into dest (a
    PYTHONPATH entry the user can read, wherever this checkout and its venv live)."""
    shutil.copytree(Path(pyrlab.__file__).parent, dest / "pyrlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    todo, seen = list(importlib.metadata.requires("pyrlab") or []), set()
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        dist = importlib.metadata.distribution(requirement.name)
        if dist.metadata["Name"].lower() in seen:
            continue
        seen.add(dist.metadata["Name"].lower())
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # scripts in the venv's bin/, stale byte code
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), target)
        todo += dist.requires or []


def user_python(user: User) -> str:
    """This interpreter, or the system's of the same version (the copied distributions may
    hold compiled modules), where the user may not run this one (e.g. under /root)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/python{version}"):
        try:
            done = user.run(candidate, "-c", "import sys; print(*sys.version_info[:2], sep='.')",
                            timeout=60)
        except OSError:  # not there, or not the user's to run
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    pytest.skip(f"no Python {version} that an ordinary user may run")
    return ""


def add_subordinate_ids(name: str) -> None:
    """Give the user 65536 subordinate UIDs and GIDs where useradd gave none (a host whose
    login.defs asks for none): the range after the highest one handed out."""
    files = [Path("/etc/subuid"), Path("/etc/subgid")]
    texts = [f.read_text() if f.exists() else "" for f in files]
    if all(any(line.split(":")[0] == name for line in t.splitlines()) for t in texts):
        return
    ends = [int(start) + int(count) for t in texts for line in t.splitlines()
            if line.count(":") == 2 for _, start, count in [line.split(":")]]
    first = max([100000, *ends])
    span = f"{first}-{first + 65535}"
    subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name],
                   check=True, capture_output=True)


def stop_processes(uid: int) -> None:
    """What the user's Podman left running (its pause process, conmon), by process ID."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uids = next(line for line in status.read_text().splitlines()
                        if line.startswith("Uid:")).split()[1:]
            if str(uid) in uids:
                os.kill(int(status.parent.name), signal.SIGKILL)
        except (OSError, StopIteration):
            pass  # gone meanwhile


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    """A fresh ordinary user with subordinate IDs, its home in a folder of its own under
    /tmp, and a copy of pyrlab there; removed afterwards with all its Podman storage."""
    if os.geteuid() != 0:
        pytest.skip("creates a user of its own: run as root")
    if shutil.which("podman") is None or shutil.which("useradd") is None:
        engine_unavailable("rootless Podman needs podman and useradd")
    tun = Path("/dev/net/tun")
    if tun.exists() and tun.stat().st_mode & 0o006 != 0o006:
        pytest.fail("/dev/net/tun is not open to users (as on stock Debian): rootless "
                    "Podman's network cannot start; run `bash .ci/setup-host.sh --tests`")
    name = f"pyrlab-rl-{secrets.token_hex(3)}"
    parent = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    parent.chmod(0o755)
    home = parent / "home"
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh",
                    "--user-group", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    try:
        add_subordinate_ids(name)
        copy_pyrlab(home / "py")
        subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(home)],
                       check=True)
        env = {"HOME": str(home), "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
               "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "PYTHONPATH": str(home / "py")}
        env.update({k: v for k, v in os.environ.items()
                    if k.lower() in ("http_proxy", "https_proxy", "no_proxy")})
        made = User(name, entry.pw_uid, entry.pw_gid, home, env)
        made.python = user_python(made)
        yield made
    finally:
        user = User(name, entry.pw_uid, entry.pw_gid, home,
                    {"HOME": str(home), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
        stop_processes(entry.pw_uid)  # a build or lab a failed test left holds the storage
        try:
            user.podman("system", "reset", "--force")
        except subprocess.TimeoutExpired:
            pass  # what is left goes with the folder below
        stop_processes(entry.pw_uid)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)
        for leftover in (f"/tmp/podman-run-{entry.pw_uid}", f"/tmp/containers-user-{entry.pw_uid}",
                         f"/tmp/storage-run-{entry.pw_uid}"):
            shutil.rmtree(leftover, ignore_errors=True)


def test_rootless_podman_runs_a_lab_from_build_to_clean(
        user: User, get_engine: Callable[[str], EngineCli],
        bootstrapped_bases: Callable[[str], str], host_ca_files: list[Path]) -> None:
    started = time.monotonic()
    # Root's Podman builds leave Buildah 1.28's shared cache folder, root's: where a rootless
    # build put its cache mounts there, apt could not lock its lists.
    Path("/var/tmp/buildah-cache").mkdir(mode=0o755, exist_ok=True)
    # The user bootstraps the base into its own Podman storage (mmdebstrap in unshare
    # mode); from the same mirror state it is the image root's Docker got.
    base = bootstrapped_bases("docker")
    made = user.pyrlab("bootstrap", "--engine", "podman", "--suite", "trixie", "--tag", base)
    assert made.returncode == 0, made.stdout + made.stderr
    docker_base = get_engine("docker").image(base) or {}
    podman_base = json.loads(user.podman("image", "inspect", base).stdout or "[{}]")[0]
    if docker_base.get("Created") == podman_base.get("Created"):  # the same mirror state
        assert podman_base.get("Id", "").removeprefix("sha256:") == \
            str(docker_base.get("Id", "")).removeprefix("sha256:")

    # The lab's folders inside its project: a folder outside would need --allow-unsafe.
    work, port, prefix = user.home / "lab" / "work", free_port(), new_prefix()
    lab = copy_case("podman-run", user.home / "lab", prefix=prefix, engine_name="podman",
                    host_ca_files=host_ca_files, BASE_IMAGE=base, PORT=str(port),
                    WORK=str(work), UID=str(UID), GID=str(GID))
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(lab.root)], check=True)
    project = ["-C", str(lab.root)]

    up = user.pyrlab("up", *project, "pylab", "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "engine: podman" in up.stderr
    url = json.loads(up.stdout)["url"]
    token = url.rsplit("token=", 1)[1]
    client = LabClient(f"http://127.0.0.1:{port}", token)
    assert client.request("GET", "/api/status")[0] == 200
    assert client.request("GET", "/api/status", token=False)[0] == 403
    # The lab ran as 4242:4343 inside; on the host, what it wrote is the user's.
    container = container_name(prefix, "pylab", port)
    assert user.podman("exec", container, "id", "-u").stdout.strip() == str(UID)
    written = list((work / "home").rglob("*"))
    assert written, "the lab wrote nothing into its home folder"
    assert {p.lstat().st_uid for p in written} == {user.uid}, \
        [(str(p), p.lstat().st_uid) for p in written if p.lstat().st_uid != user.uid]

    # The build's cache mounts are the user's own (apt's lists, uv's cache).
    caches = user.home / ".cache" / "pyrlab" / "buildah-tmp" / "buildah-cache"
    assert {"pyrlab-apt-lists", "pyrlab-uv"} <= {p.name for p in caches.iterdir()}

    tested = user.pyrlab("test", *project, "pylab")
    assert tested.returncode == 0, tested.stdout + tested.stderr

    down = user.pyrlab("down", *project, "--all")
    assert down.returncode == 0, down.stderr
    assert user.podman("container", "exists", container).returncode == 1

    clean = user.pyrlab("clean", *project, "--engine", "podman")
    assert clean.returncode == 0, clean.stderr
    refs = user.podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert not [r for r in refs if r.removeprefix("localhost/").startswith(prefix)], refs
    print(f"rootless cycle: {time.monotonic() - started:.0f} s")
