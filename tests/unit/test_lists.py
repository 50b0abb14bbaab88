"""Package lists: what is accepted, what is refused, and exactly how each refusal reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrlab import ecosystems
from pyrlab.config.lists import ParsedList, parse_lists
from pyrlab.ecosystems.base import Ecosystem, Entry

DEB, PY, R = (ecosystems.named(name) for name in ("debian", "python", "r"))
SCHEMES = "https, http, git+https, git+ssh, git+http"
INDEX_HINT = "(set indexes in pyrlab.toml [proxy])"
HASH_REFUSAL = ("option '--hash' is not supported: a hash-checking install needs a hash for "
                "every dependency too; pin versions here and let pyrlab.lock record exactly "
                "what was installed")
ARCH_HINT = ("list the package without one, for the image's own architecture (limit it to "
             "some with a trailing [amd64] or [!arm64])")
CURL_HINT = "write 'curl' for the current version or 'curl=VERSION' for an exact one"
NOT_PEP508 = (  # packaging's reason, with its first letter lower-cased
    "not a valid Python requirement: expected semicolon (after name with no version specifier)"
    " or end"
)


def write(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def lines(*items: str) -> str:
    return "".join(f"{item}\n" for item in items)


def parse(root: Path, kind: Ecosystem, *names: str) -> ParsedList:
    return parse_lists([root / n for n in names], kind, root=root)


def messages(parsed: ParsedList) -> list[str]:
    return [str(p) for p in parsed.problems]


def brief(parsed: ParsedList) -> list[tuple[str, str, str | None, str | None, str]]:
    return [(e.name, e.text, e.version, e.source, e.where) for e in parsed.entries]


BAD_LINES: list[tuple[Ecosystem, str, str]] = [
    # Shell injection attempts, in every kind.
    (PY, "; rm -rf /", "character ';' is not allowed"),
    (PY, "numpy; rm -rf /",
     "not a valid Python requirement: expected a marker variable or quoted string"),
    (PY, 'numpy; python_version < "3.11"; rm -rf /', "character ';' is not allowed"),
    (PY, "-r x.txt; rm -rf /", "character ';' is not allowed"),
    (PY, "$(whoami)", "character '$' is not allowed"),
    (PY, "numpy==${VERSION}", "character '$' is not allowed"),
    (PY, "`id`", "character '`' is not allowed"),
    (PY, "foo && bar", "character '&' is not allowed"),
    (PY, "foo | sh", "character '|' is not allowed"),
    (PY, "num\\py", "character '\\' is not allowed"),
    (PY, "numpy \\ ", "a '\\' continues a line only as its last character (remove what follows it)"),
    (DEB, "curl\\", "character '\\' is not allowed"),  # continuations are pip's only
    (R, "dplyr\\", "character '\\' is not allowed"),
    (PY, "cat <(id)", "'<(' is not allowed"),
    (PY, "numpy >(tee x)", "'>(' is not allowed"),
    (PY, "num\x07py", "control character U+0007 is not allowed"),
    (PY, "numpy\x1b[31m", "control character U+001B is not allowed"),
    (PY, "num\u200bpy", "invisible character U+200B is not allowed"),
    (DEB, "; rm -rf /", "character ';' is not allowed"),
    (DEB, "curl; rm -rf /", "character ';' is not allowed"),
    (DEB, "$(whoami)", "character '$' is not allowed"),
    (DEB, "`id`", "character '`' is not allowed"),
    (DEB, "curl&&reboot", "character '&' is not allowed"),
    (DEB, "curl\rwget", "control character U+000D is not allowed"),
    (R, 'dplyr; system("id")', "character ';' is not allowed"),
    (R, "dplyr|sh", "character '|' is not allowed"),
    (R, "$(whoami)", "character '$' is not allowed"),
    # Python: options.
    (PY, "-e .", "option '-e' is not allowed in a list (editable installs are not supported)"),
    (PY, "--editable=git+https://example.org/x.git",
     "option '--editable' is not allowed in a list (editable installs are not supported)"),
    (PY, "--index-url x", f"option '--index-url' is not allowed in a list {INDEX_HINT}"),
    (PY, "-i x", f"option '-i' is not allowed in a list {INDEX_HINT}"),
    (PY, "--extra-index-url https://example.org/simple",
     f"option '--extra-index-url' is not allowed in a list {INDEX_HINT}"),
    (PY, "--find-links=/tmp/wheels",
     f"option '--find-links' is not allowed in a list {INDEX_HINT}"),
    (PY, "--trusted-host example.org",
     f"option '--trusted-host' is not allowed in a list {INDEX_HINT}"),
    (PY, "-c c.txt", "option '-c' is not allowed in a list (constraint files are not supported)"),
    (PY, "--pre", "option '--pre' is not allowed in a list"),
    (PY, "numpy==2.0 --hash=sha256:abc", HASH_REFUSAL),
    (PY, "--hash=sha256:abc", HASH_REFUSAL),
    (PY, "-r", "option '-r' needs a file name"),
    # Python: URLs and paths.
    (PY, "file:///etc/passwd", f"scheme 'file' is not allowed (use {SCHEMES})"),
    (PY, "x @ file:///etc/passwd", f"scheme 'file' is not allowed (use {SCHEMES})"),
    (PY, "svn+https://example.org/repo", f"scheme 'svn+https' is not allowed (use {SCHEMES})"),
    (PY, "x @ ./pkg", f"a direct reference must be a URL ({SCHEMES})"),
    (PY, "./pkg", "local paths are not supported (use a package name or URL)"),
    (PY, "/etc/passwd", "local paths are not supported (use a package name or URL)"),
    (PY, "git+https://example.org/r.git#egg=-x", "not a valid egg name: '-x'"),
    (PY, "https:///x.whl", "not a valid URL: 'https:///x.whl'"),
    # Python: PEP 508.
    (PY, "numpy===", NOT_PEP508),
    (PY, "num py", NOT_PEP508),
    (PY, "numpy>=", NOT_PEP508),
    (PY, "x @ ", "not a valid Python requirement: expected URL after @"),
    # Debian.
    (DEB, "Foo", "not a valid Debian package name: 'Foo'"),
    (DEB, "a", "not a valid Debian package name: 'a'"),
    (DEB, "-y", "options are not allowed in a Debian list"),
    (DEB, "--no-install-recommends", "options are not allowed in a Debian list"),
    (DEB, "foo=", "missing version after '='"),
    (DEB, "foo=abc", "not a valid Debian version: 'abc'"),
    (DEB, "foo bar", "one package per line, without spaces"),
    (DEB, "foo/", "missing release after '/'"),
    (DEB, "foo/Bookworm", "not a valid Debian release: 'Bookworm'"),
    (DEB, "foo-", "not a valid Debian package name: 'foo-' (apt reads a trailing '-' as remove)"),
    (DEB, "libc6:i386", "architecture qualifiers (`:i386`) are not supported: " + ARCH_HINT),
    (DEB, "libfoo:amd64=1.0", "architecture qualifiers (`:amd64`) are not supported: " + ARCH_HINT),
    (DEB, "curl>=8", "version operator '>=' is not supported in a Debian list: " + CURL_HINT),
    (DEB, "curl (>= 8)", "version operator '>=' is not supported in a Debian list: " + CURL_HINT),
    (DEB, "curl==8.1", "version operator '==' is not supported in a Debian list: " + CURL_HINT),
    (DEB, "curl<<9", "version operator '<<' is not supported in a Debian list: " + CURL_HINT),
    (DEB, "curl < 9", "version operator '<' is not supported in a Debian list: " + CURL_HINT),
    # R.
    (R, "1abc", "not a valid R package name: '1abc'"),
    (R, "ab_c", "not a valid R package name: 'ab_c'"),
    (R, "dplyr.", "not a valid R package name: 'dplyr.'"),
    (R, "dplyr==", "missing version after '=='"),
    (R, "dplyr==abc", "not a valid R version: 'abc'"),
    (R, "dplyr==1", "not a valid R version: '1'"),
    (R, "dplyr<=1.0", "unsupported version operator '<=' (use == or >=)"),
    (R, "dplyr 1.0", "unexpected text after the package name: '1.0'"),
    (R, "apt:dplyr==1.0", "version pins are only supported for CRAN packages"),
    (R, "apt:dplyr>=1.0", "version pins are only supported for CRAN packages"),
    (R, "foo:bar", "unknown source 'foo:' (use apt: or cran:)"),
    (R, "cran:", "missing R package name"),
    (R, "-r other.txt", "options are not allowed in an R list"),
    # Architecture lists, Debian's way (`foo [amd64]`), in Debian and R lists.
    (DEB, "curl []", "an empty architecture list '[]': name some, such as [amd64]"),
    (DEB, "curl [amd64 !arm64]", ("'[amd64 !arm64]' mixes architectures and negated ones: "
     "write either [amd64 arm64] or [!arm64]")),
    (DEB, "curl [armhf]", ("unknown architecture 'armhf' in '[armhf]': pyrlab builds for "
     "amd64 and arm64 (Debian's names)")),
    (DEB, "curl [!amd64 !arm64]", "'[!amd64 !arm64]' leaves no platform: remove the line"),
    (DEB, "[amd64]", "missing package name before the architecture list"),
    (DEB, "curl [amd64] [arm64]", "one package per line, without spaces"),
    (R, "sf [aarch64]", ("unknown architecture 'aarch64' in '[aarch64]': pyrlab builds for "
     "amd64 and arm64 (Debian's names)")),
]


@pytest.mark.parametrize(("kind", "line", "message"), BAD_LINES,
                         ids=[f"{k.name}:{line!r}" for k, line, _ in BAD_LINES])
def test_bad_line_is_reported_with_file_and_line(
    tmp_path: Path, kind: Ecosystem, line: str, message: str
) -> None:
    write(tmp_path, "list.txt", f"# a comment first\n{line}\n")
    parsed = parse(tmp_path, kind, "list.txt")
    assert messages(parsed) == [f"list.txt:2: {message}"]
    assert parsed.entries == ()


def test_enough_bad_inputs_are_covered() -> None:
    assert len(BAD_LINES) >= 35
    assert {kind.name for kind, _, _ in BAD_LINES} == {"debian", "python", "r"}


def test_every_problem_in_a_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "numpy===\n\n$(id)\npandas\n-e .\nscipy\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert [p.where for p in parsed.problems] == [
        "requirements.txt:1", "requirements.txt:3", "requirements.txt:5"
    ]
    assert [e.name for e in parsed.entries] == ["pandas", "scipy"]


def test_problems_are_reported_across_all_files(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "Foo\ncurl\n")
    write(tmp_path, "b.txt", "wget\n-y\n")
    parsed = parse(tmp_path, DEB, "a.txt", "b.txt")
    assert messages(parsed) == [
        "a.txt:1: not a valid Debian package name: 'Foo'",
        "b.txt:2: options are not allowed in a Debian list",
    ]
    assert [e.name for e in parsed.entries] == ["curl", "wget"]


# -- files ---------------------------------------------------------------------------------


def test_non_utf8_file_names_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", b"# ok\nnumpy\nb\xffad\nscipy\n\xfe\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == ["requirements.txt:3: not valid UTF-8"]
    assert [e.name for e in parsed.entries] == ["numpy", "scipy"]


def test_latin1_r_list_is_not_utf8(tmp_path: Path) -> None:
    write(tmp_path, "r_packages.txt", "dplyr\n# Jos\xe9\n".encode("latin-1"))
    parsed = parse(tmp_path, R, "r_packages.txt")
    assert messages(parsed) == ["r_packages.txt:2: not valid UTF-8"]


def test_missing_file(tmp_path: Path) -> None:
    parsed = parse(tmp_path, DEB, "base_debs.txt")
    assert messages(parsed) == ["base_debs.txt: cannot read: file not found"]
    assert parsed.files == ()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    write(tmp_path, "debs.txt", "curl\n").chmod(0)
    parsed = parse(tmp_path, DEB, "debs.txt")
    assert messages(parsed) == ["debs.txt: cannot read: permission denied"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    parsed = parse(tmp_path, DEB, "lists")
    assert messages(parsed) == ["lists: cannot read: is a directory"]


def test_missing_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "b.txt", "Bad\n")
    parsed = parse(tmp_path, DEB, "a.txt", "b.txt")
    assert messages(parsed) == [
        "a.txt: cannot read: file not found",
        "b.txt:1: not a valid Debian package name: 'Bad'",
    ]


def test_file_outside_root_is_refused_and_shown_as_given(tmp_path: Path) -> None:
    outside = write(tmp_path, "elsewhere/debs.txt", "Foo\n")
    root = tmp_path / "project"
    root.mkdir()
    parsed = parse_lists([outside], DEB, root=root)
    assert messages(parsed) == [
        f"{outside}: cannot read: it lies outside the project folder {root}"]
    assert parsed.files == () and parsed.entries == ()


def test_subdirectory_of_root_is_shown_relative(tmp_path: Path) -> None:
    write(tmp_path, "lists/debs.txt", "curl\n")
    parsed = parse(tmp_path, DEB, "lists/debs.txt")
    assert parsed.entries[0].where == "lists/debs.txt:1"


# -- includes -------------------------------------------------------------------------------


def test_nested_includes_keep_their_own_locations(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "numpy\n-r extra/more.txt\npandas\n")
    write(tmp_path, "extra/more.txt", "# more\n--requirement=deeper/last.txt\nscipy\n")
    write(tmp_path, "extra/deeper/last.txt", "\n\nrich\n--requirement ../../shared.txt\n")
    write(tmp_path, "shared.txt", "httpx\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == []
    assert [(e.name, e.where) for e in parsed.entries] == [
        ("numpy", "requirements.txt:1"),
        ("rich", "extra/deeper/last.txt:3"),
        ("httpx", "shared.txt:1"),
        ("scipy", "extra/more.txt:3"),
        ("pandas", "requirements.txt:3"),
    ]
    assert [f.resolve() for f in parsed.files] == [
        (tmp_path / n).resolve()
        for n in ("requirements.txt", "extra/more.txt", "extra/deeper/last.txt", "shared.txt")
    ]


def test_missing_include_is_reported_at_the_including_line(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "numpy\n-r x.txt\nscipy\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == ["requirements.txt:2: included file 'x.txt' not found"]
    assert [e.name for e in parsed.entries] == ["numpy", "scipy"]


def test_include_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "numpy\n-r b.txt\n")
    write(tmp_path, "b.txt", "# b\n-r a.txt\nscipy\n")
    parsed = parse(tmp_path, PY, "a.txt")
    assert messages(parsed) == ["b.txt:2: include cycle: a.txt -> b.txt -> a.txt"]
    assert [e.name for e in parsed.entries] == ["numpy", "scipy"]


def test_file_including_itself(tmp_path: Path) -> None:
    write(tmp_path, "sub/a.txt", "-r ../sub/a.txt\n")
    parsed = parse(tmp_path, PY, "sub/a.txt")
    assert messages(parsed) == ["sub/a.txt:1: include cycle: sub/a.txt -> sub/a.txt"]


def test_file_included_twice_counts_once(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "-r common.txt\nnumpy\n")
    write(tmp_path, "b.txt", "-r common.txt\nscipy\n")
    write(tmp_path, "common.txt", "rich\n")
    parsed = parse(tmp_path, PY, "a.txt", "b.txt")
    assert messages(parsed) == []
    assert [e.name for e in parsed.entries] == ["rich", "numpy", "scipy"]
    assert [f.name for f in parsed.files] == ["a.txt", "common.txt", "b.txt"]


# -- duplicates: as pip and uv read a list -------------------------------------------------


def warnings(parsed: ParsedList) -> list[str]:
    return [str(p) for p in parsed.warnings]


def test_an_exact_duplicate_is_a_warning_and_counts_once(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "numpy\nscipy\nnumpy\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == []
    assert warnings(parsed) == [
        "requirements.txt:3: duplicate entry 'numpy' (also at requirements.txt:1); it asks for nothing more"]
    assert [e.text for e in parsed.entries] == ["numpy", "scipy"]


def test_the_same_distribution_with_other_extras_merges(tmp_path: Path) -> None:
    # The original project's own list has exactly this.
    write(tmp_path, "requirements.txt", "dill\npandas\ndill[graph]\nDill[profile]>=0.3\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert (messages(parsed), warnings(parsed)) == ([], [])
    assert brief(parsed) == [
        ("dill", "dill[graph,profile]>=0.3", None, None, "requirements.txt:1"),
        ("pandas", "pandas", None, None, "requirements.txt:2"),
    ]


def test_lines_keep_every_python_line_in_order_with_includes_in_place(tmp_path: Path) -> None:
    # What the installer reads: a resolver's pick may depend on the order and shape of its
    # input (uv's does), so nothing is merged, dropped or moved; each line is normalised.
    write(tmp_path, "requirements.txt",
          "dill\ndvc[s3,gdrive]\n-r more.txt\nnumpy\ndill[graph]\nnumpy\n")
    write(tmp_path, "more.txt", "Pandas>=2 # comment\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == []
    assert [(e.text, e.where) for e in parsed.lines] == [
        ("dill", "requirements.txt:1"), ("dvc[gdrive,s3]", "requirements.txt:2"),
        ("Pandas>=2", "more.txt:1"), ("numpy", "requirements.txt:4"),
        ("dill[graph]", "requirements.txt:5"), ("numpy", "requirements.txt:6")]
    assert [e.text for e in parsed.entries] == ["dill[graph]", "dvc[gdrive,s3]", "Pandas>=2",
                                                "numpy"]


def test_compatible_constraints_merge_and_a_pin_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "# a\nNumpy>=1.26\nruamel.yaml\n")
    write(tmp_path, "b.txt", "numpy==2.1.0\nRuamel_YAML\n")
    parsed = parse(tmp_path, PY, "a.txt", "b.txt")
    assert messages(parsed) == []
    assert warnings(parsed) == [
        "b.txt:2: duplicate entry 'ruamel-yaml' (also at a.txt:3); it asks for nothing more"]
    assert brief(parsed)[0] == ("numpy", "Numpy==2.1.0,>=1.26", "2.1.0", None, "a.txt:2")


def test_contradictory_python_lines_are_an_error_naming_both(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt",
          "numpy==1.26\nnumpy==2.1\nscipy>=1.14\nscipy==1.13.1\n"
          "six @ https://example.org/six-1.0.whl\nsix @ https://example.org/six-2.0.whl\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == [
        ("requirements.txt:2: 'numpy==2.1' contradicts 'numpy==1.26' at requirements.txt:1: "
        "two different pinned versions"),
        ("requirements.txt:4: 'scipy==1.13.1' contradicts 'scipy>=1.14' at "
        "requirements.txt:3: 1.13.1 does not satisfy '==1.13.1,>=1.14'"),
        ("requirements.txt:6: 'six @ https://example.org/six-2.0.whl' contradicts "
        "'six @ https://example.org/six-1.0.whl' at requirements.txt:5: "
        "two different direct references"),
    ]


def test_duplicates_through_an_include_and_across_files(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "-r base.txt\nnumpy\n")
    write(tmp_path, "base.txt", "numpy\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert warnings(parsed) == [
        "requirements.txt:2: duplicate entry 'numpy' (also at base.txt:1); it asks for nothing more"]


def test_same_python_package_under_different_markers_is_not_a_duplicate(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt",
          'numpy<2; python_version < "3.10"\nnumpy>=2; python_version >= "3.10"\n'
          'numpy==2.2.0; python_version >= "3.10"\n')
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == []
    assert [e.text for e in parsed.entries] == [
        'numpy<2; python_version < "3.10"', 'numpy==2.2.0,>=2; python_version >= "3.10"']


def test_debian_duplicates_warn_a_version_merges_and_two_versions_contradict(
        tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "curl\njq\n")
    write(tmp_path, "b.txt", "curl=8.0-1\njq\ncurl/trixie-backports\n")
    parsed = parse(tmp_path, DEB, "a.txt", "b.txt")
    assert warnings(parsed) == ["b.txt:2: duplicate entry 'jq' (also at a.txt:2); it asks for nothing more"]
    assert messages(parsed) == [
        ("b.txt:3: 'curl/trixie-backports' contradicts 'curl=8.0-1' at a.txt:1: "
        "two different versions or releases")]
    assert brief(parsed)[0] == ("curl", "curl=8.0-1", "8.0-1", None, "a.txt:1")


def test_r_duplicates_merge_by_name_and_source_and_keep_case(tmp_path: Path) -> None:
    write(tmp_path, "r_packages.txt",
          "dplyr\nDplyr\napt:dplyr\ncran:Dplyr>=1.0\ncran:Dplyr==1.1.4\n"
          "tidyr==1.0.0\ntidyr==1.3.0\nzoo>=2.0\nzoo==1.8-12\napt:jsonlite\ncran:jsonlite\n")
    parsed = parse(tmp_path, R, "r_packages.txt")
    assert messages(parsed) == [
        ("r_packages.txt:7: 'tidyr==1.3.0' contradicts 'tidyr==1.0.0' at r_packages.txt:6: "
        "two different pinned versions"),
        ("r_packages.txt:9: 'zoo==1.8-12' contradicts 'zoo>=2.0' at r_packages.txt:8: "
        "1.8-12 is older than the minimum asked for"),
        ("r_packages.txt:11: 'jsonlite' contradicts 'jsonlite' at r_packages.txt:10: "
        "one package from two sources (apt: and cran:)"),
    ]
    assert [(e.name, e.text, e.source, e.where) for e in parsed.entries][:2] == [
        ("dplyr", "dplyr", "apt", "r_packages.txt:1"),
        ("Dplyr", "Dplyr==1.1.4", "cran", "r_packages.txt:2"),
    ]


# -- good input -----------------------------------------------------------------------------


def test_comments_blanks_and_whitespace(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt",
          "\ufeff# header\n\n   \n  numpy  # the array library\n\tpandas\t#tabbed\r\n"
          "scipy#not-a-comment-without-space\n")
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == [
        f"requirements.txt:6: {NOT_PEP508}"
    ]
    assert brief(parsed) == [
        ("numpy", "numpy", None, None, "requirements.txt:4"),
        ("pandas", "pandas", None, None, "requirements.txt:5"),
    ]


def test_python_requirements(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", lines(
        'tomli; python_version < "3.11"',
        "Jupyter_LAB[Test,docs] >= 4.2, <5",
        "numpy==2.1.3",
        "scipy==1.14.*",
        "x @ git+https://github.com/org/repo@v1",
        "y @ https://example.org/y-1.0-py3-none-any.whl ; sys_platform == 'linux'",
        "git+https://github.com/org/z.git@main#egg=Z_Pkg",
        "git+ssh://git@github.com/org/w.git",
        "https://example.org/wheels/v-2.0-py3-none-any.whl",
    ))
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == []
    where = [f"requirements.txt:{n}" for n in range(1, 10)]
    assert brief(parsed) == [
        ("tomli", 'tomli; python_version < "3.11"', None, None, where[0]),
        ("jupyter-lab", "Jupyter_LAB[Test,docs]<5,>=4.2", None, None, where[1]),
        ("numpy", "numpy==2.1.3", "2.1.3", None, where[2]),
        ("scipy", "scipy==1.14.*", None, None, where[3]),
        ("x", "x @ git+https://github.com/org/repo@v1", None, None, where[4]),
        ("y", 'y @ https://example.org/y-1.0-py3-none-any.whl ; sys_platform == "linux"',
         None, None, where[5]),
        ("z-pkg", "git+https://github.com/org/z.git@main#egg=Z_Pkg", None, None, where[6]),
        ("git+ssh://git@github.com/org/w.git", "git+ssh://git@github.com/org/w.git",
         None, None, where[7]),
        ("https://example.org/wheels/v-2.0-py3-none-any.whl",
         "https://example.org/wheels/v-2.0-py3-none-any.whl", None, None, where[8]),
    ]
    assert all(e.ecosystem == PY.name for e in parsed.entries)


def test_pip_line_continuations_join_as_pip_joins_them(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt",
          "numpy \\\n"              # 1: continued on 2
          "    >=1.0\n"               # 2
          "pandas \\\r\n"          # 3: CRLF, continued on 4 and 5
          "  >=2 \\\n"              # 4
          "  ; python_version >= '3.10'\n"  # 5
          "scipy \\\n"              # 6: a comment line ends it, as in pip
          "# the comment\n"           # 7
          "# a comment \\\n"        # 8: a comment does not continue
          "idna==\n"                 # 9: reported on its own line
          "x==1 \\\n"               # 10: continued on 11
          "  --hash=sha256:abc\n"     # 11
          "six \\")                  # 12: on the last line
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert messages(parsed) == [
        f"requirements.txt:9: {NOT_PEP508}",
        f"requirements.txt:10: {HASH_REFUSAL}",
    ]
    assert [(e.text, e.where) for e in parsed.lines] == [
        ("numpy>=1.0", "requirements.txt:1"),
        ('pandas>=2; python_version >= "3.10"', "requirements.txt:3"),
        ("scipy", "requirements.txt:6"),
        ("six", "requirements.txt:12"),
    ]


def test_a_list_without_continuations_reads_as_before(tmp_path: Path) -> None:
    """The joined line is exactly what one line with the same text gives."""
    write(tmp_path, "one.txt", "jupyterlab[test] >=4.2,<5 ; sys_platform == 'linux'\n")
    write(tmp_path, "two.txt", "jupyterlab[test] \\\n>=4.2,<5 \\\n; sys_platform == 'linux'\n")
    one, two = parse(tmp_path, PY, "one.txt"), parse(tmp_path, PY, "two.txt")
    assert [e.text for e in one.lines] == [e.text for e in two.lines] == [
        'jupyterlab[test]<5,>=4.2; sys_platform == "linux"']


def test_debian_packages(tmp_path: Path) -> None:
    write(tmp_path, "base_debs.txt",
          "# tools\ncurl\nlibfoo1=1.2-3\nbar=1:2.0~rc1+dfsg-1\ng++\nbaz/trixie-backports\n")
    parsed = parse(tmp_path, DEB, "base_debs.txt")
    assert messages(parsed) == []
    assert [(e.ecosystem, *b) for e, b in zip(parsed.entries, brief(parsed), strict=True)] == [
        ("debian", "curl", "curl", None, None, "base_debs.txt:2"),
        ("debian", "libfoo1", "libfoo1=1.2-3", "1.2-3", None, "base_debs.txt:3"),
        ("debian", "bar", "bar=1:2.0~rc1+dfsg-1", "1:2.0~rc1+dfsg-1", None, "base_debs.txt:4"),
        ("debian", "g++", "g++", None, None, "base_debs.txt:5"),
        ("debian", "baz", "baz/trixie-backports", None, None, "base_debs.txt:6"),
    ]


def test_r_packages_with_pins_and_sources(tmp_path: Path) -> None:
    write(tmp_path, "r_packages.txt",
          "tidyverse\ndata.table==1.15.4\nggplot2 >= 3.5\napt:Rcpp\ncran:sf==1.0-16\n"
          "cran: lme4\n")
    parsed = parse(tmp_path, R, "r_packages.txt")
    assert messages(parsed) == []
    assert brief(parsed) == [
        ("tidyverse", "tidyverse", None, None, "r_packages.txt:1"),
        ("data.table", "data.table==1.15.4", "1.15.4", None, "r_packages.txt:2"),
        ("ggplot2", "ggplot2>=3.5", "3.5", None, "r_packages.txt:3"),
        ("Rcpp", "Rcpp", None, "apt", "r_packages.txt:4"),
        ("sf", "sf==1.0-16", "1.0-16", "cran", "r_packages.txt:5"),
        ("lme4", "lme4", None, "cran", "r_packages.txt:6"),
    ]


def test_entries_are_frozen(tmp_path: Path) -> None:
    write(tmp_path, "debs.txt", "curl\n")
    entry = parse(tmp_path, DEB, "debs.txt").entries[0]
    assert entry == Entry(DEB.name, "curl", "curl", None, None, "debs.txt:1")
    with pytest.raises(AttributeError):
        entry.name = "wget"  # type: ignore[misc]


def test_empty_input(tmp_path: Path) -> None:
    write(tmp_path, "empty.txt", "")
    parsed = parse(tmp_path, R, "empty.txt")
    assert parsed == ParsedList(entries=(), problems=(), files=(tmp_path / "empty.txt",))
    assert parse_lists([], PY, root=tmp_path) == ParsedList((), (), ())


def limits(parsed: ParsedList) -> list[tuple[str, str, list[str] | None]]:
    return [(e.name, e.text, None if e.platforms is None else sorted(e.platforms))
            for e in parsed.entries]


def test_debian_and_r_lines_can_be_limited_to_platforms(tmp_path: Path) -> None:
    write(tmp_path, "debs.txt", lines("curl", "intel-mkl [amd64]", "libfoo=1.0  [!amd64]",
                                      "both [amd64 arm64]"))
    write(tmp_path, "r.txt", lines("sf [arm64]", "cran: ggplot2>=3.5 [!arm64]", "Rcpp"))
    debs, r = parse(tmp_path, DEB, "debs.txt"), parse(tmp_path, R, "r.txt")
    assert debs.problems == r.problems == ()
    assert limits(debs) == [
        ("curl", "curl", None), ("intel-mkl", "intel-mkl", ["linux/amd64"]),
        ("libfoo", "libfoo=1.0", ["linux/arm64"]),
        ("both", "both", ["linux/amd64", "linux/arm64"])]
    assert limits(r) == [("sf", "sf", ["linux/arm64"]),
                         ("ggplot2", "ggplot2>=3.5", ["linux/amd64"]), ("Rcpp", "Rcpp", None)]
    assert r.entries[1].source == "cran" and r.entries[1].version == "3.5"
    assert [e.applies_to("linux/arm64") for e in debs.entries] == [True, False, True, True]
    assert [e.applies_to("linux/amd64") for e in debs.entries] == [True, True, False, True]


def test_python_brackets_are_still_extras(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", lines("requests[socks]"))
    parsed = parse(tmp_path, PY, "requirements.txt")
    assert parsed.problems == () and parsed.entries[0].platforms is None


def test_one_package_for_each_platform_is_two_alternatives(tmp_path: Path) -> None:
    write(tmp_path, "debs.txt", lines("libmkl [amd64]", "libopenblas0 [arm64]",
                                      "libfoo=1 [amd64]", "libfoo=2 [arm64]",
                                      "libbar [amd64]", "libbar=3 [amd64]"))
    parsed = parse(tmp_path, DEB, "debs.txt")
    assert parsed.problems == ()
    assert limits(parsed) == [
        ("libmkl", "libmkl", ["linux/amd64"]), ("libopenblas0", "libopenblas0", ["linux/arm64"]),
        ("libfoo", "libfoo=1", ["linux/amd64"]), ("libfoo", "libfoo=2", ["linux/arm64"]),
        ("libbar", "libbar=3", ["linux/amd64"])]


@pytest.mark.parametrize(("first", "later", "both"), [
    ("curl", "curl [arm64]", "linux/arm64"),
    ("curl [!amd64]", "curl", "linux/arm64"),
    ("curl [amd64]", "curl=8 [amd64 arm64]", "linux/amd64"),
])
def test_lines_for_one_package_whose_platforms_meet_are_an_error(
        tmp_path: Path, first: str, later: str, both: str) -> None:
    write(tmp_path, "debs.txt", lines(first, later))
    assert messages(parse(tmp_path, DEB, "debs.txt")) == [
        (f"debs.txt:2: 'curl' is listed for {both} at debs.txt:1 too: limit the lines to "
        "platforms that do not meet, or list it once")]
