"""The engine contract without an engine: argv building, engine choice, build output
parsing, the base image's mirror, and pruning only pyrlab's cache."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from pyrlab import proc
from pyrlab.baseimage import check_arguments, host_mirror
from pyrlab.dockerfile.render import RenderOptions
from pyrlab.engines import docker as docker_engine
from pyrlab.engines import registry, select
from pyrlab.engines.base import (
    BuildRequest,
    Mount,
    RunRequest,
    normalize_id,
    step_title,
)
from pyrlab.engines.docker import BuildKitOutput, DockerBuildx, DockerClassic
from pyrlab.engines.podman import VFS_NOTE, Podman, PodmanOutput
from pyrlab.errors import ConfigError, EngineError

REQUEST = BuildRequest(
    context=Path("/lab/.pyrlab/contexts/pylab"),
    labels={"org.pyrlab.parent-id": "abc", "org.pyrlab.input-hash": "123"},
    build_args={"HTTP_PROXY": "http://proxy:3128"},
    network_host=True,
)
IID = Path("/lab/.pyrlab/contexts/.pylab.iid")


# --------------------------------------------------------------------------- argv


def test_buildx_builds_by_id_with_labels_and_loads_into_docker() -> None:
    argv = DockerBuildx("docker").build_argv(REQUEST, IID)
    assert argv[:4] == ["docker", "buildx", "build", "--load"]
    assert "--tag" not in argv  # tags move only after success
    assert argv[argv.index("--iidfile") + 1] == str(IID)
    assert ["--label", "org.pyrlab.input-hash=123"] == argv[argv.index("--label"):][:2]
    assert "org.pyrlab.parent-id=abc" in argv
    assert argv[argv.index("--build-arg") + 1] == "HTTP_PROXY=http://proxy:3128"
    assert argv[argv.index("--network") + 1] == "host"
    assert argv[-1] == str(REQUEST.context)
    assert "--no-cache" not in argv and "--pull" not in argv


def test_classic_docker_turns_buildkit_on_through_the_environment() -> None:
    engine = DockerClassic("/usr/bin/docker")
    argv = engine.build_argv(BuildRequest(context=Path("/c"), no_cache=True), IID)
    assert argv[:2] == ["/usr/bin/docker", "build"] and "buildx" not in argv
    assert engine.build_env() == {"DOCKER_BUILDKIT": "1"}
    assert "--no-cache" in argv and "--progress=plain" in argv


def test_podman_never_pulls_local_parents_and_keys_run_steps_by_their_files() -> None:
    engine = Podman("podman")
    argv = engine.build_argv(REQUEST, IID)
    assert argv[:2] == ["podman", "build"] and "--pull=never" in argv
    assert argv[argv.index("--format") + 1] == "docker"  # HEALTHCHECK needs the docker format
    assert RenderOptions.for_builder(engine).run_input_keys
    assert not RenderOptions.for_builder(engine).cache_sharing_locked


def test_image_ids_compare_without_their_algorithm_prefix() -> None:
    assert normalize_id("sha256:abc\n") == normalize_id("abc") == "abc"


# --------------------------------------------------------------------------- build output

BUILDX_FAILURE = """\
#0 building with "default" instance using docker driver
#5 [stage-0 1/3] FROM docker.io/lab/pyrlab-base:latest
#5 DONE 0.0s
#6 [stage-0 2/3] RUN --mount=type=cache,id=pyrlab-uv,target=/var/cache/pyrlab/uv     --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin     /run/pyrlab/bin/uv-install
#6 0.190 Using Python 3.13.5 environment at: /opt/venv
#6 0.300 error: No solution found when resolving dependencies
#6 ERROR: process "/bin/bash -o pipefail -c /run/pyrlab/bin/uv-install" did not complete successfully: exit code: 1
------
 > [stage-0 2/3] RUN --mount=type=cache,id=pyrlab-uv /run/pyrlab/bin/uv-install:
0.300 error: No solution found when resolving dependencies
------
ERROR: failed to solve: process "/bin/bash -o pipefail -c /run/pyrlab/bin/uv-install" did not complete successfully: exit code: 1
"""

CLASSIC_FAILURE = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:14024deea242f7d3a9c05a00580372ca98f239f1ac94c407f341162c11bfa3a9
#6 [2/3] RUN --mount=type=bind,source=pyrlab/python,target=/run/pyrlab/python     /run/pyrlab/bin/uv-install
#6 0.282 error: No solution found when resolving dependencies
#6 ERROR: executor failed running [/bin/bash -o pipefail -c /run/pyrlab/bin/uv-install]: exit code: 1
executor failed running [/bin/bash -o pipefail -c /run/pyrlab/bin/uv-install]: exit code: 1
"""


@pytest.mark.parametrize("text", [BUILDX_FAILURE, CLASSIC_FAILURE], ids=["buildx", "classic"])
def test_buildkit_failure_names_the_step_its_output_and_exit_code(text: str) -> None:
    parser = BuildKitOutput()
    steps = [title for line in text.splitlines() if (title := parser.feed(line))]
    assert steps[-1].endswith("RUN uv-install")
    failure = parser.failure()
    assert failure.step.endswith("/3] RUN uv-install")
    assert failure.tail[-1] == "error: No solution found when resolving dependencies"
    assert failure.error == "exit code 1"


def test_podman_failure_names_the_step_and_only_time_consuming_steps_are_shown() -> None:
    parser = PodmanOutput()
    lines = [
        "STEP 1/13: FROM lab/pyrlab-base:latest",
        "STEP 2/13: SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]",
        "--> Using cache 7449ccf581b8",
        ("STEP 4/13: RUN --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin "
        "/run/pyrlab/bin/uv-install # inputs 0123456789abcdef"),
        "error: No solution found when resolving dependencies",
        "Error: building at STEP \"RUN --mount=...\": while running runtime: exit status 1",
    ]
    shown = [title for line in lines if (title := parser.feed(line))]
    assert shown == ["[1/13] FROM lab/pyrlab-base:latest", "[4/13] RUN uv-install"]
    failure = parser.failure()
    assert failure.step == "[4/13] RUN uv-install"
    assert failure.tail == ["error: No solution found when resolving dependencies"]
    assert failure.error.startswith("Error: building at STEP")


def test_step_titles_are_short() -> None:
    assert step_title("COPY pyrlab/ca/ /usr/local/share/ca-certificates/pyrlab/") == \
        "COPY pyrlab/ca/ /usr/local/share/ca-certificates/pyrlab/"
    assert len(step_title("RUN " + "x" * 200)) == 60


# --------------------------------------------------------------------------- engine choice


def _fake_docker(folder: Path, name: str, *, client: str, server: str | None,
                 buildx: bool) -> str:
    """A `docker` client stand-in answering the questions engine selection asks."""
    path = folder / name
    server_line = f'echo "{server}"' if server else 'echo "Cannot connect to the Docker daemon" >&2; exit 1'
    path.write_text(f"""#!/bin/sh
case "$*" in
  "version --format {{{{.Client.Version}}}}") echo "{client}";;
  "version --format {{{{.Server.Version}}}}") {server_line};;
  "buildx version") {"echo github.com/docker/buildx v0.13.1" if buildx else "exit 1"};;
  *) exit 2;;
esac
""")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _use_dockers(monkeypatch: pytest.MonkeyPatch, *paths: str) -> None:
    monkeypatch.setattr(docker_engine, "DOCKER_CANDIDATES", paths)


@pytest.fixture(autouse=True)
def no_host_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Engine choice sees nothing of this machine's Docker: no CLI plugins, no config, a
    daemon socket that is not there. Returns the (empty) DOCKER_CONFIG folder."""
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setattr(docker_engine, "SYSTEM_PLUGIN_DIRS", ())
    return config


def test_a_buildx_plugin_file_is_enough_without_asking_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_host_docker: Path) -> None:
    plugin = no_host_docker / "cli-plugins" / "docker-buildx"
    plugin.parent.mkdir()
    plugin.write_text("#!/bin/sh\nexit 1\n")
    plugin.chmod(0o755)
    # This client would say it has no buildx: the plugin file is what counts.
    _use_dockers(monkeypatch, _fake_docker(tmp_path, "docker", client="28.2.2",
                                           server="28.2.2", buildx=False))
    assert isinstance(docker_engine.find(), DockerBuildx)


def test_a_daemon_answering_ping_on_its_socket_needs_no_cli_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    try:
        # The CLI would say the daemon is down; the socket says it is up.
        _use_dockers(monkeypatch, _fake_docker(tmp_path, "docker", client="20.10.24",
                                               server=None, buildx=False))
        assert isinstance(docker_engine.find(), DockerClassic)
    finally:
        thread.join(timeout=5)
        server.close()


def test_a_new_client_without_buildx_falls_back_to_an_old_client_with_builtin_buildkit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = _fake_docker(tmp_path, "docker28", client="28.2.2", server="20.10.24", buildx=False)
    old = _fake_docker(tmp_path, "docker20", client="20.10.24+dfsg1", server="20.10.24",
                       buildx=False)
    _use_dockers(monkeypatch, new, old)
    engine = docker_engine.find()
    assert isinstance(engine, DockerClassic) and engine.binary == old


def test_buildx_is_preferred_where_it_exists(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    new = _fake_docker(tmp_path, "docker28", client="28.2.2", server="28.2.2", buildx=True)
    _use_dockers(monkeypatch, new)
    engine = docker_engine.find()
    assert isinstance(engine, DockerBuildx) and "buildx build --load" in engine.describe()


def test_docker_23_without_buildx_is_a_clear_error_naming_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_dockers(monkeypatch, _fake_docker(tmp_path, "docker", client="28.2.2",
                                           server="28.2.2", buildx=False))
    with pytest.raises(EngineError) as caught:
        docker_engine.find()
    assert "buildx" in caught.value.message and "buildx" in (caught.value.hint or "")


def test_a_stopped_daemon_is_one_clear_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _use_dockers(monkeypatch, _fake_docker(tmp_path, "docker", client="20.10.24", server=None,
                                           buildx=False))
    with pytest.raises(EngineError) as caught:
        docker_engine.find()
    assert caught.value.message.startswith("cannot reach the Docker daemon: ")
    assert "systemctl start docker" in (caught.value.hint or "")
    assert "--engine podman" in (caught.value.hint or "")


def test_missing_docker_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_dockers(monkeypatch, "/nonexistent/docker")
    with pytest.raises(EngineError, match="docker is not installed"):
        docker_engine.find()


@pytest.fixture
def fake_finders(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Stand-ins for each engine module's find(), behind the registry; set an entry False to
    make that engine fail."""
    works = {"docker": True, "podman": True}
    kinds = {"docker": DockerBuildx, "podman": Podman}

    def find(name: str) -> object:
        if not works[name]:
            raise EngineError(f"{name} is not installed")
        return kinds[name](name)

    monkeypatch.setattr(registry, "find", find)
    return works


def test_engine_choice_precedence_flag_env_config_auto(fake_finders: dict[str, bool]) -> None:
    env = {"PYRLAB_ENGINE": "docker"}
    assert select.select_engine("podman", "docker", env).source == "--engine"
    chosen = select.select_engine(None, "podman", env)
    assert (chosen.engine.name, chosen.source) == ("docker", "PYRLAB_ENGINE")
    chosen = select.select_engine(None, "podman", {})
    assert (chosen.engine.name, chosen.source) == ("podman", "pyrlab.toml")
    chosen = select.select_engine("auto", "auto", {"PYRLAB_ENGINE": "auto"})
    assert (chosen.engine.name, chosen.source) == ("docker", "auto-detection")
    assert chosen.describe().startswith("engine: docker with buildx")


def test_auto_detection_says_why_it_passed_over_docker(fake_finders: dict[str, bool]) -> None:
    fake_finders["docker"] = False
    chosen = select.select_engine(None, "auto", {})
    assert chosen.engine.name == "podman"
    assert chosen.source == "auto-detection (docker is not installed)"


def test_no_engine_at_all_is_one_error_listing_both(fake_finders: dict[str, bool]) -> None:
    fake_finders.update(docker=False, podman=False)
    with pytest.raises(EngineError) as caught:
        select.select_engine(None, "auto", {})
    assert "docker is not installed" in caught.value.message
    assert "podman is not installed" in caught.value.message


def test_every_list_of_engines_is_the_registry_s() -> None:
    """--engine's choices (a command's and the global one), the names a config's `engine`
    may take, completion's, and the order auto-detection tries: one list, in engines/."""
    from pyrlab.cli import build_parser
    from pyrlab.completion import set_keys
    from pyrlab.engine_names import engine_choices

    assert registry.choices() == ("auto", "docker", "podman")
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb").choices
    assert verbs is not None
    for verb in ("build", "init", "help"):  # a verb with an engine, one without, and help
        sub = verbs[verb]
        sub.parse_known_args([])  # a verb adds its options when it is parsed
        engine = next(a for a in sub._actions if "--engine" in a.option_strings)
        assert tuple(engine.choices or ()) == registry.choices(), verb
    # The config, below the engines, checks `engine =` against the same table.
    assert engine_choices() == registry.choices()
    assert set_keys(None)["engine"] == registry.choices()


def test_auto_detection_tries_the_engines_in_the_registry_s_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []

    def find(name: str) -> object:
        tried.append(name)
        raise EngineError(f"{name} is not installed")

    monkeypatch.setattr(registry, "find", find)
    monkeypatch.setattr(registry, "ENGINES", {"podman": "", "docker": ""})
    with pytest.raises(EngineError) as caught:
        select.select_engine(None, "auto", {})
    assert tried == ["podman", "docker"]
    assert caught.value.message == ("no usable container engine: podman is not installed; "
                                    "docker is not installed")


def test_a_named_engine_that_is_missing_is_not_replaced_by_another(
        fake_finders: dict[str, bool]) -> None:
    fake_finders["podman"] = False
    with pytest.raises(EngineError, match="podman is not installed"):
        select.select_engine("podman", "auto", {})


# --------------------------------------------------------------------------- proc


def test_every_subprocess_argv_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pyrlab.proc"):
        assert proc.run(["true", "a b"]).ok
        assert proc.stream(["echo", "x"], on_line=lambda line: None) == 0
    assert "run: true 'a b'" in caplog.text and "stream: echo x" in caplog.text


# --------------------------------------------------------------------------- bootstrap


def test_host_mirror_from_deb822_skips_security(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text("""\
Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
# a comment
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
""")
    assert host_mirror([tmp_path]) == "http://mirror.example/debian"


def test_host_mirror_from_one_line_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list"
    sources.write_text("# deb http://old.example/debian sid main\n"
                       "deb http://security.debian.org/debian-security trixie-security main\n"
                       "deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian trixie main\n")
    assert host_mirror([sources]) == "https://m.example/debian"
    assert host_mirror([tmp_path / "missing"]) is None


def test_bootstrap_arguments_are_validated_before_anything_runs() -> None:
    with pytest.raises(ConfigError) as caught:
        check_arguments("Trixie;rm", "ftp://x", "bad tag!")
    assert [p.where for p in caught.value.problems] == ["--suite", "--mirror", "--tag"]
    check_arguments("trixie", "http://deb.debian.org/debian", "pyrlab-debian:trixie")


# --------------------------------------------------------------------------- cache pruning


def test_podman_prunes_only_pyrlab_cache_mounts(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "buildah-cache"
    for name in ("pyrlab-uv", "pyrlab-apt-lists", "someone-elses"):
        (cache / name).mkdir(parents=True)
        (cache / name / "file").write_text("x")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    removed = Podman("podman").prune_build_cache()
    assert sorted(Path(p).name for p in removed) == ["pyrlab-apt-lists", "pyrlab-uv"]
    assert [p.name for p in cache.iterdir()] == ["someone-elses"]


def test_docker_prunes_only_records_made_by_pyrlab_steps(tmp_path: Path) -> None:
    records = [
        {"ID": "aaa", "CacheType": "exec.cachemount",
         "Description": "cached mount /var/cache/apt from exec /bin/bash -o pipefail -c "
                        "/run/pyrlab/bin/apt-install"},
        {"ID": "bbb", "CacheType": "regular",
         "Description": "mount / from exec /bin/sh -c make"},
    ]
    calls = tmp_path / "calls"
    state = tmp_path / "records.json"
    state.write_text(json.dumps(records))
    fake = tmp_path / "docker"
    # `system df` lists what is left; `builder prune --filter id=X` removes record X.
    fake.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "$1" in
  system) cat {state};;
  builder) {sys.executable} -c 'import json, sys; p = sys.argv[1]; r = json.load(open(p)); \
json.dump([x for x in r if "id=" + x["ID"] != sys.argv[2]], open(p, "w"))' {state} "$6";;
esac
""")
    fake.chmod(0o755)
    assert DockerBuildx(str(fake)).prune_build_cache() == ["aaa"]
    pruned = [c for c in calls.read_text().splitlines() if c.startswith("builder prune")]
    assert pruned == ["builder prune --force --all --filter id=aaa"]
    assert [r["ID"] for r in json.loads(state.read_text())] == ["bbb"]


def test_engine_binaries_that_vanish_are_engine_errors(tmp_path: Path) -> None:
    engine = Podman(os.fspath(tmp_path / "no-podman"))
    with pytest.raises(EngineError, match="is not installed"):
        engine.tag("a", "b")


# --------------------------------------------------------------------------- reading a file


def _fake_cp_engine(tmp_path: Path, *, cp_fails: bool = False) -> tuple[Path, Path]:
    """A docker whose `create` prints an ID and whose `cp` copies a file standing in for
    the image's /opt/pyrlab/manifest.json; every argv goes to `calls`."""
    calls, content = tmp_path / "calls", tmp_path / "manifest.json"
    content.write_bytes(b'{"format": 1}\n\xff')
    fake = tmp_path / "docker"
    cp = ('echo "Error response from daemon: Could not find the file" >&2; exit 1'
          if cp_fails else f'cp {content} "$3"')
    fake.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "$1" in
  create) echo 0123abcd;;
  cp) {cp};;
  rm) ;;
  *) exit 2;;
esac
""")
    fake.chmod(0o755)
    return fake, calls


def test_a_file_is_copied_out_of_a_container_that_never_starts(tmp_path: Path) -> None:
    fake, calls = _fake_cp_engine(tmp_path)
    data = DockerBuildx(str(fake)).read_file("lab/pylab:latest", "/opt/pyrlab/manifest.json")
    assert data == b'{"format": 1}\n\xff'  # the bytes as they are
    create, cp, rm = calls.read_text().splitlines()
    name = re.fullmatch(r"create --pull never --name (pyrlab-read-[0-9a-f]{12}) "
                        r"lab/pylab:latest", create)  # never a pull, never a start
    assert name is not None, create
    assert cp.startswith(f"cp {name.group(1)}:/opt/pyrlab/manifest.json /")
    assert rm == f"rm --force {name.group(1)}"


def test_a_missing_file_is_an_engine_error_and_the_container_is_removed(tmp_path: Path) -> None:
    fake, calls = _fake_cp_engine(tmp_path, cp_fails=True)
    with pytest.raises(EngineError) as caught:
        Podman(str(fake)).read_file("lab/pylab:latest", "/opt/pyrlab/manifest.json")
    assert caught.value.message == ("cannot read /opt/pyrlab/manifest.json in lab/pylab:latest: "
                                    "Error response from daemon: Could not find the file")
    assert re.fullmatch(r"rm --force pyrlab-read-[0-9a-f]{12}", calls.read_text().splitlines()[-1])


def test_the_inventory_step_has_a_short_title() -> None:
    assert step_title("RUN --mount=type=bind,source=pyrlab/inventory,target=/run/pyrlab/"
                      "inventory /opt/venv/bin/python -I /run/pyrlab/inventory/inventory.py "
                      '/opt/pyrlab/manifest.json /run/pyrlab/inventory/meta.json "$X"') == \
        "RUN inventory.py"


# --------------------------------------------------------------------------- image lookups


class _Answering(DockerBuildx):
    """A Docker engine whose CLI answers from a table of images, counting the calls."""

    def __init__(self, images: dict[str, dict[str, object]]) -> None:
        super().__init__("docker")
        self.known = images
        self.calls: list[tuple[str, ...]] = []

    def _run(self, args: Sequence[str]) -> proc.Completed:
        self.calls.append(tuple(args))
        refs = list(args[2:])
        found = [self.known[r] for r in refs if r in self.known]
        errors = "".join(f"Error response from daemon: No such image: {r}\n"
                         for r in refs if r not in self.known)
        return proc.Completed(("docker", *args), 1 if errors else 0, json.dumps(found), errors)


def _item(image_id: str, *tags: str) -> dict[str, object]:
    return {"Id": f"sha256:{image_id * 64}", "RepoTags": list(tags),
            "Config": {"Labels": {"org.pyrlab.image": tags[0] if tags else ""}}}


def test_the_images_of_a_graph_are_looked_up_with_one_command() -> None:
    engine = _Answering({"p/base:latest": _item("a", "p/base:latest"),
                         "p/pylab:latest": _item("b", "p/pylab:latest", "p/pylab:trixie"),
                         "debian:trixie": _item("c", "debian:trixie")})
    found = engine.images_by_ref(["debian:trixie", "p/base:latest", "p/pylab:latest",
                                  "p/rlab:latest"])
    assert engine.calls == [("image", "inspect", "debian:trixie", "p/base:latest",
                             "p/pylab:latest", "p/rlab:latest")]
    assert found["p/rlab:latest"] is None
    pylab = found["p/pylab:latest"]
    assert pylab is not None and pylab.id == "b" * 64
    assert pylab.labels == {"org.pyrlab.image": "p/pylab:latest"}
    base = found["debian:trixie"]
    assert base is not None and base.id == "c" * 64


def test_other_spellings_and_ids_are_matched_in_the_same_command() -> None:
    # "p/x" is tagged as localhost/p/x:latest (Podman's spelling); an ID carries no tag.
    engine = _Answering({"localhost/p/x:latest": _item("d", "localhost/p/x:latest"),
                         "sha256:" + "e" * 64: _item("e")})
    engine.known["p/x"] = engine.known["localhost/p/x:latest"]
    found = engine.images_by_ref(["p/x", "sha256:" + "e" * 64])
    assert found["p/x"] is not None and found["p/x"].id == "d" * 64
    assert found["sha256:" + "e" * 64] is not None
    assert len(engine.calls) == 1  # both existed: matched by tag and by position


# --------------------------------------------------------------------------- build cache


def test_pyrlab_records_include_the_layers_built_on_them_and_nothing_else() -> None:
    from pyrlab.engines.buildcache import marked_records

    records = [
        {"ID": "apt", "Description": "mount / from exec /bin/bash -c /run/pyrlab/bin/apt-install"},
        {"ID": "copy", "Description": "fileop target", "Parent": "apt"},
        {"ID": "inv", "Description": "mount / from exec /opt/venv/bin/python inventory.py",
         "Parent": "copy"},
        {"ID": "uvcache", "Description": "cached mount /var/cache/pyrlab/uv from exec "
                                         "/bin/bash -c /run/pyrlab/bin/uv-install"},
        {"ID": "theirs", "Description": "mount / from exec /bin/sh -c make", "Parent": "base"},
        {"ID": "base", "Description": "pulled from docker.io/library/debian"},
        {"ID": "both", "Description": "fileop target", "Parent": "base, inv"},
    ]
    assert marked_records(records) == ["apt", "copy", "inv", "uvcache", "both"]
    assert marked_records(records, "/bin/sh -c make") == ["theirs"]


def test_pruning_goes_round_until_children_let_their_parents_go() -> None:
    from pyrlab.engines.buildcache import prune

    cache = {"a": {"ID": "a", "Description": "/run/pyrlab/bin/x"},
             "b": {"ID": "b", "Description": "fileop target", "Parent": "a"},
             "c": {"ID": "c", "Description": "other"}}

    def remove(record_id: str) -> None:  # BuildKit keeps a record that has a child
        if not any(r.get("Parent") == record_id for r in cache.values()):
            cache.pop(record_id, None)

    removed = prune(lambda: list(cache.values()), remove)
    assert sorted(removed) == ["a", "b"] and list(cache) == ["c"]


# --------------------------------------------------------------------------- rootless Podman


def rootless(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, uid: int = 1000) -> Path:
    """As an ordinary user (uid) with no TMPDIR and XDG_CACHE_HOME=tmp_path/cache."""
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pyrlab" / "buildah-tmp"


def test_rootless_podman_builds_keep_cache_mounts_out_of_roots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Buildah 1.28 keeps everyone's cache mounts in $TMPDIR/buildah-cache (/var/tmp): a
    # user's build there fails in apt once root's builds made it.
    own = rootless(monkeypatch, tmp_path)
    assert Podman("podman").build_env() == {"TMPDIR": str(own)}
    assert own.is_dir() and stat.S_IMODE(own.stat().st_mode) == 0o700
    (own / "buildah-cache" / "pyrlab-uv").mkdir(parents=True)
    assert Podman("podman").prune_build_cache() == [str(own / "buildah-cache" / "pyrlab-uv")]
    # A TMPDIR the user set is theirs to choose; root's builds keep buildah's default.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert Podman("podman").build_env() == {}
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert Podman("podman").build_env() == {}


def test_rootless_podman_maps_the_user_to_the_labs_uid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = RunRequest(image="p/pylab:latest", name="pyrlab-pylab-8888", user="4242:4343",
                     mounts=(Mount(tmp_path, "/home/notebook/work"),))
    rootless(monkeypatch, tmp_path)
    argv = Podman("podman").run_argv(lab)
    assert argv[:4] == ["podman", "run", "--userns", "keep-id:uid=4242,gid=4343"]
    assert argv[argv.index("--user") + 1] == "4242:4343"
    # Nothing mounted (a self-test), or root's Podman: no user namespace to map.
    assert "--userns" not in Podman("podman").run_argv(
        RunRequest(image="p/pylab:latest", name="t", user="4242:4343"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--userns" not in Podman("podman").run_argv(lab)


def test_rootless_podman_on_vfs_says_so_in_its_engine_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "podman"
    driver = tmp_path / "driver"
    # `info --format {{json .}}` answers that it works; the store's driver comes from a file.
    fake.write_text(f"""#!/bin/sh
case "$3" in
  *GraphDriverName*) cat {driver};;
  *) echo '{{}}';;
esac
""")
    fake.chmod(0o755)
    rootless(monkeypatch, tmp_path)
    driver.write_text("vfs\n")
    podman = Podman(str(fake))
    podman.check_available()
    assert podman.describe() == f"podman ({fake} build; {VFS_NOTE})"
    driver.write_text("overlay\n")
    podman = Podman(str(fake))
    podman.check_available()
    assert podman.describe() == f"podman ({fake} build)"
