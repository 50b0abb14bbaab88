"""Fuzzing the overrides: `PYRLAB_…` environment variables and `--set KEY=VALUE`.

Any name and value is applied or refused with a problem naming where it came from (the
variable, the `--set`, or the key it set), never another exception; what is accepted goes
into the config as one value (a newline does not smuggle in a second one) and reaches the
build the way the same value in pyrlab.toml would.
"""

from __future__ import annotations

import contextlib
import io
import tomllib
from pathlib import Path

import pytest
from fuzzkit import (
    CONFIG_TABLES,
    IMAGE_NAMES,
    IMAGE_TABLE,
    MARK,
    assert_config_text_stays_out,
    odd_text,
    path_forms,
    problems_are_located,
    render_all,
    reset_folder,
    spoiled,
    strings_in,
    text_of,
    toml_value,
)
from hypothesis import example, given
from hypothesis import strategies as st
from labfiles import init_lab

from pyrlab.cli import main
from pyrlab.config.model import CONFIG_NAME
from pyrlab.config.overrides import parse_override_value
from pyrlab.config.project import load_project
from pyrlab.config.readers import read_config
from pyrlab.errors import EXIT_CONFIG, EXIT_OK, ConfigError, Problem

SECTION_KEYS = {
    "base": ("image", "bootstrap", "mirror", "python", "debs", "cuda", "locale", "slim",
             "ca_certificates"),
    "proxy": ("apt", "pip_index", "pip_extra_index", "no_proxy", "timeout", "retries"),
    "run": ("bind", "uid", "gid", "notebooks", "home", "rc", "userlab", "docker_args", "sudo"),
}
KEYS = [*CONFIG_TABLES, *(f"{s}.{k}" for s, ks in SECTION_KEYS.items() for k in ks),
        *(f"images.{i}.{k}" for i in IMAGE_NAMES for k in IMAGE_TABLE),
        "images.pylab.ports.lab", f"images.pylab.ports.{MARK}", "images.rlab-base.r",
        "images.rlab_base.r", "run.rc.pylab", "images"]
dotted_keys = spoiled(st.sampled_from(KEYS))

# What a user types after `=`: TOML literals (numbers, booleans, strings, arrays, tables,
# dates), plain words, and text with newlines that is TOML for more than one value.
override_texts = st.one_of(
    text_of("8898", "true", "0x1F", "1e400", "nan", '"python:3.14-trixie"', "python:3.14",
            '["base_debs.txt"]', "{ lab = 8890 }", "1979-05-27", "127.0.0.1", "''", '"',
            f"https://{MARK}.example/simple/", f"{MARK}.txt", f'"{MARK}"', "[", "{",
            "5\n[base]\nimage = 'evil'", "true\nx = 1", '"a" # note', "1 2", "[" * 600),
    odd_text,
    st.builds(toml_value, st.recursive(
        st.one_of(st.integers(), st.booleans(), odd_text, st.floats()),
        lambda inner: st.lists(inner, max_size=3), max_leaves=4)),
)


def env_name(key: str) -> str:
    return "PYRLAB_" + key.upper().replace(".", "__").replace("-", "_")


environments = st.dictionaries(
    st.one_of(dotted_keys.map(env_name), spoiled(st.sampled_from(
        ["PYRLAB_", "PYRLAB__", "PYRLAB_RUN__", "PYRLAB_RUN____BIND", "PYRLAB_CONFIG",
         "PYRLAB_CI_MIRROR", "PYRLAB_run__bind", "OTHER"]))),
    override_texts, max_size=4)
sets = st.lists(st.one_of(st.tuples(dotted_keys, override_texts).map("=".join), odd_text),
                max_size=4)


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lab = init_lab(tmp_path_factory.mktemp("fuzz-overrides") / "lab")
    (lab / f"{MARK}.txt").write_text("less\n", encoding="utf-8")
    return lab


def override_strings(environ: dict[str, str], given_sets: list[str]) -> list[tuple[str, str]]:
    """(key, text) for every string the overrides may have put into the config."""
    out = []
    for key, text in [*environ.items(), *(s.partition("=")[::2] for s in given_sets)]:
        out += [(f"{key}<override>", part) for _k, part in strings_in(parse_override_value(text))]
        out.append((f"{key}<override>", key))
    return out


def located(problems: list[Problem], environ: dict[str, str], given_sets: list[str]) -> None:
    sources = {f"environment {name}" for name in environ}
    sources |= {"--set " + s.split("=", 1)[0] for s in given_sets}
    for problem in problems:
        if problem.where in sources:
            assert len(str(problem).splitlines()) == 1, problem
            continue
        problems_are_located([problem], {CONFIG_NAME}, keyed=True)


@given(environ=environments, given_sets=sets)
@example(environ={"PYRLAB_RUN__UID": "5\n[base]\nimage = 'evil'"}, given_sets=[])
@example(environ={}, given_sets=["run.bind=127.0.0.1\nrun.uid = 0", "=", "run..bind=1",
                                 "images.pylab.ports.lab=0x22B8"])
@example(environ={"PYRLAB_IMAGES__PYLAB\n__FROM": "x", "PYRLAB_": "1"},
         given_sets=["images.pylab.ports.lab=8888=8889"])
def test_any_override_is_applied_or_refused_naming_its_source(
        lab_template: Path, tmp_path_factory: pytest.TempPathFactory,
        environ: dict[str, str], given_sets: list[str]) -> None:
    lab = reset_folder(tmp_path_factory.getbasetemp() / "fuzz-overrides-work" / "lab",
                       lab_template)
    config, problems = read_config(lab, environ=environ, sets=given_sets)
    located(problems, environ, given_sets)
    if problems:
        return
    for key, source in config.overrides:
        assert source.startswith(("environment PYRLAB_", "--set ")), (key, source)
    try:
        project = load_project(lab, environ=environ, sets=given_sets)
    except ConfigError as exc:  # a list file an override named
        texts = [text for _k, text in override_strings(environ, given_sets)]
        problems_are_located(exc.problems, {CONFIG_NAME} | path_forms(lab, texts), keyed=True)
        return
    assert_config_text_stays_out(render_all(project), override_strings(environ, given_sets))


@given(text=override_texts)
@example(text="5\n[base]\nimage = 'evil'")
@example(text='"a"\nb = 1')
def test_an_override_is_one_value_or_the_text_itself(text: str) -> None:
    value = parse_override_value(text)
    if value == text and isinstance(value, str):
        return
    # Read as TOML only when the text is exactly one TOML value, nothing after it.
    assert repr(tomllib.loads(f"v = {text}")) == repr({"v": value})  # repr: nan is nan


def test_a_newline_in_a_set_value_does_not_smuggle_in_another_key(tmp_path: Path) -> None:
    # Was: `v = 5` read, the rest of the text (a [base] table) silently dropped, so
    # run.uid became 5.
    init_lab(tmp_path / "lab")
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path / "lab", environ={},
                     sets=["run.uid=5\n[base]\nimage = 'evil'"])
    assert [str(p) for p in caught.value.problems] == [
        ("pyrlab.toml: run.uid: expected a numeric id, got \"5\\n[base]\\nimage = 'evil'\" "
        "(from --set run.uid)")]
    assert parse_override_value("8898 # the lab port") == 8898


@given(given_sets=st.lists(st.tuples(dotted_keys, override_texts).map("=".join),
                           min_size=1, max_size=3).filter(
                               lambda ss: not any("\0" in s for s in ss)))
@example(given_sets=["run.bind=0.0.0.0\n", "images.pylab.ports.lab=$(reboot)"])
def test_pyrlab_check_with_any_set_exits_cleanly(
        lab_template: Path, tmp_path_factory: pytest.TempPathFactory,
        given_sets: list[str]) -> None:
    lab = reset_folder(tmp_path_factory.getbasetemp() / "fuzz-overrides-cli" / "lab",
                       lab_template)
    argv = ["-C", str(lab), "check"] + [f"--set={s}" for s in given_sets]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (EXIT_OK, EXIT_CONFIG), err.getvalue()
    assert "Traceback" not in err.getvalue()
    if code == EXIT_OK:
        assert out.getvalue().startswith("ok: ")
