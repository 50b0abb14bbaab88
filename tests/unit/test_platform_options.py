"""Choosing the platforms of a build (issue 23, step 1): `[build] platforms` in pyrlab.toml,
`--platform` on `build`, `upgrade` and `up`, the one function that decides
(orchestration.target_platforms), and, until builds for another platform land, the one
clear refusal of any but the engine's own. The engine's own builds as before: same plan,
same input hashes, nothing rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import ORDER, FakeEngine
from labfiles import pyrlab, write
from test_run_lifecycle import free_port

from pyrlab.cli import build_parser, main
from pyrlab.config.model import Config
from pyrlab.config.readers import load_config
from pyrlab.errors import EXIT_BUILD, EXIT_CONFIG, EXIT_USAGE, ConfigError
from pyrlab.imagebuild.orchestration import Targets, target_platforms
from pyrlab.platforms import NATIVE


def load(root: Path, build_table: str = "", *, environ: dict[str, str] | None = None,
         sets: tuple[str, ...] = ()) -> Config:
    write(root, "pyrlab.toml", f'name = "p"\n\n[build]\n{build_table}')
    return load_config(root, environ=environ or {}, sets=sets)


def problems(root: Path, build_table: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(root, build_table, **kwargs)  # type: ignore[arg-type]
    assert caught.value.exit_code == EXIT_CONFIG
    return [str(p) for p in caught.value.problems]


def set_platforms(lab: Path, line: str) -> int:
    """Append `[build] platforms = …` to the lab's pyrlab.toml; the line it is on."""
    path = lab / "pyrlab.toml"
    text = path.read_text() + f"\n[build]\nplatforms = {line}\n"
    path.write_text(text)
    return len(text.splitlines())


# --------------------------------------------------------------------------- the config


def test_platforms_are_read_in_one_spelling_in_their_order(tmp_path: Path) -> None:
    assert load(tmp_path).build.platforms == ()
    config = load(tmp_path, 'platforms = ["linux/arm64/v8", "x86_64"]\n')
    assert config.build.platforms == ("linux/arm64", "linux/amd64")
    assert load(tmp_path, "platforms = []\n").build.platforms == ()  # as not set


def test_each_wrong_platform_is_named_by_its_line_and_index(tmp_path: Path) -> None:
    found = problems(tmp_path, 'cache_from = []\nplatforms = ["linux/amd64", "linux/amr64",\n'
                     '  "aarch64", "linux/arm64", "linux/arm/v7", 5]\n')
    assert found == [
        ("pyrlab.toml:5: build.platforms[1]: unknown platform 'linux/amr64': pyrlab builds "
        "for linux/amd64 and linux/arm64; did you mean linux/arm64?"),
        ("pyrlab.toml:5: build.platforms[3]: linux/arm64 is listed twice (build.platforms[2] "
        "is linux/arm64 too); remove one"),
        ("pyrlab.toml:5: build.platforms[4]: linux/arm/v7 is not supported: pyrlab builds for "
        "linux/amd64 and linux/arm64"),
        ("pyrlab.toml:5: build.platforms[5]: expected a platform such as 'linux/arm64', got "
        "an integer"),
    ]
    assert problems(tmp_path, "platforms = 64\n") == [
        ('pyrlab.toml:4: build.platforms: expected an array of platforms such as '
        '["linux/amd64", "linux/arm64"], got an integer')]
    assert problems(tmp_path, 'platfroms = ["linux/arm64"]\n') == [
        ("pyrlab.toml:4: build.platfroms: unknown key; did you mean build.platforms? "
        "(known: cache_from, platforms)")]


def test_set_and_the_environment_give_platforms_as_every_key(tmp_path: Path) -> None:
    config = load(tmp_path, sets=("build.platforms=linux/arm64",))
    assert config.build.platforms == ("linux/arm64",)
    assert config.source_of("build.platforms") == "--set build.platforms"
    config = load(tmp_path, sets=('build.platforms=["linux/amd64", "linux/arm64"]',))
    assert config.build.platforms == ("linux/amd64", "linux/arm64")
    config = load(tmp_path, environ={"PYRLAB_BUILD__PLATFORMS": "arm64"})
    assert config.build.platforms == ("linux/arm64",)
    assert config.source_of("build.platforms") == "environment PYRLAB_BUILD__PLATFORMS"
    # A wrong one names the override, not a line of the file.
    assert problems(tmp_path, "", sets=("build.platforms=linux/amd46",)) == [
        ("pyrlab.toml: build.platforms[0]: unknown platform 'linux/amd46': pyrlab builds for "
        "linux/amd64 and linux/arm64; did you mean linux/amd64? (from --set build.platforms)")]


def test_pyrlab_config_shows_the_platforms_and_where_they_came_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load(tmp_path, 'platforms = ["linux/arm64/v8"]\n')
    code, out, _ = pyrlab(capsys, "-C", str(tmp_path), "--json", "config")
    assert code == 0
    shown = {s["key"]: s for s in json.loads(out)["settings"]}
    assert shown["build.platforms"] == {"key": "build.platforms", "value": ["linux/arm64"],
                                        "source": "pyrlab.toml"}


# --------------------------------------------------------------------------- who decides


@pytest.mark.parametrize(("flag", "configured", "recorded", "chosen"), [
    ((), (), (), Targets((NATIVE,), "default")),
    ((), (), ("linux/arm64",), Targets(("linux/arm64",), "pyrlab.lock")),
    ((), ("linux/amd64", "linux/arm64"), ("linux/arm64",),
     Targets(("linux/amd64", "linux/arm64"), "build.platforms")),
    (("linux/arm64",), ("linux/amd64",), (), Targets(("linux/arm64",), "--platform")),
    (("linux/arm64", "linux/arm64"), (), (), Targets(("linux/arm64",), "--platform")),
    (("all",), ("linux/amd64", "linux/arm64"), (),
     Targets(("linux/amd64", "linux/arm64"), "--platform all")),
    (("all",), (), (), Targets((NATIVE,), "default")),  # all of none configured
])
def test_the_flag_then_the_config_then_the_lock_then_the_engine_s_own(
        tmp_path: Path, flag: tuple[str, ...], configured: tuple[str, ...],
        recorded: tuple[str, ...], chosen: Targets) -> None:
    config = load(tmp_path, f"platforms = {json.dumps(list(configured))}\n")
    assert target_platforms(config, flag, recorded=recorded) == chosen


# --------------------------------------------------------------------------- the command line


def test_build_and_upgrade_take_platforms_up_takes_one() -> None:
    parser = build_parser()
    args = parser.parse_args(["build", "--platform", "linux/arm64/v8", "--platform", "amd64"])
    assert args.platforms == ["linux/arm64", "linux/amd64"]
    assert parser.parse_args(["build"]).platforms == []
    assert parser.parse_args(["upgrade", "--platform", "ALL"]).platforms == ["all"]
    assert parser.parse_args(["up", "pylab", "--platform", "aarch64"]).platform == "linux/arm64"
    assert parser.parse_args(["up", "pylab"]).platform is None


@pytest.mark.parametrize(("argv", "says"), [
    (["build", "--platform", "linux/amr64"], ("argument --platform: unknown platform "
     "'linux/amr64': pyrlab builds for linux/amd64 and linux/arm64; did you mean linux/arm64?")),
    (["up", "pylab", "--platform", "all"], "argument --platform: unknown platform 'all'"),
    (["upgrade", "--platform", "windows/amd64"], ("argument --platform: windows/amd64 is not "
     "a Linux platform")),
])
def test_a_wrong_platform_on_the_command_line_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == EXIT_USAGE
    assert f"pyrlab: error: {says}" in capsys.readouterr().err


def test_completion_offers_the_supported_platforms(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from test_completion import candidates

    for name in ("_ARGCOMPLETE", "_ARGCOMPLETE_SUPPRESS_SPACE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("PYRLAB_USER_CONFIG", "")
    assert candidates(monkeypatch, "pyrlab build --platform ", tmp_path) == [
        "linux/amd64", "linux/arm64", "all"]
    assert candidates(monkeypatch, "pyrlab outdated --platform ", tmp_path) == [
        "linux/amd64", "linux/arm64", "all"]
    assert candidates(monkeypatch, "pyrlab up pylab --platform linux/a", tmp_path) == [
        "linux/amd64", "linux/arm64"]
    assert candidates(monkeypatch, "pyrlab --set build.platforms=", tmp_path) == [
        "build.platforms=linux/amd64", "build.platforms=linux/arm64"]


# --------------------------------------------------------------------------- the refusal


def planned(capsys: pytest.CaptureFixture[str], lab: Path, *args: str,
            ) -> list[tuple[str, str | None, str]]:
    """(image, platform or None for the engine's own, ref) of `build --dry-run`."""
    code, out, err = pyrlab(capsys, "build", "-C", str(lab), "--dry-run", "--json", *args)
    assert code == 0, err
    return [(i["name"], i["platform"], i["ref"]) for i in json.loads(out)["images"]]


def test_a_build_for_another_platform_plans_that_platform_s_images(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert planned(capsys, lab, "--platform", "linux/arm64") == [
        ("pyrlab-base", "linux/arm64", "t/pyrlab-base/arm64:latest"),
        ("pylab", "linux/arm64", "t/pylab/arm64:latest"),
        ("pylab-torch", "linux/arm64", "t/pylab-torch/arm64:latest"),
        ("other", "linux/arm64", "t/other/arm64:latest")]
    assert engine.built == [] and not (lab / "pyrlab.lock").exists()
    # `upgrade --dry-run` is `outdated` of that platform's images: none is built yet.
    code, out, err = pyrlab(capsys, "upgrade", "--dry-run", "-C", str(lab), "--platform", "arm64")
    assert code == 0, err
    assert out.startswith("linux/arm64:\n")
    assert "pylab: not built, not checked (`pyrlab build pylab --platform linux/arm64`)" in out
    assert engine.built == [] and engine.runs == []


def test_the_configured_platforms_are_each_planned_the_engine_s_own_first(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    set_platforms(lab, '["linux/arm64", "linux/amd64"]')
    both = planned(capsys, lab)
    assert [(name, platform) for name, platform, _ in both] == [
        *[(name, None) for name in ORDER], *[(name, "linux/arm64") for name in ORDER]]
    assert planned(capsys, lab, "--platform", "all") == both
    # An override chooses as the file does.
    assert {p for _, p, _ in planned(capsys, lab, "--set", "build.platforms=arm64")} == {
        "linux/arm64"}


def test_the_engine_s_own_platform_is_whatever_it_says(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    engine.host_platform = "linux/arm64"  # an arm64 machine: amd64 is the foreign one
    assert {(p, ref) for name, p, ref in planned(capsys, lab, "--platform", "arm64")
            if name == "pylab"} == {(None, "t/pylab:latest")}
    assert {(p, ref) for name, p, ref in planned(capsys, lab, "--platform", "linux/amd64")
            if name == "pylab"} == {("linux/amd64", "t/pylab/amd64:latest")}


def test_up_for_another_platform_builds_that_platform_s_image(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    """`up --platform` builds what is missing, on the platform's base (the fake registry
    has none for arm64 here: the error names it); with --no-build it starts that
    platform's image if there is one (test_run_lifecycle.py), and names it when there is
    none."""
    port = free_port()  # (a lab of this machine may hold 8888)
    code, _, err = pyrlab(capsys, "up", "pylab", "-C", str(lab), "--platform", "linux/arm64",
                          "--set", f"images.pylab.ports.lab={port}", "--timeout", "1")
    assert code == EXIT_BUILD, err
    assert "pyrlab: error: the base image t/debian:trixie cannot be pulled for linux/arm64" \
        in err
    assert engine.built == [] and engine.runs == []
    code, _, err = pyrlab(capsys, "up", "pylab", "-C", str(lab), "--platform", "linux/arm64",
                          "--set", f"images.pylab.ports.lab={port}", "--timeout", "1",
                          "--no-build")
    assert "pyrlab: error: image t/pylab/arm64:latest is not built" in err
    assert "pyrlab: hint: build it with `pyrlab build pylab --platform linux/arm64`" in err
    assert engine.built == [] and engine.runs == []


# --------------------------------------------------------------------------- the host's


def plan(capsys: pytest.CaptureFixture[str], lab: Path, *args: str) -> list[tuple[str, str]]:
    code, out, err = pyrlab(capsys, "build", "-C", str(lab), "--dry-run", "--json", *args)
    assert code == 0, err
    return [(i["name"], i["input_hash"]) for i in json.loads(out)["images"]]


def test_the_engine_s_own_platform_builds_exactly_as_before(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    before = plan(capsys, lab)
    assert plan(capsys, lab, "--platform", "linux/amd64") == before
    assert plan(capsys, lab, "--platform", "x86_64", "--platform", "all") == before
    code, _, err = pyrlab(capsys, "build", "-C", str(lab))
    assert code == 0, err
    built, args = list(engine.built), list(engine.build_args)
    # Named, from the command line or the config, it is the same images: nothing to build.
    set_platforms(lab, '["linux/amd64"]')
    assert plan(capsys, lab) == before
    for argv in (["--platform", "linux/amd64"], []):
        code, out, err = pyrlab(capsys, "build", "-C", str(lab), "--json", *argv)
        assert code == 0, err
        assert {i["action"] for i in json.loads(out)["images"]} == {"skipped"}
    assert engine.built == built and engine.build_args == args


def test_up_builds_the_engine_s_own_whatever_the_config_lists(
        lab: Path, engine: FakeEngine) -> None:
    from pyrlab.config.project import load_project
    from pyrlab.run.start import ensure_image

    set_platforms(lab, '["linux/arm64", "linux/amd64"]')
    ensure_image(load_project(lab, environ={}), engine, "pylab")
    assert engine.built == ["pyrlab-base", "pylab"]
