"""Fuzzing the config loader: pyrlab.toml as any text or bytes, and as TOML documents of
plausible keys holding right and wrong values (wrong types, nested tables, huge integers,
odd unicode, NUL and line breaks).

Every input is accepted or refused with problems located as `pyrlab.toml: key` (or a list
file's `FILE:LINE`), never another exception; and an accepted config is rendered with no
control character in any Dockerfile line and no free text (URLs, paths, arguments) in one.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fuzzkit import (
    LIST_NAMES,
    MARK,
    assert_config_text_stays_out,
    config_documents,
    odd_text,
    path_forms,
    problems_are_located,
    render_all,
    reset_folder,
    strings_in,
    toml_document,
)
from hypothesis import example, given
from hypothesis import strategies as st
from labfiles import PEM, init_lab, write

from pyrlab.config.model import CONFIG_NAME
from pyrlab.config.project import load_project
from pyrlab.config.readers import read_config
from pyrlab.contents.lockfile import LockError, parse_lock
from pyrlab.errors import ConfigError, Problem


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lab = init_lab(tmp_path_factory.mktemp("fuzz-config") / "lab")
    write(lab, f"{MARK}.txt", "less\n")
    write(lab, "certs/ca.pem", PEM)
    write(lab, f"certs/{MARK}.pem", PEM)
    return lab


def fresh_lab(template: Path, factory: pytest.TempPathFactory, config: bytes) -> Path:
    lab = reset_folder(factory.getbasetemp() / "fuzz-config-work" / "lab", template)
    (lab / CONFIG_NAME).write_bytes(config)
    return lab


def config_problems(lab: Path) -> list[Problem]:
    """read_config's problems; a ConfigError's when it refuses the file as a whole."""
    try:
        return read_config(lab, environ={})[1]
    except ConfigError as exc:
        return exc.problems


toml_texts = st.one_of(
    odd_text,
    st.lists(st.sampled_from(["[base]", "[images.pylab]", "[[images]]", "image = ", "= 1",
                              '"x"', "'''", "[run]", "uid = 1", "a.b.c = 1", "inf", "nan",
                              "{", "}", "[", "]", "\n", "\r\n", "\x00", "\ufeff", "#", MARK,
                              "1979-05-27T07:32:00Z", "0x10", "1_000", '"\\u0000"',
                              "x = " + "[" * 600, "x = " + "{a=" * 600]),
             max_size=12).map("".join))


@given(config=st.one_of(toml_texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                        st.binary(max_size=200),
                        toml_texts.map(lambda t: t.encode("utf-16"))))
@example(config=b"\xff\xfe[\x00b\x00]\x00")
@example(config=b"[base]\nimage = 'python:3.14'\x00\n")
def test_any_bytes_as_config_are_read_or_refused_with_the_file_named(
        lab_template: Path, tmp_path_factory: pytest.TempPathFactory, config: bytes) -> None:
    lab = fresh_lab(lab_template, tmp_path_factory, config)
    problems_are_located(config_problems(lab), {CONFIG_NAME}, keyed=True)


def same_toml(a: Any, b: Any) -> bool:
    """Equal, counting nan as equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_toml(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_toml(x, y) for x, y in zip(a, b, strict=True))
    return bool(type(a) is type(b) and a == b)


@given(doc=config_documents, headers=st.booleans())
@example(doc={"base": {"locale": "de_DE.UTF-8\n"}}, headers=True)
@example(doc={"base": {"image": "python:3.14-trixie\n"}}, headers=True)
@example(doc={"base": {"debs": ["a\0b"], "ca_certificates": ["~nosuchuser/ca.pem"]}},
         headers=True)
@example(doc={"images": {f"{MARK}\n": {}}}, headers=True)
@example(doc={"images": {"pylab": {"ports": {f"{MARK}\n": 8888}}}}, headers=False)
@example(doc={"proxy": {"pip_index": f"https://{MARK}.example/\x7f"}}, headers=False)
@example(doc={"run": {"uid": 2**80}, "base": {"bootstrap": "trixie\n"}}, headers=True)
def test_any_config_document_is_accepted_or_refused_by_key(
        lab_template: Path, tmp_path_factory: pytest.TempPathFactory,
        doc: dict[str, Any], headers: bool) -> None:
    text = toml_document(doc, headers=headers)
    assert same_toml(tomllib.loads(text), doc), text  # the strategy writes what it means
    lab = fresh_lab(lab_template, tmp_path_factory, text.encode())
    try:
        project = load_project(lab, environ={})
    except ConfigError as exc:
        problems_are_located(exc.problems, {CONFIG_NAME, *LIST_NAMES} | path_forms(lab, [t for _k, t in strings_in(doc)]), keyed=True)
        return
    assert_config_text_stays_out(render_all(project), list(strings_in(doc)))


# ----------------------------------------------------------------------------- found by it


@pytest.mark.parametrize(("toml", "key"), [
    ('[images."pylab\\n"]', 'images."pylab\\n"'),
    ('[base]\nimage = "python:3.14-trixie\\n"', "base.image"),
    ('[base]\nlocale = "de_DE.UTF-8\\n"', "base.locale"),
    ('[base]\nbootstrap = "trixie\\n"', "base.bootstrap"),
    ('prefix = "registry.example/team/\\n"', "prefix"),
    ('[images.pylab.ports]\n"lab\\n" = 8888', 'images.pylab.ports."lab\\n"'),
    ('[run]\nbind = "127.0.0.1\\n"', "run.bind"),
])
def test_a_value_with_a_final_newline_never_reaches_a_dockerfile_line(
        tmp_path: Path, toml: str, key: str) -> None:
    # `$` in the grammars matched before a final newline: "pylab\n" was a valid image name
    # and ended up in LABEL and ENV lines, breaking the Dockerfile.
    write(tmp_path, CONFIG_NAME, toml + "\n")
    problems = config_problems(tmp_path)
    line = toml.count("\n") + 1  # the key is on the last line
    assert [p.where for p in problems] == [f"{CONFIG_NAME}:{line}: {key}"]
    assert len(str(problems[0]).splitlines()) == 1


def test_a_list_path_with_nul_is_refused_by_key(tmp_path: Path) -> None:
    # Was a ValueError traceback (embedded null byte) when the list was read.
    write(tmp_path, CONFIG_NAME, '[base]\ndebs = ["base\\u0000.txt"]\n'
          'ca_certificates = ["ca\\u0000.pem"]\n')
    assert [str(p) for p in config_problems(tmp_path)] == [
        "pyrlab.toml:2: base.debs: a file name cannot hold a NUL character: 'base\\x00.txt'",
        ("pyrlab.toml:3: base.ca_certificates: a file name cannot hold a NUL character: "
        "'ca\\x00.pem'")]


def test_a_home_folder_of_no_user_is_a_file_not_found(tmp_path: Path) -> None:
    # Was a RuntimeError traceback from pathlib ("Could not determine home directory").
    write(tmp_path, CONFIG_NAME, '[base]\ndebs = ["~nosuchuser-pyrlab/debs.txt"]\n'
          'ca_certificates = ["~nosuchuser-pyrlab/ca.pem"]\n[images.pyrlab-base]\n')
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "~nosuchuser-pyrlab/debs.txt: cannot read: file not found",
        ("pyrlab.toml:3: base.ca_certificates[0]: cannot read '~nosuchuser-pyrlab/ca.pem': "
        "No such file or directory")]


def test_a_url_with_a_control_character_is_refused(tmp_path: Path) -> None:
    # DEL and C1 controls passed the check (only < 0x20 was refused) and reached pip.conf.
    write(tmp_path, CONFIG_NAME, '[proxy]\npip_index = "https://pypi.example/\\u007f"\n'
          'cran = "https://cran.example/\\u0085"\n')
    assert [p.where for p in config_problems(tmp_path)] == [
        "pyrlab.toml:2: proxy.pip_index", "pyrlab.toml:3: proxy.cran"]


def test_a_url_that_does_not_parse_is_a_problem(tmp_path: Path) -> None:
    # Was a ValueError traceback from urlsplit ("Invalid IPv6 URL").
    write(tmp_path, CONFIG_NAME, '[proxy]\napt = "http://[::1"\n')
    assert [str(p) for p in config_problems(tmp_path)] == [
        "pyrlab.toml:2: proxy.apt: not a valid URL: 'http://[::1'"]


def test_keys_are_shown_as_toml_writes_them_on_one_line(tmp_path: Path) -> None:
    write(tmp_path, CONFIG_NAME, '"" = 1\n"a.b" = 2\n[images."x\\ny"]\n[run.rc]\n"p q" = "s"\n')
    assert [str(p) for p in config_problems(tmp_path)] == [
        'pyrlab.toml:1: "": unknown key (known: base, build, engine, images, name, prefix, proxy, run, test)',
        'pyrlab.toml:2: "a.b": unknown key (known: base, build, engine, images, name, prefix, proxy, run, test)',
        ('pyrlab.toml:3: images."x\\ny": image names are lower-case letters, digits and . _ - '
        "(e.g. 'pylab-torch')"),
        "pyrlab.toml:5: run.rc.\"p q\": unknown image 'p q'"]


def test_a_config_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Windows editors start UTF-8 files with a BOM; it was "not valid TOML" at line 1.
    (tmp_path / CONFIG_NAME).write_bytes(b'\xef\xbb\xbf[run]\nbind = "0.0.0.0"\n')
    config, problems = read_config(tmp_path, environ={})
    assert problems == [] and config.run.bind == "0.0.0.0"


def test_arrays_nested_past_tomllib_s_recursion_are_not_valid_toml(tmp_path: Path) -> None:
    # tomllib recurses once a level: a RecursionError traceback, in the file and in --set.
    deep = "[" * 2000 + "]" * 2000
    write(tmp_path, CONFIG_NAME, f"[run]\ndocker_args = {deep}\n")
    assert [str(p) for p in config_problems(tmp_path)] == [
        "pyrlab.toml: not valid TOML: arrays or tables nested too deeply"]
    write(tmp_path, CONFIG_NAME, "")
    _config, problems = read_config(tmp_path, environ={}, sets=[f"run.docker_args={deep}"])
    assert [p.where for p in problems] == ["pyrlab.toml: run.docker_args"]
    # pyrlab.lock, which may come with someone else's project, is read the same way.
    with pytest.raises(LockError, match="^pyrlab.lock: not valid TOML: arrays or tables nested"):
        parse_lock(f"x = {deep}\n")
