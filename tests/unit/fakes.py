"""The unit tests' fake engine and the lab it builds (tests/unit/conftest.py injects the
engine: the `engine` and `use_engine` fixtures).

Also the canned answers the fake's containers give for `outdated` and `upgrade`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyrlab import proc
from pyrlab.contents.dependencies import requires_command
from pyrlab.dockerfile.render import MANIFEST_PATH, META_FILE
from pyrlab.engines.base import (
    BuildOutput,
    BuildRequest,
    Engine,
    ImageInfo,
    RunRequest,
    push_refusal,
)
from pyrlab.engines.docker import BuildKitOutput
from pyrlab.errors import EngineError, RegistryError
from pyrlab.imagebuild.planner import LABEL_DELTA_DEPTH, LABEL_PARENT_ID

TOML = """\
name = "t"  # its images are t/IMAGE, as the prefix names them with bare names
prefix = "t/"
[base]
image = "t/debian:trixie"
python = "debian"
debs = []

[images.pyrlab-base]

[images.pylab]
from = "pyrlab-base"
requirements = ["requirements.txt"]

[images.pylab-torch]
from = "pylab"
requirements = ["torch.txt"]

[images.other]
from = "pyrlab-base"
requirements = ["other.txt"]
"""
FILES: dict[str, str | bytes] = {
    "pyrlab.toml": TOML,
    "requirements.txt": "six\n",
    "torch.txt": "packaging\n",
    "other.txt": "idna\n",
}
BASE_ID = "b" * 64
BASE_REF = "t/debian:trixie"  # TOML's base image
ARM_BASE_ID = "a" * 64  # the base for linux/arm64 in the registry of the `two` fixture
ORDER = ["pyrlab-base", "pylab", "pylab-torch", "other"]  # FILES' images, as in TOML
DIGEST = "sha256:" + "ab" * 32  # what every push stores


def foreign_digest(image_id: str) -> str:
    """What FakeEngine.push answers for an image of another platform than its own."""
    return "sha256:" + hashlib.sha256(image_id.encode()).hexdigest()


class FakeEngine(Engine):
    """The unit tests' one engine, in memory.

    Images: `images` (ID → labels) and `refs` (tag → ID); by default the base image the
    FILES lab builds on. A build fails when a list says `broken`; each image gets a
    manifest as its inventory step would write it: the parent's Python distributions plus
    the image's requirements, at `versions` (default "1.0").
    Containers: `containers` (name → as `container inspect` shows it), started by `run`;
    `exec` answers as container/selftest.py would.
    Registries: `push` refuses refs under `refuse` the way a registry would (another
    platform's image gets a digest of its own, DIGEST the others), `push_index` too, and
    records each index in `indexes`; `pull` takes
    images from `registry` (ref → ID), and for another platform from `registry_platforms`
    ((ref, platform) → ID), moving the ref as Docker 20.10 does. `load` reads an archive
    as `docker load` does (its image configuration's ID and architecture).
    `name` is what `describe` shows ("docker" where a test reads an engine's own words).
    Its own platform (`platform()`, and its images' unless `image_platforms` names another)
    is `host_platform`: linux/amd64."""

    def __init__(self, name: str = "fake", *, tags: Mapping[str, str] | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.deltas: list[str] = []  # images built as a layer on their previous version
        self.added: list[str] = []  # a delta's pyrlab/python/added.txt, per delta build
        self.reads: list[str] = []  # image IDs whose manifest was read
        self.refs: dict[str, str] = dict({BASE_REF: BASE_ID} if tags is None else tags)
        self.images: dict[str, dict[str, str]] = {i: {} for i in self.refs.values()}  # → labels
        self.parents: dict[str, str] = {}  # id → parent id
        self.built: list[str] = []  # image names, in the order their builds finished
        # (image name, platform, --cache-from refs) of every finished build
        self.cache_from: list[tuple[str, str, tuple[str, ...]]] = []
        self.contexts: list[Path] = []  # the context folder of every build
        self.counter = 0
        self.delay = 0.0
        self.running = 0
        self.max_running = 0
        self.manifests: dict[str, bytes] = {}  # id → MANIFEST_PATH's content
        self.versions: dict[str, str] = {}  # Python distribution → the version it gets
        self.build_args: list[dict[str, str]] = []  # of every build
        self.runs: list[RunRequest] = []  # every container started
        self.execs: list[tuple[str, tuple[str, ...]]] = []  # (container, command)
        self.containers: dict[str, dict[str, Any]] = {}  # name → its `container inspect`
        self.calls: list[tuple[str, ...]] = []  # ("stop"|"rm", name), ("pull"|"tag", …)
        self.log_text = ""  # what `logs` answers
        self.refuse = ""  # a push of a ref starting with this is refused
        self.pushed: list[str] = []
        self.indexes: list[tuple[str, dict[str, str]]] = []  # (ref, {platform: digest})
        self.registry: dict[str, str] = {}  # what `pull` can fetch: ref → image ID
        # What `pull --platform P` fetches: (ref, P) → image ID.
        self.registry_platforms: dict[tuple[str, str], str] = {}
        self.image_platforms: dict[str, str] = {}  # image ID → its platform, if not the host's
        self.broken_imports: dict[str, str] = {}  # distribution or module → its error
        self.unbroken: set[str] = set()  # image IDs where nothing in broken_imports fails
        self.modules: dict[str, list[str]] = {}  # distribution → its top-level modules
        self.requires: dict[str, list[str]] = {}  # distribution → its Requires-Dist
        self.dependencies: dict[str, str] = {}  # unlisted distributions in every image
        self.pins: list[tuple[str, str, str]] = []  # (image, pins file, its text) per build
        # Python pins ("six==1.99.99") the index no longer has: a build pinned to one fails
        # at its uv step, naming it, as uv does for a constraint it cannot meet.
        self.gone: set[str] = set()
        # What uv picks on a platform whatever the pins (no wheel there for the others):
        # platform → {distribution: version}.
        self.platform_versions: dict[str, dict[str, str]] = {}
        # What apt answers in a container of the base image (apt-install --offered): the
        # packages installed there, and the versions the sources offer.
        self.apt_installed: dict[str, str] = {"libc6": "2.41-12"}
        self.apt_offered: dict[str, list[str]] = {"libc6": ["2.41-12"], "tini": ["0.19.0-3"]}
        self.debs: dict[str, str] = {"libc6": "2.41-12", "tini": "0.19.0-3"}  # in every image
        self.host_platform = "linux/amd64"
        self._lock = threading.Lock()

    def platform(self) -> str:
        return self.host_platform

    def _resolve(self, ref: str) -> str | None:
        return ref if ref in self.images else self.refs.get(ref)

    def images_by_ref(self, refs: Sequence[str]) -> dict[str, ImageInfo | None]:
        return {ref: self.image(ref) for ref in dict.fromkeys(refs)}  # no CLI to batch

    def add_image(self, ref: str, image_id: str, labels: Mapping[str, str] | None = None) -> None:
        self.images[image_id] = dict(labels or {})
        self.refs[ref] = image_id

    def image(self, ref: str) -> ImageInfo | None:
        image_id = self._resolve(ref)
        if image_id is None:
            return None
        tags = tuple(sorted(r for r, i in self.refs.items() if i == image_id))
        return ImageInfo(image_id, dict(self.images[image_id]), tags,
                         platform=self.image_platforms.get(image_id, self.host_platform))

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        info = self.image(ref)
        if info is None:
            return None
        os_name, arch = info.platform.split("/")
        return {"Id": info.id, "Config": {"Labels": dict(info.labels)},
                "RepoTags": list(info.tags), "Os": os_name, "Architecture": arch}

    def tag(self, source: str, target: str) -> None:
        image_id = self._resolve(source)
        assert image_id is not None, source
        self.calls.append(("tag", source, target))
        self.refs[target] = image_id

    def pull(self, ref: str, on_line: Callable[[str], None], platform: str = "") -> None:
        self.calls.append(("pull", ref, platform) if platform else ("pull", ref))
        found = self.registry_platforms.get((ref, platform)) if platform else \
            self.registry.get(ref)
        if found is None:
            raise EngineError(f"cannot pull {ref}: manifest unknown")
        if "@" in ref and self.refs.get(ref, found) != found:  # as Docker 20.10 refuses
            raise EngineError(f"cannot pull {ref}: Cannot overwrite digest "
                              f"{ref.partition('@')[2]}")
        self.images.setdefault(found, {})
        self.refs[ref] = found  # one image per name: another platform's takes it over

    def load(self, archive: Path) -> list[str]:
        with tarfile.open(archive) as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
            config_name = manifest[0]["Config"]
            config = json.loads(tar.extractfile(config_name).read())  # type: ignore[union-attr]
        image_id = config_name.rsplit("/", 1)[-1]
        self.images[image_id] = dict(config["config"]["Labels"])
        platform = f"{config['os']}/{config['architecture']}"
        if platform != self.host_platform:
            self.image_platforms[image_id] = platform
        return [image_id]

    def push(self, ref: str, on_line: Callable[[str], None], *,
             plain_http: bool = False) -> str:
        if self.refuse and ref.startswith(self.refuse):
            message, hint = push_refusal(ref, ["unauthorized: authentication required"])
            raise RegistryError(message, hint=hint)
        self.pushed.append(ref)
        image_id = self._resolve(ref)
        if image_id in self.image_platforms:  # another platform's: a manifest of its own
            return foreign_digest(image_id)
        return DIGEST

    def push_index(self, ref: str, digests: Mapping[str, str], on_line: Callable[[str], None],
                   *, plain_http: bool = False) -> str:
        if self.refuse and ref.startswith(self.refuse):
            message, hint = push_refusal(ref, ["unauthorized: authentication required"])
            raise RegistryError(message, hint=hint)
        self.indexes.append((ref, dict(digests)))
        listed = json.dumps(sorted(digests.items())).encode()
        return "sha256:" + hashlib.sha256(listed).hexdigest()  # what it lists decides it

    def remove_image(self, ref: str) -> str | None:
        image_id = self._resolve(ref)
        if image_id is None:
            return "no such image"
        if ref in self.refs:
            del self.refs[ref]
        if image_id in self.refs.values():
            return None
        if image_id in self.parents.values():
            return "image has dependent child images"
        del self.images[image_id]
        return None

    def image_ids(self, label: str) -> list[str]:
        key, _, value = label.partition("=")
        return [i for i, labels in self.images.items() if labels.get(key) == value]

    def build_argv(self, request: BuildRequest, iidfile: Path) -> list[str]:
        return ["fake", "build", str(request.context)]

    def build_output(self) -> BuildOutput:
        return BuildKitOutput()

    def build(self, request: BuildRequest, on_line: Callable[[str], None]) -> tuple[int, str]:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self.delay)
            self.contexts.append(request.context)
            dockerfile = (request.context / "Dockerfile").read_text()
            name = re.search(r'org\.pyrlab\.image="([^"]+)"', dockerfile)
            assert name is not None
            parent = re.search(r"^FROM (\S+)$", dockerfile, re.MULTILINE)
            assert parent is not None
            parent_id = self._resolve(parent.group(1))
            assert parent_id is not None
            assert (self.image_platforms.get(parent_id, self.host_platform)
                    == (request.platform or self.host_platform)), \
                f"a build for {request.platform or 'the host'} FROM another platform's image"
            if request.labels[LABEL_DELTA_DEPTH] != "0":  # on its own previous version
                self.deltas.append(name.group(1))
                added = request.context / "pyrlab" / "python" / "added.txt"
                if added.is_file():
                    self.added.append(added.read_text())
                assert self.images[parent_id][LABEL_PARENT_ID] == request.labels[LABEL_PARENT_ID]
            else:
                assert parent_id == request.labels[LABEL_PARENT_ID], "built on the wrong parent"
            on_line("#5 [1/2] RUN --mount=x /run/pyrlab/bin/uv-install")
            if any("broken" in p.read_text() for p in request.context.rglob("*.txt")):
                on_line("#5 0.1 error: no such package: broken")
                on_line("#5 ERROR: executor failed running [/bin/bash]: exit code: 1")
                return 1, ""
            pinned = {line for p in (request.context / "pyrlab" / "pins").glob("python/*.txt")
                      for line in p.read_text().split()}
            for pin in sorted(pinned & self.gone):
                on_line("#5 0.2   × No solution found when resolving dependencies:")
                on_line(f"#5 0.2   ╰─▶ Because there is no version of {pin} and you require "
                        f"{pin}, we can conclude that your requirements are unsatisfiable.")
                on_line("#5 ERROR: executor failed running [/bin/bash]: exit code: 1")
                return 1, ""
            with self._lock:
                self.counter += 1
                image_id = f"{self.counter:064x}"
                self.images[image_id] = dict(request.labels)
                if request.platform:  # built for another platform (--platform)
                    self.image_platforms[image_id] = request.platform
                self.parents[image_id] = parent_id
                self.built.append(name.group(1))
                self.cache_from.append((name.group(1), request.platform, request.cache_from))
                self.build_args.append(dict(request.build_args))
                self.manifests[image_id] = self._manifest(request, parent_id)
            return 0, image_id
        finally:
            with self._lock:
                self.running -= 1

    def _manifest(self, request: BuildRequest, parent_id: str) -> bytes:
        meta = json.loads((request.context / META_FILE).read_text())
        parent = self.manifests.get(parent_id)
        dists = {d[0]: d for d in json.loads(parent)["python_dists"]} if parent else {}
        dists.update({name: [name, version, ""] for name, version in self.dependencies.items()})
        requirements = request.context / "pyrlab" / "python" / "requirements.txt"
        pins: dict[str, str] = {}
        for pins_file in sorted((request.context / "pyrlab" / "pins").glob("*/*.txt")):
            self.pins.append((meta["image"], f"{pins_file.parent.name}/{pins_file.name}",
                              pins_file.read_text()))
            if pins_file.parent.name == "python":
                pins.update(line.split("==") for line in pins_file.read_text().split())
        if requirements.exists():
            # NAME==VERSION gets that version; a bare NAME its pin, else `versions`.
            for line in requirements.read_text().split():
                name = re.split(r"[=<>!~]", line)[0]
                _, _, version = line.partition("==")
                version = (self.platform_versions.get(request.platform, {}).get(name)
                           or version or pins.get(name) or self.versions.get(name, "1.0"))
                dists[name] = [name, version, ""]
        return json.dumps({
            "format": 1, "meta": {**meta, "base_id": request.build_args["PYRLAB_BASE_ID"]},
            "python": "3.13.5",
            "os_release": {"PRETTY_NAME": "Debian GNU/Linux 13 (trixie)", "ID": "debian",
                           "VERSION_ID": "13", "VERSION_CODENAME": "trixie"},
            "debs": [[name, version, "amd64"] for name, version in sorted(self.debs.items())],
            "python_dists": sorted(dists.values()), "r": None,
        }).encode()

    def read_file(self, image: str, path: str) -> bytes:
        image_id = self._resolve(image)
        assert image_id is not None, image
        if path != MANIFEST_PATH or image_id not in self.manifests:
            raise EngineError(f"cannot read {path} in {image}: no such file")
        self.reads.append(image_id)
        return self.manifests[image_id]

    def prune_build_cache(self, *, dry_run: bool = False) -> list[str]:
        return []

    # Containers: `run` starts nothing but records the container as `container inspect`
    # would show it, running and healthy; `exec` answers as container/selftest.py would. A
    # distribution named in `broken_imports` raises on import.

    def run(self, request: RunRequest) -> str:
        with self._lock:
            self.runs.append(request)
            if request.command[-1:] == ("--offered",):
                assert self._resolve(request.image) is not None, request.image
                return self._apt_offered(request)
            if request.name in self.containers:
                raise EngineError(f"{self.name} run failed: Conflict. The container name "
                                  f'"/{request.name}" is already in use')
            self.containers[request.name] = {
                "Name": "/" + request.name,
                "Image": self._resolve(request.image) or "sha256:" + "1" * 64,
                "Config": {"Image": request.image, "Labels": dict(request.labels),
                           "Env": [f"{k}={v}" for k, v in request.env.items()],
                           "User": request.user},
                "State": {"Status": "running", "ExitCode": 0,
                          "StartedAt": "2026-01-01T00:00:00.123456789Z",
                          "Health": {"Status": "healthy"}},
                "HostConfig": {
                    "PortBindings": {f"{p.container_port}/tcp": [
                        {"HostIp": p.host_ip, "HostPort": str(p.host_port)}]
                        for p in request.ports},
                    "CapDrop": list(request.cap_drop) or None,
                    "SecurityOpt": list(request.security_opts) or None},
            }
        return request.name

    def _apt_offered(self, request: RunRequest) -> str:
        """apt-install --offered's answer, for the packages in its pins file."""
        pins = next(m.source for m in request.mounts if m.target == "/run/pyrlab/pins")
        names = [line.split("=")[0] for line in (pins / "debs.txt").read_text().split()]
        lines = [f"installed {n} {v}" for n, v in sorted(self.apt_installed.items())]
        lines += [f"offered {n} | {v} | http://deb.debian.org/debian trixie/main amd64 Packages"
                  for n in names for v in self.apt_offered.get(n, [])]
        return "\n".join(lines) + "\n"

    def exec(self, container: str, command: Sequence[str], *,
             timeout: float | None = None) -> proc.Completed:
        with self._lock:
            self.execs.append((container, tuple(command)))
        if tuple(command) == requires_command():  # pyrlab why's script: the graph
            dump = {"environment": {"python_version": "3.13", "sys_platform": "linux"},
                    "rscript": "", "dists": [
                        {"name": dist, "version": "1.0", "requires": requires, "url": ""}
                        for dist, requires in self.requires.items()]}
            return proc.Completed(tuple(command), 0, "\n" + json.dumps(dump) + "\n", "")
        mode, data = command[-2], json.loads(command[-1])
        rows: list[Any]
        if mode == "imports":
            image_id = self.containers.get(container, {}).get("Image")
            broken = {} if image_id in self.unbroken else \
                self.broken_imports
            rows = []
            for dist, only in data:
                for module in only or self.modules.get(dist, [dist.replace("-", "_")]):
                    error = broken.get(module, broken.get(dist, ""))
                    types = [error.split(":")[0]] if error else []
                    rows.append([dist, module, 0.01, error, types])
        else:
            rows = [[kernel, "6*7", 0.5, ""] for kernel in data]
        return proc.Completed(tuple(command), 0, "\n" + json.dumps(rows) + "\n", "")

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        return self.containers.get(name)

    def list_containers(self, label: str, *, all: bool = True) -> list[str]:
        key, _, value = label.partition("=")
        return [n for n, c in self.containers.items()
                if c["Config"]["Labels"].get(key) == value]

    def stop(self, name: str, timeout: int = 10) -> None:
        self.calls.append(("stop", name))
        self.containers[name]["State"]["Status"] = "exited"

    def remove_container(self, name: str) -> None:
        with self._lock:
            self.calls.append(("rm", name))
            self.containers.pop(name, None)

    def logs(self, name: str, tail: int | None = None) -> str:
        return self.log_text




# heldback.py's answer in a throwaway container (through uv-resolve): uv's resolution of
# the lists, and the listed packages it holds back; then apt-get's upgrade simulation.
RESOLUTION_JSON = json.dumps({
    "resolution": {"Six": "2.0", "idna": "1.0"}, "floors": [], "raised": [],
    "held": [{"name": "idna", "resolved": "1.0", "newest": "3.0",
              "why": "major version 3 is out", "holder": "six==2.0 depends on idna<2"}],
    "notes": []})
APT_OUTPUT = """\
Reading package lists...
Calculating upgrade...
The following packages will be upgraded:
  libc6
Inst libc6 [2.41-12] (2.41-13 Debian:13.3/stable [amd64])
Conf libc6 (2.41-13 Debian:13.3/stable [amd64])
Inst newdep (1.0 Debian:13.3/stable [amd64])
"""
