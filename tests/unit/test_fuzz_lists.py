"""Fuzzing the package-list parsers (Python requirements, Debian lists, R lists).

Whatever bytes a list holds, parse_lists returns entries and problems located as
`FILE:LINE`, and raises nothing; every entry it accepts is one clean line that reads back
as itself; and accepted entries reach the build only as lines of the list files in the
build context: never the Dockerfile, never an installer's command line.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzkit import (
    MARK,
    SHELL_BITS,
    fragments,
    joined,
    normalised_dockerfile,
    odd_text,
    problems_are_located,
    render_all,
    reset_folder,
)
from hypothesis import example, given
from hypothesis import strategies as st
from labfiles import init_lab

from pyrlab import ecosystems
from pyrlab.cli import main
from pyrlab.config.lists import ParsedList, parse_lists
from pyrlab.config.project import load_project
from pyrlab.ecosystems.base import Ecosystem, Entry
from pyrlab.errors import EXIT_CONFIG, EXIT_OK

DEB, PY, R = (ecosystems.named(name) for name in ("debian", "python", "r"))
LIST = "list.txt"

# ----------------------------------------------------------------------------- strategies

_names = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,8}", fullmatch=True),
                   fragments(MARK, f"{MARK}-x", f"{MARK}.r", f"{MARK}_1", "numpy", "IRkernel",
                             "libxml2-dev", "r-base"))
_versions = st.one_of(st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True),
                      fragments("1.0rc1", "2!1.0", "1.0.post1", "1.*", "1:2.3-4+deb13u1",
                                "1.2-3", "0", "v1", "1..2", "9" * 40))
_operators = fragments("==", ">=", "<=", "!=", "~=", "===", "<", ">", "=", " == ", "@")
_markers = fragments("; python_version < '3.12'", '; sys_platform == "linux"',
                     "; extra == 'x'", "; os_name == 'posix' and python_version >= '3'",
                     '; platform_machine == "\u2028x"', "; python_version", ";;", "; ")
_urls = fragments("https://example.org/x.whl", f"https://{MARK}.example/p-1.0.tar.gz",
                  f"git+https://example.org/r.git@v1#egg={MARK}", "git+ssh://git@h/r.git",
                  "file:///etc/passwd", "ftp://h/x", "http://[::1", "https://",
                  "https://h/x#egg=", "https://h/x#egg=a b", " @ ", "@ https://h/x.whl")
_options = fragments("-r ", "--requirement=", "-r", "-e ", "-e .", "-i https://h/",
                     "--index-url=https://h/", "--extra-index-url ", "-c c.txt", "-f ",
                     "--hash=sha256:00", " --pre", "--no-binary :all:", "-", "--", "-Z")
_deb_bits = fragments("=", "/", ":amd64", "-", "/trixie-backports", "=1.0-1", "+", "..")
_r_bits = fragments("apt:", "cran:", "github:", ":", " == 1.0", ">=1.2.3", "<2", "(>= 1)")
_space = fragments(" ", "\t", "  ", "\r", " # comment", "#", "\ufeff")

_piece = st.one_of(_names, _versions, _operators, _markers, _urls, _options, _deb_bits,
                   _r_bits, _space, fragments(*SHELL_BITS), odd_text)
# One line: a few pieces of every grammar, shell syntax and odd characters run together.
line_text = joined(st.lists(_piece, max_size=6)).map(lambda s: s.replace("\n", ""))


@st.composite
def list_bytes(draw: st.DrawFn) -> bytes:
    """A list file as it may arrive: lines in any line-ending, with or without a BOM, as
    UTF-8, UTF-16 or Latin-1, or plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    lines = draw(st.lists(line_text, max_size=8))
    text = draw(fragments("\n", "\r\n", "\r")).join(lines) + draw(fragments("", "\n"))
    encoding = draw(fragments("utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"))
    return text.encode(encoding, errors="replace")


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pyrlab-fuzz-") as name:
        yield Path(name)


def parse_bytes(root: Path, kind: Ecosystem, data: bytes, name: str = LIST) -> ParsedList:
    (root / name).write_bytes(data)
    return parse_lists([root / name], kind, root=root)


def written(entry: Entry) -> str:
    """The line that asks for `entry` again (R keeps its source apart from its text)."""
    return f"{entry.source}:{entry.text}" if entry.source else entry.text


def assert_clean_entry(entry: Entry) -> None:
    """An accepted entry is one line of plain data: nothing a shell, a line splitter or a
    terminal would act on."""
    text = entry.text
    assert text and text == text.strip(), entry
    assert len(text.splitlines()) == 1, f"an entry spans lines: {entry!r}"
    for char in text:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cf", "Zl", "Zp"), f"U+{ord(char):04X} in {entry!r}"
    assert not set(text) & set("`$|&\\"), entry
    assert "<(" not in text and ">(" not in text, entry
    allowed_semicolons = 1 if entry.ecosystem == PY.name and "://" not in text.split(";")[0] else 0
    assert text.count(";") <= allowed_semicolons, entry
    if entry.ecosystem == DEB.name:
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+(?:=[0-9][A-Za-z0-9.+~:-]*|/[a-z0-9.-]+)?",
                            text), entry
    if entry.ecosystem == R.name:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9](?:(?:==|>=)[0-9.-]+)?",
                            text), entry


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("kind", ecosystems.registered(), ids=lambda k: k.name)
@given(data=list_bytes())
@example(data=b"numpy; rm -rf /\n$(reboot)\n`id`\nnumpy\r\n\xef\xbb\xbfpandas\n")
@example(data="numpy\npandas\n".encode("utf-16"))
@example(data=b"numpy; python_version == '\xe2\x80\xa8-r x'\n")  # U+2028 in a marker
@example(data=b"\x00\xff\xfe\r\r\n\n")
def test_any_list_is_entries_or_located_problems(kind: Ecosystem, data: bytes) -> None:
    with folder() as root:
        parsed = parse_bytes(root, kind, data)
        lines = data.count(b"\n") + 1
        problems_are_located(parsed.problems + parsed.warnings, {LIST}, keyed=False)
        for problem in parsed.problems + parsed.warnings:
            assert int(problem.where.split(":")[1]) <= lines, problem
        for entry in parsed.entries:
            assert entry.ecosystem == kind.name
            assert re.fullmatch(r"list\.txt:[0-9]+", entry.where), entry
            assert_clean_entry(entry)
        # What the build context holds for the installer reads back as the same entries.
        again = parse_bytes(root, kind, "".join(f"{written(e)}\n" for e in parsed.entries)
                            .encode(), "again.txt")
        assert [str(p) for p in again.problems] == []
        assert [(e.name, e.text, e.version, e.source) for e in again.entries] == [
            (e.name, e.text, e.version, e.source) for e in parsed.entries]


_include_names = fragments("a.txt", "b.txt", "sub/c.txt", "sub/../b.txt", "../up.txt",
                           "missing.txt", "sub", "", " a.txt ")


@given(files=st.dictionaries(fragments("a.txt", "b.txt", "sub/c.txt", "up.txt"),
                             st.lists(st.one_of(line_text, _include_names.map("-r ".__add__),
                                                _include_names.map("--requirement=".__add__)),
                                      max_size=5),
                             min_size=1))
def test_includes_in_any_shape_are_read_once_or_located(files: dict[str, list[str]]) -> None:
    with folder() as top:
        root = top / "lab"
        for name, lines in files.items():
            path = top / name if name == "up.txt" else root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        parsed = parse_lists([root / "a.txt"], PY, root=root)
        shown = {"a.txt", "b.txt", "sub/c.txt", str(top / "up.txt")}
        problems_are_located(parsed.problems + parsed.warnings, shown, keyed=False)
        assert len(parsed.files) == len({p.resolve() for p in parsed.files}), "a file read twice"
        for entry in parsed.entries:
            assert_clean_entry(entry)


def test_deeply_nested_includes_are_a_located_problem(tmp_path: Path) -> None:
    depth = 300  # without a limit, far past Python's recursion limit (4 frames a level)
    for i in range(depth):
        (tmp_path / f"r{i}.txt").write_text(f"numpy\n-r r{i + 1}.txt\n")
    (tmp_path / f"r{depth}.txt").write_text("pandas\n")
    parsed = parse_lists([tmp_path / "r0.txt"], PY, root=tmp_path)
    assert [e.name for e in parsed.entries] == ["numpy"]
    assert len(parsed.problems) == 1
    problem = parsed.problems[0]
    assert re.fullmatch(r"r[0-9]+\.txt:2", problem.where), problem
    assert "nested" in problem.message


@pytest.mark.parametrize("kind", ecosystems.registered(), ids=lambda k: k.name)
def test_a_ten_megabyte_line_is_a_located_problem(kind: Ecosystem,
                                                              tmp_path: Path) -> None:
    # Refused before it is scanned: it would not fit in the build's image label (and an
    # accepted 10 MB name would reach apt-get, uv or R).
    data = b"less\n" + b"a" * 10_000_000 + b"\n"
    parsed = parse_bytes(tmp_path, kind, data)
    assert [e.name for e in parsed.entries] == ["less"]
    assert [str(p) for p in parsed.problems] == [
        "list.txt:2: line too long (10000000 characters, at most 4096)"]


def test_a_line_or_paragraph_separator_is_refused(tmp_path: Path) -> None:
    # pip (str.splitlines) reads U+2028 as a line break: the entry would be two lines.
    data = "numpy; python_version == '\u2028-r x'\nnumpy; python_version == '\u2029'\n"
    parsed = parse_bytes(tmp_path, PY, data.encode())
    assert [str(p) for p in parsed.problems] == [
        "list.txt:1: line break U+2028 is not allowed",
        "list.txt:2: line break U+2029 is not allowed",
    ]


# ----------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_lab(tmp_path_factory.mktemp("fuzz-template") / "lab")


LIST_FILES = {"base_debs.txt": DEB, "r_debs.txt": DEB, "requirements.txt": PY,
              "r_requirements.txt": PY, "r_packages.txt": R}
# Context files that hold list entries (the installers read them; meta.json names the
# R packages pinned with ==, for the inventory).
DATA_FILES = {"pyrlab/apt/debs.txt", "pyrlab/python/requirements.txt", "pyrlab/r/cran.txt",
              "pyrlab/r/apt.txt", "pyrlab/inventory/meta.json"}
PLAIN = {DEB: "less", PY: "six", R: "jsonlite"}


def accepted_lines(root: Path, kind: Ecosystem, lines: list[str]) -> list[str]:
    """The lines of `lines` the parser accepts on their own, and that agree together."""
    kept = []
    for line in lines:
        trial = parse_bytes(root, kind, "\n".join([*kept, line]).encode(), "trial.txt")
        if not trial.problems:
            kept.append(line)
    (root / "trial.txt").unlink(missing_ok=True)
    return kept


@given(lists=st.fixed_dictionaries({name: st.lists(line_text, max_size=6)
                                    for name in LIST_FILES}))
@example(lists={"base_debs.txt": [f"{MARK}-x", f"{MARK}=1.0"], "r_debs.txt": [f"{MARK}/trixie"],
                "requirements.txt": [f"{MARK}[a]>=1; python_version < '3.12'",
                                     f"git+https://example.org/r.git@v1#egg={MARK}-g"],
                "r_requirements.txt": [f"p @ https://{MARK}.example/p-1.0.tar.gz"],
                "r_packages.txt": [f"{MARK}.r==1.0", f"apt:{MARK}.a", f"cran:{MARK}.c>=2"]})
# A line given twice: uv gets the list as written (every line, in order), not the merged
# entries the gate and the lock use.
@example(lists={"base_debs.txt": [], "r_debs.txt": [], "requirements.txt": [],
                "r_requirements.txt": ["000000", "000000"], "r_packages.txt": []})
def test_accepted_entries_reach_the_build_only_as_list_files(
        lab_template: Path, tmp_path_factory: pytest.TempPathFactory,
        lists: dict[str, list[str]]) -> None:
    work = tmp_path_factory.getbasetemp() / "fuzz-build"
    lab = reset_folder(work / "lab", lab_template)
    reference = reset_folder(work / "reference", lab_template)
    for name, kind in LIST_FILES.items():
        kept = accepted_lines(lab, kind, lists[name])
        (lab / name).write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        entries = parse_lists([lab / name], kind, root=lab).entries
        (reference / name).write_text(f"{PLAIN[kind]}\n" if entries else "", encoding="utf-8")
    project = load_project(lab, environ={})
    contexts = render_all(project)
    expected = render_all(load_project(reference, environ={}))
    for image, context in contexts.items():
        dockerfile = context.dockerfile
        assert MARK not in dockerfile.lower(), f"list text in {image}'s Dockerfile"
        # The Dockerfile depends only on which lists are empty, never on what they say: no
        # installer is handed an entry on its command line.
        assert normalised_dockerfile(context) == normalised_dockerfile(expected[image])
        for path, (content, _mode) in context.files.items():
            if MARK.encode() in content.lower():
                assert path in DATA_FILES, f"list text in {image}'s {path}"
        own = project.lists[image]
        for path, entries in (("pyrlab/apt/debs.txt", own.of("debian")),
                              ("pyrlab/python/requirements.txt", own.lines_of("python"))):
            if entries:
                assert context.files[path][0].decode().splitlines() == [e.text for e in entries]


# ----------------------------------------------------------------------------- the CLI


@given(lists=st.fixed_dictionaries({name: list_bytes() for name in LIST_FILES}))
@example(lists={name: b"numpy; rm -rf /\n$(reboot)\n" for name in LIST_FILES})
def test_pyrlab_check_on_any_lists_exits_cleanly(
        lab_template: Path, tmp_path_factory: pytest.TempPathFactory,
        lists: dict[str, bytes]) -> None:
    lab = reset_folder(tmp_path_factory.getbasetemp() / "fuzz-cli" / "lab", lab_template)
    for name, data in lists.items():
        (lab / name).write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-C", str(lab), "check"])
    stderr = err.getvalue()
    assert code in (EXIT_OK, EXIT_CONFIG), stderr
    assert "Traceback" not in stderr
    listed = "|".join(re.escape(name) for name in LIST_FILES)
    for line in stderr.splitlines():
        if line.startswith("pyrlab: error: ") and line.endswith(" problems:"):
            continue
        message = line.removeprefix("pyrlab: error: ").removeprefix("pyrlab: warning: ")
        assert re.match(rf"\s*(?:{listed}):[0-9]+: ", message), f"unlocated: {line!r}"
    if code == EXIT_OK:
        assert out.getvalue().startswith("ok: ")


def test_a_utf16_list_is_one_problem(tmp_path: Path) -> None:
    # Was "not valid UTF-8" on line 1 and "control character U+0000" on every other line.
    parsed = parse_bytes(tmp_path, PY, "numpy\npandas\nscipy\n".encode("utf-16"))
    assert [str(p) for p in parsed.problems] == ["list.txt:1: UTF-16 text: save the file as UTF-8"]
    assert parsed.entries == ()
