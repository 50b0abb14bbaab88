"""`pyrlab push` and `build --cache-from` without an engine: registry parsing and its
refusals, push and cache argv per engine, reading push output, the record file, and the
config key."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import DIGEST, FakeEngine
from labfiles import init_lab

from pyrlab.cli import main
from pyrlab.commands.push import parse_registry, split_ref
from pyrlab.config.readers import load_config
from pyrlab.contents.pushed import (
    PUSHED_NAME,
    Pushed,
    PushRecord,
    pushed_refs,
    read_record,
    record_pushes,
    render_record,
)
from pyrlab.engines.base import (
    BuildRequest,
    printed_digest,
    push_refusal,
)
from pyrlab.engines.docker import DockerBuildx, DockerClassic
from pyrlab.engines.podman import Podman, cache_repository
from pyrlab.errors import EXIT_REGISTRY, ConfigError, NotBuiltError, RegistryError, UsageError
from pyrlab.imagebuild.executor import cache_sources
from pyrlab.imagebuild.logs import BuildLog
from pyrlab.imagebuild.progress import Progress

OTHER = "sha256:" + "cd" * 32
IID = Path("/lab/.pylab.iid")

# ----------------------------------------------------------------- registry


@pytest.mark.parametrize(("text", "prefix", "plain"), [
    ("registry.example.org/team", "registry.example.org/team/", False),
    ("https://registry.example.org:5000/team/sub/", "registry.example.org:5000/team/sub/", False),
    ("http://127.0.0.1:5000/me", "127.0.0.1:5000/me/", True),
    ("http://localhost:5000/me", "localhost:5000/me/", True),
    ("myname", "myname/", False),  # the engine's default registry (Docker Hub)
])
def test_registry_forms(text: str, prefix: str, plain: bool) -> None:
    registry = parse_registry(text)
    assert (registry.prefix, registry.plain_http) == (prefix, plain)


def test_plain_http_to_another_host_is_refused_before_anything_is_tried() -> None:
    with pytest.raises(RegistryError) as caught:
        parse_registry("http://registry.example.org:5000/team")
    assert "plain HTTP" in caught.value.message
    assert "insecure-registries" in (caught.value.hint or "")
    with pytest.raises(RegistryError):
        parse_registry("http://10.0.0.5:5000/team")
    with pytest.raises(RegistryError):
        parse_registry("http://team")  # Docker Hub over HTTP


@pytest.mark.parametrize("text", ["ftp://host/ns", "Host With Space/ns", "/", "reg/UPPER"])
def test_bad_registries_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_registry(text)


def test_split_ref_keeps_a_port_out_of_the_tag() -> None:
    assert split_ref("127.0.0.1:5000/ns/debian:trixie") == ("127.0.0.1:5000/ns/debian", "trixie")
    assert split_ref("127.0.0.1:5000/ns/debian") == ("127.0.0.1:5000/ns/debian", "latest")
    assert split_ref("pyrlab-debian:trixie") == ("pyrlab-debian", "trixie")
    assert cache_repository("127.0.0.1:5000/ns/pylab:latest") == "127.0.0.1:5000/ns/pylab"
    assert cache_repository(f"reg/pylab@{DIGEST}") == "reg/pylab"


# ----------------------------------------------------------------- argv and output


def test_docker_builds_carry_their_inline_cache_and_take_cache_from_refs() -> None:
    request = BuildRequest(context=Path("/c"), cache_from=("reg/team/pylab:latest",
                                                             "reg/team/pyrlab-base:latest"))
    for engine in (DockerBuildx("docker"), DockerClassic("docker")):
        argv = engine.build_argv(request, IID)
        assert "BUILDKIT_INLINE_CACHE=1" in argv
        assert argv[argv.index("BUILDKIT_INLINE_CACHE=1") - 1] == "--build-arg"
        froms = [argv[i + 1] for i, a in enumerate(argv) if a == "--cache-from"]
        assert froms == ["reg/team/pylab:latest", "reg/team/pyrlab-base:latest"]
        assert argv[-1] == "/c"
    plain = DockerBuildx("docker").build_argv(BuildRequest(context=Path("/c")), IID)
    assert "--cache-from" not in plain


def test_podman_takes_a_cache_repository_and_skips_tls_only_when_asked() -> None:
    podman = Podman("podman")
    argv = podman.build_argv(BuildRequest(context=Path("/c"),
                                          cache_from=("127.0.0.1:5000/ns/pylab:latest",)), IID)
    assert argv[argv.index("--cache-from") + 1] == "127.0.0.1:5000/ns/pylab"
    assert "BUILDKIT_INLINE_CACHE=1" not in argv
    push = podman.push_argv("127.0.0.1:5000/ns/pylab:latest", Path("/d"), plain_http=True)
    assert push == ["podman", "push", "--digestfile", "/d", "--tls-verify=false",
                    "127.0.0.1:5000/ns/pylab:latest"]
    assert "--tls-verify=false" not in podman.push_argv("r/ns/p:latest", Path("/d"),
                                                        plain_http=False)
    assert DockerBuildx("docker").push_argv("r/ns/p:latest", Path("/d"), plain_http=True) == [
        "docker", "push", "r/ns/p:latest"]


def test_the_digest_docker_push_prints_last() -> None:
    lines = ["The push refers to repository [127.0.0.1:5000/ns/pylab]",
             "5f70bf18a086: Pushed", f"latest: digest: {DIGEST} size: 1781"]
    assert printed_digest(lines) == DIGEST
    assert printed_digest(["no digest here"]) == ""


@pytest.mark.parametrize(("line", "says", "hint"), [
    (("Get \"https://nonexistent.invalid:5000/v2/\": dial tcp: lookup nonexistent.invalid on "
     "10.0.0.1:53: no such host"), "is unknown", "--registry"),
    ("no basic auth credentials", "refused the credentials", "docker login 127.0.0.1:5000"),
    ("unauthorized: authentication required", "refused the credentials", "login"),
    ("dial tcp 127.0.0.1:5000: connect: connection refused", "cannot be reached", "running"),
    ("http: server gave HTTP response to HTTPS client", "plain HTTP", "TLS"),
])
def test_push_refusals_say_why_and_what_to_do(line: str, says: str, hint: str) -> None:
    message, advice = push_refusal("127.0.0.1:5000/ns/pylab:latest",
                                   ["+ docker push x", "The push refers to repository", line])
    assert says in message and line.split(":")[0] in message
    assert hint in advice


# ----------------------------------------------------------------- the record file


def _pushed(name: str, digest: str = DIGEST) -> Pushed:
    return Pushed(f"127.0.0.1:5000/ns/{name}", digest, "sha256:" + "ef" * 32,
                  (f"127.0.0.1:5000/ns/{name}:latest", f"127.0.0.1:5000/ns/{name}:trixie"))


def test_the_record_round_trips_and_a_later_push_keeps_the_other_images(tmp_path: Path) -> None:
    assert read_record(tmp_path).images == {}
    record_pushes(tmp_path, {"pyrlab-base": _pushed("pyrlab-base"), "pylab": _pushed("pylab")},
                  _pushed("debian"))
    record_pushes(tmp_path, {"pylab": _pushed("pylab", OTHER)}, None)
    record = read_record(tmp_path)
    assert record.images["pylab"].digest == OTHER
    assert record.images["pyrlab-base"].digest == DIGEST
    assert record.base is not None and record.base.ref == f"127.0.0.1:5000/ns/debian@{DIGEST}"
    assert pushed_refs(tmp_path) == {"pylab": f"127.0.0.1:5000/ns/pylab@{OTHER}",
                                     "pyrlab-base": f"127.0.0.1:5000/ns/pyrlab-base@{DIGEST}"}
    text = (tmp_path / PUSHED_NAME).read_text()
    assert text.index("[base]") < text.index("[images.pylab]") < text.index("[images.pyrlab-base]")
    assert render_record(record) == text  # the same pushes, the same bytes


def test_a_dotted_image_name_is_quoted(tmp_path: Path) -> None:
    (tmp_path / PUSHED_NAME).write_text(render_record(PushRecord({"py.lab": _pushed("py.lab")})))
    assert set(read_record(tmp_path).images) == {"py.lab"}


def test_a_broken_record_names_the_file(tmp_path: Path) -> None:
    (tmp_path / PUSHED_NAME).write_text("[images.pylab]\nref = 3\n")
    with pytest.raises(ConfigError) as caught:
        read_record(tmp_path)
    assert PUSHED_NAME in caught.value.message


# ----------------------------------------------------------------- config and command line


def test_cache_from_config_and_prefix_expansion(tmp_path: Path) -> None:
    init_lab(tmp_path)
    with (tmp_path / "pyrlab.toml").open("a") as file:
        file.write('\n[build]\ncache_from = ["reg.example.org/team/", "other/pylab:v1"]\n')
    config = load_config(tmp_path)
    refs = cache_sources(config, ["reg.example.org/team/pylab:latest", "extra/x:1"])
    assert refs[:len(config.images)] == tuple(f"reg.example.org/team/{n}:latest"
                                              for n in config.images)
    assert refs[len(config.images):] == ("other/pylab:v1", "extra/x:1")  # no duplicate


def test_a_bad_cache_from_names_its_key(tmp_path: Path) -> None:
    init_lab(tmp_path)
    with (tmp_path / "pyrlab.toml").open("a") as file:
        file.write('\n[build]\ncache_from = ["not a ref"]\n')
    line = len((tmp_path / "pyrlab.toml").read_text().splitlines())  # the last one
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert f"pyrlab.toml:{line}: build.cache_from[0]" in caught.value.message


def test_push_without_a_registry_or_with_plain_http_elsewhere(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_lab(tmp_path)
    assert main(["push", "-C", str(tmp_path)]) == 2
    assert "nowhere to push" in capsys.readouterr().err
    assert main(["push", "-C", str(tmp_path), "--registry", "http://192.0.2.1/ns"]) \
        == EXIT_REGISTRY
    err = capsys.readouterr().err
    assert "plain HTTP" in err and "hint:" in err and "Traceback" not in err
    assert main(["build", "-C", str(tmp_path), "--cache-from", "Not/A Ref"]) == 2
    assert "--cache-from" in capsys.readouterr().err


# ----------------------------------------------------------------- tags made for a push


def fake(tags: dict[str, str], refuse: str = "") -> FakeEngine:
    """Tags as given (the image "base" is a bootstrapped base); pushes under `refuse` are
    refused the way a registry would."""
    engine = FakeEngine(tags=tags)
    if "base" in engine.images:
        engine.images["base"] = {"org.pyrlab.bootstrap": "trixie"}
    engine.refuse = refuse
    return engine


LOCAL = {"pyrlab-debian:trixie": "base", "pyrlab-base:latest": "b1", "pyrlab-base:trixie": "b1",
         "pylab:latest": "p1", "pylab:trixie": "p1",
         "reg.example.org/team/pylab:latest": "someone-elses"}


def _push(tmp_path: Path, engine: FakeEngine, registry: str) -> None:
    from pyrlab.commands.push import push_all, uploads

    config = load_config(init_lab(tmp_path))
    target = parse_registry(registry)
    base, images = uploads(config, engine, None, target)
    with BuildLog(tmp_path / "push.log") as log:
        push_all(engine, target, [*([base] if base else []), *images], log, Progress())


def test_a_push_leaves_every_local_tag_as_it_was(tmp_path: Path) -> None:
    engine = fake(LOCAL)
    _push(tmp_path, engine, "reg.example.org/team")
    assert engine.pushed == ["reg.example.org/team/pyrlab-debian:trixie",
                             "reg.example.org/team/pyrlab-base:latest",
                             "reg.example.org/team/pyrlab-base:trixie",
                             "reg.example.org/team/pylab:latest",
                             "reg.example.org/team/pylab:trixie"]
    assert engine.refs == LOCAL  # the tag that named another image names it again


def test_a_refused_push_leaves_every_local_tag_as_it_was(tmp_path: Path) -> None:
    engine = fake(LOCAL, refuse="reg.example.org/team/pylab")
    with pytest.raises(RegistryError) as caught:
        _push(tmp_path, engine, "reg.example.org/team")
    assert "refused the credentials" in caught.value.message
    assert "reg.example.org/team/pylab:latest" not in engine.pushed
    assert engine.refs == LOCAL


def test_pushing_an_image_that_is_not_built_names_the_fix(tmp_path: Path) -> None:
    from pyrlab.commands.push import uploads

    config = load_config(init_lab(tmp_path))
    engine = fake({"pyrlab-base:latest": "b1"})
    with pytest.raises(NotBuiltError) as caught:
        uploads(config, engine, ["pylab"], parse_registry("reg.example.org/team"))
    assert "pylab:latest" in caught.value.message and "pyrlab build pylab" in (
        caught.value.hint or "")


def test_pushing_to_the_config_prefix_pushes_the_local_tags_themselves(tmp_path: Path) -> None:
    from pyrlab.commands.push import push_all, registry_for, uploads

    init_lab(tmp_path)
    text = (tmp_path / "pyrlab.toml").read_text()
    (tmp_path / "pyrlab.toml").write_text('prefix = "reg.example.org/team/"\n' + text)
    config = load_config(tmp_path)
    local = {"pyrlab-debian:trixie": "base",
             **{f"reg.example.org/team/{name}:{tag}": name
                for name in ("pyrlab-base", "pylab") for tag in ("latest", "trixie")}}
    engine = fake(local)
    target = registry_for(config, None)
    base, images = uploads(config, engine, ["pylab"], target)
    assert base is not None and [u.name for u in images] == ["pyrlab-base", "pylab"]
    made: list[str] = []
    engine.tag = lambda source, ref: made.append(ref)  # type: ignore[method-assign]
    with BuildLog(tmp_path / "push.log") as log:
        push_all(engine, target, [base, *images], log, Progress())
    assert made == ["reg.example.org/team/pyrlab-debian:trixie"]  # only the base's name
    assert "reg.example.org/team/pylab:trixie" in engine.pushed
