"""Deciding what to build and building it, against an in-memory engine: skips, reasons,
dependency order, tags that move only after success, and the `build` command's output."""

from __future__ import annotations

import io
import json
import re
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fakes import BASE_ID, FILES, FakeEngine
from labfiles import make_project

from pyrlab import proc
from pyrlab.cli import main
from pyrlab.config.model import ProxyConfig
from pyrlab.config.project import Project, load_project
from pyrlab.contents.images import (
    LABEL_DELTA_DEPTH,
    LABEL_INPUT_HASH,
    LABEL_PARENT_ID,
    LABEL_PROJECT,
)
from pyrlab.credentials import mask_url
from pyrlab.dockerfile.render import RenderOptions
from pyrlab.engines.base import (
    BuildRequest,
    ImageInfo,
)
from pyrlab.errors import EXIT_BUILD, BuildError
from pyrlab.gate import ImageTest, build_gate
from pyrlab.imagebuild import executor as executor_module
from pyrlab.imagebuild.executor import (
    Executor,
    Settings,
    failure_error,
    network_mode,
)
from pyrlab.imagebuild.hints import timeout_hint
from pyrlab.imagebuild.logs import KEEP_PER_IMAGE, new_log_path
from pyrlab.imagebuild.planner import (
    MAX_DELTA_DEPTH,
    Decision,
    decide,
    make_plan,
    targets,
)
from pyrlab.imagebuild.progress import Progress
from pyrlab.imagebuild.tagging import promote


def load(root: Path) -> Project:
    return load_project(root, environ={})


def build(root: Path, engine: FakeEngine, names: Sequence[str] | None = None,
          **settings: Any) -> list[executor_module.Outcome]:
    project = load(root)
    plan = make_plan(project, engine, names, no_cache=settings.get("no_cache", False))
    progress = Progress(io.StringIO(), tty=False)
    _, outcomes = Executor(project, engine, Settings(**settings), progress).run(plan)
    progress.close()
    return outcomes


def actions(outcomes: list[executor_module.Outcome]) -> dict[str, str]:
    return {o.name: o.action for o in outcomes}


# --------------------------------------------------------------------------- the plan


def test_nothing_built_yet_plans_every_image_parents_first(lab: Path) -> None:
    plan = make_plan(load(lab), FakeEngine(), None)
    assert [p.target.name for p in plan.images] == ["pyrlab-base", "pylab", "pylab-torch",
                                                    "other"]
    assert {p.decision.reason for p in plan.images} == {"not built yet"}
    assert plan.base.action == "use" and plan.base.image is not None


def test_selecting_an_image_brings_its_ancestors_only(lab: Path) -> None:
    plan = make_plan(load(lab), FakeEngine(), ["pylab-torch"])
    assert [p.target.name for p in plan.images] == ["pyrlab-base", "pylab", "pylab-torch"]


def test_a_second_build_skips_everything(lab: Path) -> None:
    engine = FakeEngine()
    assert set(actions(build(lab, engine)).values()) == {"built"}
    plan = make_plan(load(lab), engine, None)
    assert all(not p.decision.build for p in plan.images)
    assert plan.images[0].decision.reason.startswith("up to date (")
    assert set(actions(build(lab, engine)).values()) == {"skipped"}
    assert len(engine.built) == 4


def test_editing_requirements_rebuilds_that_image_and_its_descendants_only(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    (lab / "requirements.txt").write_text("six\nidna\n")
    plan = make_plan(load(lab), engine, None)
    reasons = {p.target.name: p.decision.reason for p in plan.images if p.decision.build}
    pylab_id = engine.image("t/pylab:latest")
    assert pylab_id is not None
    assert reasons == {
        "pylab": f"changed: Python packages (1 added: a layer on {pylab_id.id[:12]})",
        "pylab-torch": "pylab is built first"}
    outcomes = build(lab, engine)
    assert actions(outcomes) == {"pyrlab-base": "skipped", "pylab": "built",
                                 "pylab-torch": "built", "other": "skipped"}
    assert outcomes[2].reason == "pylab's inputs changed"
    # pylab got a layer on its previous version; pylab-torch, whose parent changed, a full build.
    assert engine.deltas == ["pylab"]
    assert engine.images[engine.refs["t/pylab:latest"]][LABEL_DELTA_DEPTH] == "1"
    assert engine.images[engine.refs["t/pylab-torch:latest"]][LABEL_DELTA_DEPTH] == "0"


def test_only_added_list_lines_build_a_delta(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    requirements = lab / "requirements.txt"

    def pylab_decision() -> Decision:
        plan = make_plan(load(lab), engine, ["pylab"])
        return plan.images[-1].decision

    requirements.write_text("six\nidna\n")  # added
    assert pylab_decision().delta == ("python",)
    requirements.write_text("idna\n")  # six removed
    decision = pylab_decision()
    assert decision.build and decision.delta == ()
    assert decision.reason == "changed: Python packages (entries were removed or changed)"
    requirements.write_text("six>=1\n")  # changed
    assert pylab_decision().delta == ()
    requirements.write_text("six\nidna\n")
    assert make_plan(load(lab), engine, ["pylab"], no_cache=True).images[-1].decision.delta == ()


def test_a_delta_hands_uv_install_just_the_added_lines(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    requirements = lab / "requirements.txt"
    before = requirements.read_text()
    requirements.write_text(before + "idna>=3\nrequests[socks]\n")
    build(lab, engine, ["pylab"])
    assert engine.deltas == ["pylab"]
    assert engine.added == ["idna>=3\nrequests[socks]\n"]
    requirements.write_text(before + "idna>=3\nrequests[socks]\nattrs\n")
    build(lab, engine, ["pylab"])
    assert engine.added[-1] == "attrs\n"  # only what the previous delta did not have


def test_a_build_reads_each_new_manifest_once(lab: Path) -> None:
    """The gate reads the new image's manifest and pyrlab.lock records it: one read."""
    engine = FakeEngine()
    project = load(lab)
    plan = make_plan(project, engine, ["pylab"])
    progress = Progress(io.StringIO(), tty=False)
    built = executor_module.build_plan(project, engine, plan, progress, lock={},
                                       network_host=False, gate=build_gate(project, engine))
    progress.close()
    ids = [o.image_id for o in built.outcomes if o.action == "built"]
    assert len(ids) == 2 and sorted(engine.reads) == sorted(ids)


def test_delta_layers_are_compacted_by_a_full_build(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    requirements = lab / "requirements.txt"
    for i in range(MAX_DELTA_DEPTH + 1):
        requirements.write_text(requirements.read_text() + f"pkg{i}\n")
        build(lab, engine, ["pylab"])
    assert engine.deltas == ["pylab"] * MAX_DELTA_DEPTH  # then one full build
    assert engine.images[engine.refs["t/pylab:latest"]][LABEL_DELTA_DEPTH] == "0"


def test_a_change_besides_the_lists_builds_in_full(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    config = lab / "pyrlab.toml"
    (lab / "requirements.txt").write_text("six\nidna\n")
    config.write_text(config.read_text().replace("[images.pylab]",
                                                 "[images.pylab]\nports = { lab = 8899 }"))
    decision = make_plan(load(lab), engine, ["pylab"]).images[-1].decision
    assert decision.build and decision.delta == ()


def test_a_rebuilt_parent_rebuilds_children_even_when_their_inputs_are_the_same(
        lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    engine.refs["t/pyrlab-base:latest"] = BASE_ID  # as if pyrlab-base was rebuilt elsewhere
    engine.images[BASE_ID] = {LABEL_INPUT_HASH: targets(load(lab), None, RenderOptions())[0]
                              .context.input_hash, LABEL_PARENT_ID: BASE_ID}
    plan = make_plan(load(lab), engine, ["pylab"])
    assert plan.images[1].decision.build
    assert plan.images[1].decision.reason.startswith("pyrlab-base changed (now bbbbbbbbbbbb)")


def test_a_new_base_image_rebuilds_the_whole_graph(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    engine.images["c" * 64] = {}
    engine.refs["t/debian:trixie"] = "c" * 64
    plan = make_plan(load(lab), engine, None)
    assert plan.images[0].decision.reason == "t/debian:trixie changed (now cccccccccccc)"
    assert plan.images[1].decision.reason == "pyrlab-base is built first"
    assert set(actions(build(lab, engine)).values()) == {"built"}


def test_no_cache_rebuilds_everything_selected(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    assert actions(build(lab, engine, ["pylab"], no_cache=True)) == {
        "pyrlab-base": "built", "pylab": "built"}


def test_decide_without_a_known_parent_builds(lab: Path) -> None:
    target = targets(load(lab), None, RenderOptions())[1]
    current = ImageInfo("x", {LABEL_INPUT_HASH: target.context.input_hash}, ())
    assert decide(target, current, None).reason == "pyrlab-base is built first"


def test_missing_bases_are_bootstrapped_or_pulled(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.refs.clear()
    boot = make_project(tmp_path / "boot", {"pyrlab.toml": '[base]\nbootstrap = "trixie"\n'
                                           'debs = []\n[images.pyrlab-base]\n'})
    plan = make_plan(load(boot), engine, None)
    assert (plan.base.ref, plan.base.action) == ("pyrlab-debian:trixie", "bootstrap")
    assert plan.images[0].decision.reason == "not built yet"
    registry = make_project(tmp_path / "reg", {"pyrlab.toml": "[base]\ndebs = []\n"
                                               "[images.pyrlab-base]\n"})
    plan = make_plan(load(registry), engine, None)
    assert (plan.base.ref, plan.base.action) == ("python:3.14-trixie", "pull")
    engine.images["c" * 64] = {LABEL_INPUT_HASH: plan.images[0].target.context.input_hash}
    engine.refs["reg/pyrlab-base:latest"] = "c" * 64  # the project `reg`, named for its folder
    plan = make_plan(load(registry), engine, None, pull=True)
    assert plan.images[0].decision.reason == "python:3.14-trixie is pulled first"


def test_an_unpullable_base_names_the_registry_free_way_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    engine.refs.clear()

    def no_registry(ref: str, on_line: Callable[[str], None]) -> None:
        from pyrlab.errors import EngineError
        raise EngineError(f"cannot pull {ref}: dial tcp: lookup registry-1.docker.io: no such host")

    monkeypatch.setattr(engine, "pull", no_registry)
    root = make_project(tmp_path / "reg", {"pyrlab.toml": "[base]\ndebs = []\n"
                                           "[images.pyrlab-base]\n"})
    with pytest.raises(BuildError) as caught:
        build(root, engine)
    assert "python:3.14-trixie cannot be pulled: dial tcp" in caught.value.message
    assert "pyrlab init --base debian" in (caught.value.hint or "")
    assert "[base] bootstrap" in (caught.value.hint or "")


# --------------------------------------------------------------------------- building


def test_images_are_built_on_their_parents_with_labels_and_tags(lab: Path) -> None:
    engine = FakeEngine()
    outcomes = build(lab, engine)
    pylab = engine.image("t/pylab:latest")
    base = engine.image("t/pyrlab-base:latest")
    assert pylab is not None and base is not None
    assert engine.image("t/pylab:trixie") == pylab
    assert pylab.labels[LABEL_PARENT_ID] == base.id
    assert base.labels[LABEL_PARENT_ID] == BASE_ID
    assert pylab.labels[LABEL_PROJECT] == base.labels[LABEL_PROJECT]
    assert engine.built.index("pyrlab-base") < engine.built.index("pylab") \
        < engine.built.index("pylab-torch")
    by_name = {o.name: o for o in outcomes}
    assert by_name["pylab"].tags == ("t/pylab:latest", "t/pylab:trixie")
    log = by_name["pylab"].log
    assert log is not None and log.parent == lab / ".pyrlab" / "logs"
    assert "+ fake build" not in log.read_text()  # FakeEngine.build does not log its argv
    assert "#5 [1/2] RUN --mount=x /run/pyrlab/bin/uv-install" in log.read_text()


def test_every_build_gets_a_fresh_context_folder_that_is_removed_after(lab: Path) -> None:
    """BuildKit re-sends only files of a known folder whose size or mtime changed, and
    contexts have fixed mtimes: reusing a folder would hide same-size edits."""
    engine = FakeEngine()
    build(lab, engine, ["pylab"])
    (lab / "requirements.txt").write_text("abc\n")  # as long as "six\n"
    build(lab, engine, ["pylab"])
    assert engine.built == ["pyrlab-base", "pylab", "pylab"]
    assert len(set(engine.contexts)) == 3
    assert not any(folder.exists() for folder in engine.contexts)


def test_independent_images_build_at_the_same_time(lab: Path) -> None:
    engine = FakeEngine()
    engine.delay = 0.2
    build(lab, engine, jobs=2)
    assert engine.max_running == 2  # pylab and other, both on pyrlab-base
    engine2 = FakeEngine()
    engine2.delay = 0.05
    build(lab, engine2, jobs=1)
    assert engine2.max_running == 1


def test_a_rebuild_keeps_the_replaced_image_as_previous(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine, ["pylab"])
    first = engine.image("t/pylab:latest")
    (lab / "requirements.txt").write_text("six\nidna\n")
    build(lab, engine, ["pylab"])
    second = engine.image("t/pylab:latest")
    assert first is not None and second is not None and first.id != second.id
    previous = engine.image("t/pylab:previous")
    assert previous is not None and previous.id == first.id


def test_a_failed_build_changes_no_tag_and_says_where_it_failed(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    before = dict(engine.refs)
    (lab / "requirements.txt").write_text("six\nbroken\n")
    outcomes = build(lab, engine)
    assert actions(outcomes) == {"pyrlab-base": "skipped", "pylab": "failed",
                                 "pylab-torch": "not built", "other": "skipped"}
    assert engine.refs == before
    error = failure_error(outcomes)
    assert error is not None
    assert error.message == ("building pylab failed at [1/2] RUN uv-install: exit code 1; "
                             "no tag was changed")
    assert error.hint is not None and error.hint.startswith("full log: ")
    assert "error: no such package: broken" in Path(error.hint[10:]).read_text()


def test_promote_removes_the_image_previous_no_longer_names(tmp_path: Path) -> None:
    engine = FakeEngine()
    for n in "123":
        engine.images[n * 64] = {}
    promote(engine, "1" * 64, ("x:latest",), "x:previous")
    promote(engine, "2" * 64, ("x:latest",), "x:previous")
    result = promote(engine, "3" * 64, ("x:latest", "x:trixie"), "x:previous")
    assert engine.refs["x:latest"] == engine.refs["x:trixie"] == "3" * 64
    assert engine.refs["x:previous"] == "2" * 64
    assert result.removed == "1" * 64 and "1" * 64 not in engine.images


# --------------------------------------------------------------------------- settings


def proxy(**values: Any) -> ProxyConfig:
    fields: dict[str, Any] = {"apt": None, "apt_https": False, "pip_index": None,
                              "pip_extra_index": (), "cran": None, "http_proxy": None,
                              "https_proxy": None, "no_proxy": None}
    fields.update(values)
    return ProxyConfig(**fields)


def test_a_proxy_on_this_host_means_host_networking_unless_the_config_says_no() -> None:
    assert network_mode(proxy(), False) == (False, "default")
    assert network_mode(proxy(), True) == (True, "--network-host")
    on, why = network_mode(proxy(pip_index="http://127.0.0.1:3141/root/pypi/+simple/"), False)
    assert on and "127.0.0.1:3141" in why
    assert network_mode(proxy(apt="http://localhost:3142"), False)[0]
    assert not network_mode(proxy(apt="http://cache.internal:3142"), False)[0]
    assert network_mode(proxy(apt="http://127.0.0.1:3142", network_host=False), False) == \
        (False, "pyrlab.toml proxy.network_host")


def test_old_logs_are_pruned(tmp_path: Path) -> None:
    for i in range(KEEP_PER_IMAGE + 5):
        (tmp_path / f"pylab-20250101-0000{i:02d}.log").write_text("")
    (tmp_path / "pylab-torch-20250101-000000.log").write_text("")
    path = new_log_path(tmp_path, "pylab")
    path.write_text("")
    mine = [p for p in tmp_path.iterdir() if not p.name.startswith("pylab-torch")]
    assert len(mine) == KEEP_PER_IMAGE
    assert (tmp_path / "pylab-torch-20250101-000000.log").exists()


# --------------------------------------------------------------------------- the command


def test_dry_run_prints_the_plan_and_builds_nothing(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-C", str(lab), "--dry-run", "pylab"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^pyrlab-base\s+build\s+not built yet$", out, re.MULTILINE)
    assert re.search(r"^pylab\s+build\s+not built yet$", out, re.MULTILINE)
    assert engine.built == []


def test_json_result_lists_each_image_with_action_reason_and_tags(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-C", str(lab), "--json", "pylab"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [(i["name"], i["action"]) for i in data["images"]] == [("pyrlab-base", "built"),
                                                                   ("pylab", "built")]
    assert data["images"][1]["tags"] == ["t/pylab:latest", "t/pylab:trixie"]
    assert "engine: fake (fake), from auto-detection" in captured.err
    assert main(["build", "-C", str(lab), "--json", "pylab"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {i["action"] for i in data["images"]} == {"skipped"}


def test_a_failing_build_exits_5_with_one_message(
        lab: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    (lab / "requirements.txt").write_text("broken\n")
    assert main(["build", "-C", str(lab)]) == EXIT_BUILD
    err = capsys.readouterr().err
    assert "pylab: FAILED at [1/2] RUN uv-install; its last lines:" in err
    assert "  | error: no such package: broken" in err
    assert "pyrlab: error: building pylab failed at [1/2] RUN uv-install" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- a slow index, explained
def _proxy(**values: object) -> ProxyConfig:
    fields: dict[str, object] = {
        "apt": None, "apt_https": False, "pip_index": None, "pip_extra_index": (),
        "cran": None, "http_proxy": None, "https_proxy": None, "no_proxy": None}
    fields.update(values)
    return ProxyConfig(**fields)  # type: ignore[arg-type]


def test_a_pip_read_timeout_names_the_masked_index_and_the_setting() -> None:
    tail = [("WARNING: Retrying (Retry(total=0)) after connection broken by 'ReadTimeoutError(\"HTTP"
            "ConnectionPool(host='127.0.0.1', port=44011): Read timed out. (read timeout=15)\")'"
            ": /root/pypi/+simple/uv/"),
            "ERROR: Could not find a version that satisfies the requirement uv==0.13.9"]
    hint = timeout_hint(tail, _proxy(pip_index="http://bob:s3cret@127.0.0.1:44011/root/pypi/+simple/",
                                     timeout=40))
    assert hint is not None
    assert "http://bob:***@127.0.0.1:44011/root/pypi/+simple/" in hint
    assert "s3cret" not in hint
    assert "within 40 s" in hint and "proxy.timeout" in hint and "PYRLAB_PROXY__TIMEOUT" in hint


def test_a_uv_timeout_names_the_url_it_waited_for() -> None:
    tail = ["error: Failed to fetch: `https://alice:pw@pypi.example/simple/numpy/`",
            "  Caused by: operation timed out"]
    hint = timeout_hint(tail, _proxy())
    assert hint is not None and "pw@" not in hint
    assert hint.startswith("https://alice:***@pypi.example/simple/ did not answer within 120 s")


def test_other_failures_get_no_timeout_hint() -> None:
    assert timeout_hint(["ERROR: No matching distribution found for nosuchpkg"], _proxy()) is None
    assert mask_url("http://127.0.0.1:3141/root/pypi/+simple/") == \
        "http://127.0.0.1:3141/root/pypi/+simple/"


# --------------------------------------------------------------------------- faults


class DyingEngine(FakeEngine):
    """Its build process is killed (SIGKILL, as the OOM killer does) half-way."""

    def build(self, request: BuildRequest, on_line: Callable[[str], None]) -> tuple[int, str]:
        on_line("#5 [1/2] RUN --mount=x /run/pyrlab/bin/uv-install")
        on_line("#5 0.1 Resolved 3 packages")
        return -9, ""


def test_an_engine_process_killed_midway_is_named_and_no_tag_moves(lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    dying = DyingEngine()
    dying.images, dying.refs, dying.manifests = engine.images, engine.refs, engine.manifests
    before = dict(engine.refs)
    (lab / "requirements.txt").write_text("six\nidna\n")
    outcomes = build(lab, dying, ["pylab"])
    assert engine.refs == before
    error = failure_error(outcomes)
    assert error is not None
    assert error.message == ("building pylab failed at [1/2] RUN uv-install: the engine "
                             "process (fake) died with signal 9 (SIGKILL); no tag was changed")
    assert error.hint is not None and error.hint.startswith("full log: ")
    assert "Resolved 3 packages" in Path(error.hint[10:]).read_text()


def test_an_interrupt_during_the_self_test_moves_no_tag_and_removes_the_new_image(
        lab: Path) -> None:
    engine = FakeEngine()
    build(lab, engine)
    before, images = dict(engine.refs), set(engine.images)
    (lab / "requirements.txt").write_text("six\nidna\n")

    def gate(name: str, image_id: str, delta_on: str | None) -> ImageTest:
        proc.interrupt(signal.SIGTERM)  # the signal comes while the test's commands run
        proc.check_interrupted()  # where the next one would start
        raise AssertionError("not reached")

    try:
        with pytest.raises(proc.Interrupted) as caught:
            build(lab, engine, ["pylab"], gate=gate)
    finally:
        proc.reset()
    assert caught.value.exit_code == 143
    assert engine.refs == before
    assert set(engine.images) == images  # the untagged new image went
    log = max((lab / ".pyrlab" / "logs").glob("pylab-*.log"), key=lambda p: p.stat().st_mtime)
    assert "interrupted (SIGTERM); no tag was changed, the untagged" in log.read_text()


class RecordingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.tagged: list[str] = []

    def tag(self, source: str, target: str) -> None:
        self.tagged.append(target)
        super().tag(source, target)


def test_promote_moves_latest_last_and_not_after_an_interrupt() -> None:
    engine = RecordingEngine()
    for n in "12":
        engine.images[n * 64] = {}
    promote(engine, "1" * 64, ("x:latest", "x:trixie"), "x:previous")
    assert engine.tagged == ["x:trixie", "x:latest"]
    proc.interrupt(signal.SIGINT)
    try:
        with pytest.raises(proc.Interrupted):
            promote(engine, "2" * 64, ("x:latest", "x:trixie"), "x:previous")
    finally:
        proc.reset()
    assert engine.refs["x:latest"] == engine.refs["x:trixie"] == "1" * 64
    assert "x:previous" not in engine.refs


def test_lines_limited_to_another_platform_are_not_rendered(tmp_path: Path) -> None:
    """On this (amd64) engine, `[arm64]` lines vanish and `[amd64]` ones are plain lines:
    the contexts, hashes included, are those of a list that names only what applies."""
    def plan_of(root: Path, debs: str, r: str) -> dict[str, str]:
        toml = FILES["pyrlab.toml"]
        assert isinstance(toml, str)
        files = {**FILES, "debs.txt": debs, "r.txt": r, "pyrlab.toml": toml.replace(
            'requirements = ["requirements.txt"]',
            'requirements = ["requirements.txt"]\ndebs = ["debs.txt"]\nr = "debian"\n'
            'r_packages = ["r.txt"]')}
        plan = make_plan(load(make_project(root, files)), FakeEngine(), ["pylab"])
        return {p.target.name: p.target.context.input_hash for p in plan.images}

    limited = plan_of(tmp_path / "limited", "curl\nintel-mkl [amd64]\nlibarmpl [arm64]\n",
                      "sf [!amd64]\nRcpp [amd64 arm64]\n")
    plain = plan_of(tmp_path / "plain", "curl\nintel-mkl\n", "Rcpp\n")
    assert limited == plain
    assert plan_of(tmp_path / "other", "curl\nintel-mkl\nlibarmpl\n", "Rcpp\n") != plain
