"""`pyrlab push` and a team's build cache through a registry, for real, with Docker.

A Distribution registry (Debian's `docker-registry`) runs on 127.0.0.1 with a storage
folder of its own; a second one asks for a password (htpasswd). The small lab
(cases/small), with a requirement line no other lab has, is built, pushed (the bootstrapped
base with it), then its images and the BuildKit records its build made are removed, as on
a fresh machine. Pulling gives back the digests push recorded; building again with
`--cache-from` takes the install steps from the registry: BuildKit's log says CACHED for
them. The refusals (unknown host, plain HTTP to another host, no credentials) are clear
errors that leave every local tag as it was.

Only records this module's builds made are removed: the ones BuildKit lists after a build
and not before it that pyrlab's steps made (or are built on one), see buildcache.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labtools import BASE_REF, EngineCli, Lab, engine_unavailable, free_port, stop_process

from pyrlab.engines.buildcache import docker_records, marked_records
from pyrlab.engines.podman import Podman
from pyrlab.platforms import platform_ref

pytestmark = pytest.mark.integration

ENGINE = "docker"
# The BuildKit records this module's builds made, removed when it is done.
RECORDS: set[str] = set()


@dataclass(frozen=True)
class Registry:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_registry(folder: Path, htpasswd: Path | None = None) -> Registry:
    """`docker-registry serve` on a free 127.0.0.1 port, storing in folder; waits (bounded)
    until its /v2/ answers."""
    binary = shutil.which("docker-registry")
    if binary is None:
        engine_unavailable("docker-registry is not installed (.ci/setup-host.sh --tests)")
    assert binary is not None
    port = free_port()
    (folder / "storage").mkdir(parents=True)
    auth = (f"auth:\n  htpasswd:\n    realm: pyrlab-test\n    path: {htpasswd}\n"
            if htpasswd else "")
    config = folder / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {folder / 'storage'}\n  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n{auth}")
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
            break
        except urllib.error.HTTPError:
            break  # 401 from the one with a password: it answers
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"docker-registry did not answer on port {port}")
    if process.poll() is not None:
        pytest.fail(f"docker-registry exited: {(folder / 'registry.log').read_text()[-500:]}")
    return Registry(port, process)


def stop(registry: Registry) -> None:
    stop_process(registry.process, grace=10)


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Registry]]:
    """(an open registry, one that wants a password) on 127.0.0.1."""
    if shutil.which("htpasswd") is None:
        engine_unavailable("htpasswd is not installed (apache2-utils, .ci/setup-host.sh --tests)")
    folder = tmp_path_factory.mktemp("registries")
    htpasswd = folder / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "teammate", secrets.token_hex(8)],
                   check=True, capture_output=True)
    open_one = start_registry(folder / "open")
    try:
        locked = start_registry(folder / "locked", htpasswd)
    except BaseException:
        stop(open_one)
        raise
    yield open_one, locked
    stop(locked)
    stop(open_one)


@pytest.fixture(scope="module")
def docker(get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(ENGINE)


def record_ids(docker: EngineCli) -> set[str]:
    return {r["ID"] for r in docker_records(docker.binary)}


def remove_records(docker: EngineCli, ids: set[str]) -> None:
    """Remove these BuildKit records (a record with a child goes once the child has)."""
    for _ in range(10):
        left = ids & record_ids(docker)
        if not left:
            return
        for record_id in sorted(left):
            docker("builder", "prune", "--force", "--all", "--filter", f"id={record_id}",
                   check=False)


def new_pyrlab_records(docker: EngineCli, before: set[str]) -> set[str]:
    """The records made since `before` that pyrlab's steps made or that are built on one."""
    fresh = [r for r in docker_records(docker.binary) if r["ID"] not in before]
    return set(marked_records(fresh))


@pytest.fixture(scope="module")
def lab(make_module_lab: Callable[..., Lab], docker: EngineCli) -> Iterator[Lab]:
    """The small lab, built once, with a requirement line of its own: its steps' cache
    keys are new, so every layer record of its build is this module's."""
    made = make_module_lab("small", ENGINE, name="pushlab")
    with (made.root / "requirements.txt").open("a") as file:
        file.write(f"six!=0.0.{secrets.randbelow(10**9)}\n")
    before = record_ids(docker)
    started = time.monotonic()
    done = made.pyrlab("build", "--no-test")
    print(f"first build: {time.monotonic() - started:.1f}s")
    RECORDS.update(new_pyrlab_records(docker, before))
    try:
        assert done.returncode == 0, done.stderr
        yield made
    finally:
        remove_records(docker, RECORDS)


def local_refs(docker: EngineCli, lab: Lab, *hosts: str) -> list[str]:
    """The local tags a push of this lab could touch: the lab's own, its base's, and any
    under the registries' hosts (other engineers' images come and go meanwhile)."""
    done = docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    base = tomllib.loads((lab.root / "pyrlab.toml").read_text())["base"]["image"]
    mine = (lab.prefix, base, *(f"{host}/" for host in hosts))
    return sorted(ref for ref in done.stdout.split() if ref.startswith(mine))


def push(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.pyrlab("push", "--engine", ENGINE, *args, timeout=600)


def steps(log: str) -> str:
    """A build log's step titles and what became of them (CACHED, DONE…), for messages."""
    return "\n".join(line[:160] for line in log.splitlines()
                     if re.match(r"^#\d+ (\[|CACHED|DONE|importing|ERROR)", line)
                     or line.startswith("+ "))


def uv_install_lines(log: str) -> tuple[str, list[str]]:
    """(the vertex number, its lines) of the uv-install step in a BuildKit plain log."""
    match = re.search(r"^#(\d+) \[[^\]]*\] RUN .*/run/pyrlab/bin/uv-install", log, re.MULTILINE)
    assert match, f"no uv-install step in the log:\n{log[-3000:]}"
    vertex = match.group(1)
    return vertex, [line for line in log.splitlines() if line.startswith(f"#{vertex} ")]


def test_push_records_digests_a_pull_gets_back_and_cache_from_reuses_the_install_steps(
        lab: Lab, docker: EngineCli, registries: tuple[Registry, Registry]) -> None:
    registry = registries[0]
    target = f"{registry.host}/team-{secrets.token_hex(3)}"
    refs_before = local_refs(docker, lab, registry.host)
    assert refs_before

    started = time.monotonic()
    done = push(lab, "--registry", f"http://{target}", "--json")
    assert done.returncode == 0, done.stderr
    pushed = json.loads(done.stdout)
    by_name = {image["name"]: image for image in pushed["images"]}
    assert set(by_name) == {"base", "pyrlab-base", "pylab"}, by_name
    assert next(image["name"] for image in pushed["images"]) == "base"  # parents first
    pylab = by_name["pylab"]
    assert pylab["tags"] == [f"{target}/pylab:latest", f"{target}/pylab:trixie"]
    assert re.fullmatch(rf"{re.escape(target)}/pylab@sha256:[0-9a-f]{{64}}", pylab["ref"])
    # Pushing to another registry than the prefix left no tag behind.
    assert local_refs(docker, lab, registry.host) == refs_before
    record = tomllib.loads((lab.root / "pyrlab.pushed.toml").read_text())
    assert record["images"]["pylab"]["ref"] == pylab["ref"]
    assert record["base"]["ref"] == by_name["base"]["ref"]
    print(f"push: {time.monotonic() - started:.1f}s")

    # A fresh machine: none of the lab's images, none of its build's layer records.
    docker.remove_by_prefix(lab.prefix)
    remove_records(docker, RECORDS)
    assert not docker.image(lab.ref("pylab"))

    # What a teammate pulls is what push recorded.
    pull = docker("pull", f"{target}/pylab:latest")
    assert pylab["digest"] in pull.stdout, pull.stdout
    info = docker.image(f"{target}/pylab:latest")
    assert info is not None
    assert info["Id"] == pylab["image_id"]
    assert pylab["ref"] in (info.get("RepoDigests") or [])
    docker("rmi", f"{target}/pylab:latest")

    # The teammate's checkout is the one the pushed images were built from: the lock the
    # first build wrote was not there yet (its versions are the install steps' input).
    (lab.root / "pyrlab.lock").unlink()
    started = time.monotonic()
    before = record_ids(docker)
    rebuilt = lab.pyrlab("build", "--no-test", "--cache-from", f"{target}/", "--json")
    RECORDS.update(new_pyrlab_records(docker, before))
    assert rebuilt.returncode == 0, rebuilt.stderr
    print(f"build --cache-from: {time.monotonic() - started:.1f}s")
    images = {image["name"]: image for image in json.loads(rebuilt.stdout)["images"]}
    assert images["pylab"]["action"] == "built"
    log = Path(images["pylab"]["log"]).read_text()
    assert f"importing cache manifest from {target}/" in log, log[-3000:]
    base_log = Path(images["pyrlab-base"]["log"]).read_text()
    vertex, lines = uv_install_lines(log)
    assert f"#{vertex} CACHED" in lines, steps(base_log) + "\n----\n" + steps(log)
    # The build-only tools stage ([base] slim) leads to it: not run either.
    tools = re.search(r"^#(\d+) \[pyrlab-tools \d+/\d+\] RUN ", log, re.MULTILINE)
    assert tools and f"#{tools.group(1)} CACHED" in log.splitlines(), steps(log)
    assert re.search(r"^#\d+ CACHED", base_log, re.MULTILINE), steps(base_log)


def test_refused_pushes_are_clear_errors_and_leave_the_tags_as_they_were(
        lab: Lab, docker: EngineCli, registries: tuple[Registry, Registry]) -> None:
    hosts = ("nonexistent.invalid:5000", "192.0.2.10:5000", registries[1].host)
    refs_before = local_refs(docker, lab, *hosts)
    assert refs_before
    record = lab.root / "pyrlab.pushed.toml"
    record_before = record.read_text() if record.exists() else None

    unknown = push(lab, "--registry", "nonexistent.invalid:5000/ns")
    assert unknown.returncode == 9, unknown.stderr
    assert "nonexistent.invalid:5000 is unknown" in unknown.stderr, unknown.stderr
    assert "Traceback" not in unknown.stderr

    started = time.monotonic()
    plain = push(lab, "--registry", "http://192.0.2.10:5000/ns")
    assert plain.returncode == 9, plain.stderr
    assert "plain HTTP" in plain.stderr and "insecure" in plain.stderr, plain.stderr
    assert time.monotonic() - started < 20  # refused before any network

    locked = push(lab, "--registry", f"{registries[1].host}/ns")
    assert locked.returncode == 9, locked.stderr
    assert "refused the credentials" in locked.stderr, locked.stderr
    assert f"docker login {registries[1].host}" in locked.stderr

    assert local_refs(docker, lab, *hosts) == refs_before
    assert (record.read_text() if record.exists() else None) == record_before


# ----------------------------------------------------------------- two platforms, one tag

ARM = "linux/arm64"
INDEX_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json, "
               "application/vnd.oci.image.index.v1+json")
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json")


def registry_get(host: str, path: str, accept: str) -> tuple[dict[str, object], str]:
    """(the JSON a registry on this host answers, its Docker-Content-Digest)."""
    request = urllib.request.Request(f"http://{host}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read()), answer.headers.get("Docker-Content-Digest", "")


def arm64_stand_in(docker: EngineCli, lab: Lab, name: str, folder: Path) -> str:
    """SCAFFOLDING until builds for another platform land (issue 23, step 6): an arm64
    image of `name` "as pyrlab would have built it": under its per-platform local name
    (PREFIX/NAME/arm64:latest), with the native image's labels, from a `FROM scratch`
    build with --platform linux/arm64 (no RUN step, so no emulation is needed). Replace
    it with `pyrlab build --platform linux/arm64` once that builds. Returns its ID."""
    context = folder / name
    context.mkdir(parents=True)
    (context / "marker").write_text(f"arm64 stand-in of {name} {secrets.token_hex(8)}\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY marker /marker\n")
    labels = [arg for key, value in sorted(docker.labels(lab.ref(name)).items())
              for arg in ("--label", f"{key}={value}")]
    ref = platform_ref(lab.ref(name), ARM, "linux/amd64")
    built = subprocess.run([docker.binary, "build", "--platform", ARM, "--tag", ref, *labels,
                            str(context)], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "DOCKER_BUILDKIT": "1"}, check=False)
    assert built.returncode == 0, built.stderr
    image_id = docker.image_id(ref)
    assert image_id is not None
    info = docker.image(ref)
    assert info is not None and info["Architecture"] == "arm64", info
    return image_id


def test_two_platforms_go_under_one_tag_as_one_index(
        lab: Lab, docker: EngineCli, registries: tuple[Registry, Registry],
        tmp_path: Path) -> None:
    """Issue 23: both platforms pushed under one tag; the registry's index lists both, the
    record holds the index's digest, each entry's configuration is that platform's local
    image, and a pull by the index's digest for each platform gives that image. A build
    `--cache-from` the index reuses the install steps, as from a one-platform push."""
    if docker.image_id(lab.ref("pylab")) is None:  # an earlier test of the module removed it
        assert lab.pyrlab("build", "--no-test").returncode == 0
    native = {name: docker.image_id(lab.ref(name)) for name in ("pyrlab-base", "pylab")}
    made: list[str] = []
    try:
        arm = {}
        for name in native:
            arm[name] = arm64_stand_in(docker, lab, name, tmp_path)
            made.append(arm[name])
        registry = registries[0]
        namespace = f"multi-{secrets.token_hex(3)}"
        target = f"{registry.host}/{namespace}"
        refs_before = local_refs(docker, lab, registry.host)

        started = time.monotonic()
        done = push(lab, "--registry", f"http://{target}", "--platform", "linux/amd64",
                    "--platform", ARM, "--json")
        assert done.returncode == 0, done.stderr
        print(f"push of two platforms: {time.monotonic() - started:.1f}s")
        by_name = {image["name"]: image for image in json.loads(done.stdout)["images"]}
        assert local_refs(docker, lab, registry.host) == refs_before  # no tag left behind
        # The bootstrapped base goes plainly where it exists for the engine's own platform
        # only, as one index where the session made its arm64 sibling too (foreign_bases,
        # for the platform tests): by what is here, as a build would find it.
        base = by_name["base"]
        sibling = docker.image_id(BASE_REF.replace(":", "/arm64:"))
        assert set(base["platforms"]) == (set() if sibling is None else {"linux/amd64", ARM})
        record = tomllib.loads((lab.root / "pyrlab.pushed.toml").read_text())
        for name, native_id in native.items():
            pushed = by_name[name]
            index = pushed["digest"]
            assert pushed["ref"] == f"{target}/{name}@{index}"
            assert record["images"][name]["digest"] == index
            assert record["images"][name]["platforms"][ARM]["image-id"] == f"sha256:{arm[name]}"
            # The registry: `latest` and the base tag are one index listing both platforms.
            listed, digest = registry_get(registry.host, f"{namespace}/{name}/manifests/latest",
                                          INDEX_TYPES)
            assert digest == index, (digest, index)
            assert registry_get(registry.host, f"{namespace}/{name}/manifests/trixie",
                                INDEX_TYPES)[1] == index
            entries = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                       for m in listed["manifests"]}  # type: ignore[attr-defined]
            assert set(entries) == {"linux/amd64", ARM}, listed
            for platform, image_id in (("linux/amd64", native_id), (ARM, arm[name])):
                assert entries[platform] == pushed["platforms"][platform]["digest"]
                child, _ = registry_get(registry.host,
                                        f"{namespace}/{name}/manifests/{entries[platform]}",
                                        MANIFEST_TYPES)
                assert child["config"]["digest"] == f"sha256:{image_id}"  # type: ignore[index]
        # A pull by the index's digest gives each platform its own image. Docker 20.10
        # keeps one image per digest reference: it goes between the two pulls.
        pylab = by_name["pylab"]["ref"]
        for platform, image_id in ((ARM, arm["pylab"]), ("linux/amd64", native["pylab"])):
            docker("pull", "--platform", platform, pylab)
            assert docker.image_id(pylab) == image_id, platform
            docker("rmi", pylab)  # only that reference: the image keeps its local name
        assert docker.image_id(lab.ref("pylab")) == native["pylab"]

        # A teammate's `build --cache-from` of the index: BuildKit takes the engine's own
        # platform's entry and its inline cache, as from a one-platform push.
        for image_id in reversed(made):
            docker("rmi", image_id)
        made.clear()
        docker.remove_by_prefix(lab.prefix)
        remove_records(docker, RECORDS)
        (lab.root / "pyrlab.lock").unlink(missing_ok=True)
        before = record_ids(docker)
        rebuilt = lab.pyrlab("build", "--no-test", "--cache-from", f"{target}/", "--json")
        RECORDS.update(new_pyrlab_records(docker, before))
        assert rebuilt.returncode == 0, rebuilt.stderr
        images = {image["name"]: image for image in json.loads(rebuilt.stdout)["images"]}
        log = Path(images["pylab"]["log"]).read_text()
        assert f"importing cache manifest from {target}/" in log, log[-3000:]
        vertex, lines = uv_install_lines(log)
        assert f"#{vertex} CACHED" in lines, steps(log)
    finally:
        for image_id in reversed(made):
            docker("rmi", image_id, check=False)


def test_podman_pushes_one_index_of_two_platforms(
        get_engine: Callable[[str], EngineCli], registries: tuple[Registry, Registry],
        tmp_path: Path) -> None:
    """Podman 4.3's side of push_index, for real: a list under a local name of its own
    gets both manifests from the registry, is pushed as the tag's index (its digest from
    --digestfile) and removed. Two `FROM scratch` images (no RUN: no emulation)."""
    podman = get_engine("podman")
    engine = Podman(podman.binary)
    repository = f"{registries[0].host}/pm-{secrets.token_hex(3)}/lab"
    ids: dict[str, str] = {}
    try:
        for platform in ("linux/amd64", ARM):
            context = tmp_path / platform.replace("/", "-")
            context.mkdir()
            (context / "marker").write_text(f"{platform} {secrets.token_hex(8)}\n")
            (context / "Dockerfile").write_text("FROM scratch\nCOPY marker /marker\n")
            ref = f"{repository}:latest-{platform.rsplit('/', 1)[1]}"
            podman("build", "--quiet", "--no-cache", "--platform", platform, "--tag", ref,
                   str(context))
            image_id = podman.image_id(ref)
            assert image_id is not None
            ids[platform] = image_id
        digests = {p: engine.push(f"{repository}:latest-{p.rsplit('/', 1)[1]}", print,
                                  plain_http=True) for p in ids}
        lists_before = podman("images", "--quiet", "--filter",
                              "reference=localhost/pyrlab-index-*").stdout.split()
        index = engine.push_index(f"{repository}:latest", digests, print, plain_http=True)
        host, _, path = repository.partition("/")
        listed, digest = registry_get(host, f"{path}/manifests/latest", INDEX_TYPES)
        assert digest == index
        entries = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                   for m in listed["manifests"]}  # type: ignore[attr-defined]
        assert entries == digests
        for platform, image_id in ids.items():
            child, _ = registry_get(host, f"{path}/manifests/{entries[platform]}",
                                    MANIFEST_TYPES)
            assert child["config"]["digest"] == f"sha256:{image_id}"  # type: ignore[index]
        assert podman("images", "--quiet", "--filter",
                      "reference=localhost/pyrlab-index-*").stdout.split() == lists_before
    finally:
        for image_id in ids.values():
            podman("rmi", "--force", image_id, check=False)
