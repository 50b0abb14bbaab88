"""`pyrlab push` of several platforms (issue 23, step 8) without a registry: which
platforms go, per-arch tags and one index per tag (fake engine), the engines' index
commands (Docker's and Podman's, run for real against stand-in clients that record their
argv), the record's platform tables, and the exports naming the index.

The one-platform push is pinned by test_push_argv.py, unchanged."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
from fakes import DIGEST, FakeEngine, foreign_digest
from inventories import inventory
from labfiles import init_lab, write

from pyrlab.cli import main
from pyrlab.commands.push import (
    _resolved,
    parse_registry,
    push_all,
    push_platforms,
    uploads,
)
from pyrlab.config.model import Config
from pyrlab.config.readers import load_config
from pyrlab.contents.lockfile import Lock, write_lock
from pyrlab.contents.pushed import (
    PUSHED_NAME,
    PlatformPushed,
    Pushed,
    PushRecord,
    pushed_refs,
    read_record,
    render_record,
)
from pyrlab.engines.docker import DockerBuildx
from pyrlab.engines.podman import Podman
from pyrlab.errors import ConfigError, NotBuiltError, RegistryError
from pyrlab.imagebuild.logs import BuildLog
from pyrlab.imagebuild.progress import Progress
from pyrlab.platforms import NATIVE, platform_ref

AMD, ARM = "linux/amd64", "linux/arm64"
REG = "reg.example.org/team"


def _lab(root: Path, *, platforms: tuple[str, ...] = ()) -> Config:
    init_lab(root)
    if platforms:
        with (root / "pyrlab.toml").open("a") as file:
            file.write(f"\n[build]\nplatforms = {json.dumps(list(platforms))}\n")
    return load_config(root)


def _engine(config: Config, arm: tuple[str, ...] = ("pyrlab-base", "pylab"), *,
            arm_base: bool = True) -> FakeEngine:
    """Native images of pyrlab-base and pylab (and a bootstrapped base); arm64 ones of the
    images in `arm`, under their per-platform names, as a build for linux/arm64 leaves
    them."""
    engine = FakeEngine(tags={})
    bootstrap = {"org.pyrlab.bootstrap": "trixie"}
    engine.add_image(config.base.image, "base-amd", bootstrap)
    for name in ("pyrlab-base", "pylab"):
        engine.add_image(config.image_ref(name), f"{name}-amd")
        engine.tag(config.image_ref(name), config.image_ref(name, config.base.tag))
    if arm_base:
        engine.add_image(platform_ref(config.base.image, ARM, AMD), "base-arm", bootstrap)
        engine.image_platforms["base-arm"] = ARM
    for name in arm:
        engine.add_image(config.image_ref(name, platform=ARM, host=AMD), f"{name}-arm")
        engine.image_platforms[f"{name}-arm"] = ARM
    engine.calls.clear()
    return engine


def _push(root: Path, config: Config, engine: FakeEngine,
          platforms: tuple[str, ...] = (AMD, ARM)) -> list[tuple[str, Pushed]]:
    target = parse_registry(REG)
    base, images = uploads(config, engine, None, target, _resolved(engine, platforms))
    with BuildLog(root / "push.log") as log:
        done = push_all(engine, target, [*([base] if base else []), *images], log, Progress())
    return [(u.name, p) for u, p in done]


# ----------------------------------------------------------------- which platforms


def test_push_takes_the_platforms_a_build_is_for(tmp_path: Path) -> None:
    config = _lab(tmp_path / "a")
    assert push_platforms(config) == (NATIVE,)  # no setting, no lock: the engine's own
    assert push_platforms(config, (ARM,)) == (ARM,)
    both = _lab(tmp_path / "b", platforms=(AMD, ARM))
    assert push_platforms(both) == (AMD, ARM)
    assert push_platforms(both, ("all",)) == (AMD, ARM)
    assert push_platforms(both, (AMD,)) == (AMD,)
    # A lock that records two platforms (version 2) decides where nothing else does.
    sections = {"pylab": inventory()}
    write_lock(tmp_path / "a" / "pyrlab.lock",
               Lock().with_platform(AMD, sections).with_platform(ARM, sections))
    assert push_platforms(load_config(tmp_path / "a")) == (AMD, ARM)


def test_the_engines_own_platform_alone_is_todays_push(tmp_path: Path) -> None:
    """(linux/amd64,) on an amd64 engine is (NATIVE,): the local names, the tags pushed
    and the record are exactly those of a push that names no platform."""
    config = _lab(tmp_path)
    engine = _engine(config)
    assert _resolved(engine, (AMD,)) == (NATIVE,)
    assert _resolved(engine, (ARM, NATIVE)) == (AMD, ARM)  # the engine's own first
    done = _push(tmp_path, config, engine, (AMD,))
    assert engine.indexes == []
    assert [ref.rsplit(":", 1)[1] for ref in engine.pushed] == ["trixie", "latest", "trixie",
                                                                 "latest", "trixie"]
    assert all(p.platforms == {} and p.digest == DIGEST for _, p in done)
    assert "platforms" not in render_record(PushRecord({n: p for n, p in done}))


# ----------------------------------------------------------------- per-arch tags and indexes


def test_two_platforms_go_as_per_arch_tags_then_one_index_per_tag(tmp_path: Path) -> None:
    config = _lab(tmp_path)
    engine = _engine(config)
    local = dict(engine.refs)
    done = dict(_push(tmp_path, config, engine))
    pylab = f"{REG}/pylab"
    # Each platform's image under a tag of its own; the plain tags only as indexes.
    assert [r for r in engine.pushed if r.startswith(f"{pylab}:")] == [
        f"{pylab}:latest-amd64", f"{pylab}:trixie-amd64",
        f"{pylab}:latest-arm64", f"{pylab}:trixie-arm64"]
    arm_digest = foreign_digest("pylab-arm")
    indexes = {ref: listed for ref, listed in engine.indexes}
    assert indexes[f"{pylab}:latest"] == indexes[f"{pylab}:trixie"] == {
        AMD: DIGEST, ARM: arm_digest}
    assert f"{REG}/pyrlab-debian:trixie" in indexes  # the base: both were bootstrapped
    assert [ref for ref, _ in engine.indexes].index(f"{REG}/pyrlab-base:latest") < \
        [ref for ref, _ in engine.indexes].index(f"{pylab}:latest")  # parents first
    # The record: digest and ref are the index's; each platform's manifest beside it.
    record = done["pylab"]
    assert record.digest not in (DIGEST, arm_digest)
    assert record.ref == f"{pylab}@{record.digest}"
    assert record.image_id == "sha256:pylab-amd"  # the engine's own platform's
    assert record.tags == (f"{pylab}:latest", f"{pylab}:trixie")
    assert record.platforms == {
        AMD: PlatformPushed(DIGEST, "sha256:pylab-amd",
                            (f"{pylab}:latest-amd64", f"{pylab}:trixie-amd64")),
        ARM: PlatformPushed(arm_digest, "sha256:pylab-arm",
                            (f"{pylab}:latest-arm64", f"{pylab}:trixie-arm64"))}
    assert engine.refs == local  # every tag made for the push went again


def test_an_image_built_for_one_platform_of_two_is_refused_before_any_push(
        tmp_path: Path) -> None:
    config = _lab(tmp_path)
    engine = _engine(config, arm=("pyrlab-base",))
    with pytest.raises(NotBuiltError) as caught:
        _push(tmp_path, config, engine)
    assert "pylab for linux/arm64" in caught.value.message
    assert "--platform linux/amd64 --platform linux/arm64" in (caught.value.hint or "")
    assert engine.pushed == [] and engine.indexes == []


def test_an_image_for_another_platform_than_its_name_says_is_refused(tmp_path: Path) -> None:
    config = _lab(tmp_path)
    engine = _engine(config)
    engine.image_platforms["pylab-arm"] = "linux/riscv64"
    with pytest.raises(NotBuiltError) as caught:
        _push(tmp_path, config, engine)
    assert "is an image for linux/riscv64, not linux/arm64" in caught.value.message
    assert engine.pushed == []


def test_the_base_goes_alone_when_it_was_bootstrapped_for_one_platform(tmp_path: Path) -> None:
    config = _lab(tmp_path)
    engine = _engine(config, arm_base=False)
    done = dict(_push(tmp_path, config, engine))
    assert done["base"].platforms == {} and done["base"].image_id == "sha256:base-amd"
    assert f"{REG}/pyrlab-debian:trixie" in engine.pushed  # pushed plainly, as today
    assert done["pylab"].platforms  # the graph's images are still indexes


def test_a_refused_index_leaves_every_local_tag_as_it_was(tmp_path: Path) -> None:
    config = _lab(tmp_path)
    engine = _engine(config)
    local = dict(engine.refs)
    engine.refuse = f"{REG}/pyrlab-debian:trixie"  # the first index (per-arch tags differ)
    with pytest.raises(RegistryError) as caught:
        _push(tmp_path, config, engine)
    assert "refused the credentials" in caught.value.message
    assert engine.indexes == [] and engine.refs == local


# ----------------------------------------------------------------- the command and the exports


def test_push_command_records_the_index_and_the_exports_name_it(
        tmp_path: Path, use_engine: object, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "lab"
    config = _lab(root, platforms=(AMD, ARM))
    engine = _engine(config)
    use_engine(engine)  # type: ignore[operator]
    capsys.readouterr()  # init's words
    assert main(["push", "-C", str(root), "--registry", REG, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    pylab = next(image for image in data["images"] if image["name"] == "pylab")
    assert set(pylab["platforms"]) == {AMD, ARM}
    index = pylab["digest"]
    assert pylab["ref"] == f"{REG}/pylab@{index}"
    # The file: the index in the four keys every pyrlab reads, the platforms below.
    text = (root / PUSHED_NAME).read_text()
    raw = tomllib.loads(text)["images"]["pylab"]
    assert (raw["ref"], raw["digest"]) == (pylab["ref"], index)
    assert set(raw["platforms"]) == {AMD, ARM}
    assert '[images.pylab.platforms."linux/arm64"]' in text
    assert render_record(read_record(root)) == text  # round trip, same bytes
    assert pushed_refs(root)["pylab"] == f"{REG}/pylab@{index}"
    # The hub's files name the index, from which each node pulls its own platform.
    arm = pylab["platforms"][ARM]["digest"]
    for kind in ("docker", "kubernetes"):
        assert main(["export", "jupyterhub", "-C", str(root), "--kind", kind,
                     "--registry", REG, "--json"]) == 0
        exported = json.loads(capsys.readouterr().out)
        assert f"{REG}/pylab@{index}" in exported["text"]
        assert arm not in exported["text"] and DIGEST not in exported["text"]


def test_a_record_without_platform_tables_reads_as_before_and_bad_ones_name_the_key(
        tmp_path: Path) -> None:
    old = Pushed(f"{REG}/pylab", DIGEST, "sha256:" + "ef" * 32, (f"{REG}/pylab:latest",))
    (tmp_path / PUSHED_NAME).write_text(render_record(PushRecord({"pylab": old})))
    assert read_record(tmp_path).images["pylab"] == old
    write(tmp_path, PUSHED_NAME, f"""\
        [images.pylab]
        ref = "{REG}/pylab@{DIGEST}"
        digest = "{DIGEST}"
        image-id = "sha256:x"
        tags = []
        [images.pylab.platforms."linux/arm64"]
        digest = 3
        """)
    with pytest.raises(ConfigError) as caught:
        read_record(tmp_path)
    assert 'images.pylab.platforms."linux/arm64": expected digest' in caught.value.message


# ----------------------------------------------------------------- the engines' commands


def _client(folder: Path, name: str, fail: str = "") -> Path:
    """A stand-in for the engine's client: it appends its argv to argv.log; `manifest rm`
    of a list that is not there fails as Docker's does; a `manifest push` prints (Docker)
    or writes to --digestfile (Podman) an index digest; the subcommand `fail` exits 1 as
    a registry refusing the credentials makes it."""
    script = folder / name
    script.write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >> "{folder}/argv.log"
if [ "$2" = "{fail}" ]; then echo "unauthorized: authentication required" >&2; exit 1; fi
if [ "$1 $2" = "manifest rm" ] && [ "{name}" = docker ]; then
  echo "No such manifest: $3" >&2; exit 1
fi
if [ "$1 $2" = "manifest push" ]; then
  prev=""
  for arg in "$@"; do
    if [ "$prev" = "--digestfile" ]; then printf 'sha256:%064d' 7 > "$arg"; exit 0; fi
    prev="$arg"
  done
  printf 'sha256:%064d\\n' 7
fi
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


INDEX = "sha256:" + "0" * 63 + "7"
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_docker_makes_and_pushes_the_index_with_its_manifest_commands(tmp_path: Path) -> None:
    engine = DockerBuildx(str(_client(tmp_path, "docker")))
    lines: list[str] = []
    ref = "127.0.0.1:5000/ns/pylab:latest"
    assert engine.push_index(ref, {ARM: B, AMD: A}, lines.append, plain_http=True) == INDEX
    assert (tmp_path / "argv.log").read_text().splitlines() == [
        f"manifest rm {ref}",  # none there: fine
        (f"manifest create --insecure {ref} 127.0.0.1:5000/ns/pylab@{A} "
         f"127.0.0.1:5000/ns/pylab@{B}"),
        f"manifest push --purge --insecure {ref}"]
    assert any(line.startswith("+ ") and "manifest create" in line for line in lines)
    (tmp_path / "argv.log").unlink()
    engine.push_index("reg.example.org/t/pylab:trixie", {AMD: A}, print, plain_http=False)
    assert "--insecure" not in (tmp_path / "argv.log").read_text()


def test_a_refused_index_is_a_registry_error_saying_why(tmp_path: Path) -> None:
    engine = DockerBuildx(str(_client(tmp_path, "docker", fail="create")))
    with pytest.raises(RegistryError) as caught:
        engine.push_index("reg.example.org/t/pylab:latest", {AMD: A, ARM: B}, print)
    assert "refused the credentials" in caught.value.message
    assert "docker login" in (caught.value.hint or "")
    assert "manifest push" not in (tmp_path / "argv.log").read_text()


def test_podman_builds_the_list_under_a_name_of_its_own_and_removes_it(tmp_path: Path) -> None:
    engine = Podman(str(_client(tmp_path, "podman")))
    ref = "127.0.0.1:5000/ns/pylab:latest"
    assert engine.push_index(ref, {AMD: A, ARM: B}, print, plain_http=True) == INDEX
    create, add_a, add_b, push, remove = (tmp_path / "argv.log").read_text().splitlines()
    local = create.split()[-1]
    assert create == f"manifest create {local}" and local.startswith("localhost/pyrlab-index-")
    assert local != ref and local.endswith(":latest")
    assert add_a == f"manifest add --tls-verify=false {local} docker://127.0.0.1:5000/ns/pylab@{A}"
    assert add_b.endswith(f"pylab@{B}")
    assert push.startswith("manifest push --all --digestfile ")
    assert push.endswith(f"--tls-verify=false {local} docker://{ref}")
    assert remove == f"manifest rm {local}"
    # Refused halfway: the list goes all the same.
    os.remove(tmp_path / "argv.log")
    failing = Podman(str(_client(tmp_path, "podman2", fail="add")))
    with pytest.raises(RegistryError):
        failing.push_index(ref, {AMD: A}, print, plain_http=True)
    assert (tmp_path / "argv.log").read_text().splitlines()[-1].startswith("manifest rm ")
