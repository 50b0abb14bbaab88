"""pyrlab.lock: the exact text people commit, round trips, updates that keep the other
images, and every kind of bad file ending in `pyrlab.lock:LINE: what is wrong`."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
from inventories import inventory, meta

from pyrlab.contents.lockfile import (
    HEADER,
    LockError,
    key_lines,
    parse_lock,
    read_lock,
    render_lock,
    update_lock,
    write_lock,
)
from pyrlab.contents.model import Inventory
from pyrlab.ecosystems.debian import Deb
from pyrlab.ecosystems.python import PyDist
from pyrlab.ecosystems.r import RPkg
from pyrlab.errors import EXIT_CONFIG, ConfigError

GOLDEN = '''\
# pyrlab.lock — exactly what each image holds; written by `pyrlab build` and `pyrlab lock`.
# Commit it: its diff shows what changed in each image.
version = 1

[images.pylab]
input-hash = "{hash}"
base-id = "sha256:{base}"
os = "Debian GNU/Linux 13 (trixie)"
os-id = "debian"
os-version = "13"
python-version = "3.13.5"
r-version = "4.5.0"
pyrlab = "0.1.0"

[images.pylab.debs]
libc6 = "2.41-12 amd64"
"libc6:i386" = "2.41-12 i386"
"libstdc++6" = "14.2.0-19 amd64"
tzdata = "2025b-4 all"

[images.pylab.python]
jinja2 = "3.1.6"
mypkg = "1.0 @ https://example.org/mypkg-1.0.tar.gz"
numpy = "2.3.5"

[images.pylab.r]
"data.table" = "1.17.0 archive"
ggplot2 = "3.5.2 cran"
Rcpp = "1.0.14 debian"
'''.format(hash="a" * 64, base="b" * 64)


def lock_problem(text: str) -> str:
    with pytest.raises(LockError) as caught:
        parse_lock(text)
    return str(caught.value)


def valid_lock(**sections: str) -> str:
    """A valid lock of one image, with sections ("debs", "python", "r", "image") replaced."""
    text = render_lock({"pylab": inventory()})
    for name, body in sections.items():
        header = "[images.pylab]\n" if name == "image" else f"[images.pylab.{name}]\n"
        start = text.index(header) + len(header)
        end = text.find("\n\n", start)
        text = text[:start] + textwrap.dedent(body) + (text[end:] if end >= 0 else "")
    return text


# --- writing ------------------------------------------------------------------------------

def test_lock_text_is_sorted_one_package_per_line() -> None:
    assert render_lock({"pylab": inventory()}) == GOLDEN


def test_same_inventories_same_bytes_whatever_the_order() -> None:
    one = {"pylab": inventory("pylab"), "rlab": inventory("rlab")}
    other = {"rlab": inventory("rlab", debs=tuple(reversed(inventory().packages("debian")))),
             "pylab": inventory("pylab")}
    assert render_lock(one) == render_lock(other)
    assert render_lock(one).index("[images.pylab]") < render_lock(one).index("[images.rlab]")


def test_an_inventory_filed_under_another_name_is_a_bug() -> None:
    with pytest.raises(ValueError, match="'rlab'"):
        render_lock({"rlab": inventory("pylab")})


def test_write_then_read_gives_the_same_inventories(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    odd = inventory(
        "odd-name.2",
        meta=meta("odd-name.2", os='Debian "quoted" \\ back\tslash \x7f é', r=""),
        debs=(Deb("libc6:i386", "1:2.41-12~rc1+b1", "i386"),),
        python=(PyDist("weird", "1.0", 'file:///tmp/a b/"c"\\d'),),
        r=(),
    )
    lock = {"pylab": inventory(), "odd-name.2": odd}
    write_lock(path, lock)
    assert read_lock(path) == lock


def test_missing_lock_is_empty(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "pyrlab.lock") == {}


def test_update_keeps_the_other_images(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    write_lock(path, {"pylab": inventory("pylab"), "rlab": inventory("rlab")})
    before = path.read_text()
    newer = inventory("rlab", python=(PyDist("numpy", "2.3.6"),))
    result = update_lock(path, {"rlab": newer, "extra": inventory("extra")})
    assert result == read_lock(path)
    assert read_lock(path) == {"pylab": inventory("pylab"), "rlab": newer,
                               "extra": inventory("extra")}
    pylab_section = before[before.index("[images.pylab]"):before.index("[images.rlab]")]
    assert pylab_section in path.read_text()
    assert '[images.rlab.python]\nnumpy = "2.3.6"\n\n' in path.read_text()


def test_update_creates_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    update_lock(path, {"pylab": inventory()})
    assert path.read_text() == GOLDEN


def test_write_replaces_the_file_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    path.write_text(HEADER + "old\n")  # pyrlab's, as its header says
    os.chmod(path, 0o600)
    old_umask = os.umask(0o022)
    try:
        write_lock(path, {"pylab": inventory()})
    finally:
        os.umask(old_umask)
    assert path.read_text() == GOLDEN
    assert [p.name for p in tmp_path.iterdir()] == ["pyrlab.lock"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a new file, readable like any other


def test_writing_what_is_there_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    write_lock(path, {"pylab": inventory()})
    os.utime(path, (1_000_000, 1_000_000))
    write_lock(path, {"pylab": inventory()})
    assert path.stat().st_mtime == 1_000_000
    write_lock(path, {"pylab": inventory(r=())})
    assert path.stat().st_mtime != 1_000_000


def test_a_lock_that_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(LockError, match=r"pyrlab\.lock: cannot write: No such file"):
        write_lock(tmp_path / "missing" / "pyrlab.lock", {}, shown="pyrlab.lock")


def test_a_lock_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(LockError, match=r"^pyrlab\.lock: cannot read: is a directory$"):
        read_lock(tmp_path, shown="pyrlab.lock")


# --- reading bad files --------------------------------------------------------------------

def test_a_lock_error_is_a_config_error_with_its_exit_code() -> None:
    with pytest.raises(LockError) as caught:
        parse_lock("version = 3\n")
    assert isinstance(caught.value, ConfigError)
    assert caught.value.exit_code == EXIT_CONFIG
    assert str(caught.value) == ("pyrlab.lock:1: unknown lock file version 3 (this pyrlab reads "
                                 "versions 1 and 2; a newer pyrlab wrote it?)")


def test_toml_syntax_errors_name_the_line() -> None:
    text = GOLDEN.replace('numpy = "2.3.5"', 'numpy = 2.3.5')
    line = text.splitlines().index("numpy = 2.3.5") + 1
    message = lock_problem(text)
    assert message.startswith(f"pyrlab.lock:{line}: not valid TOML: ")
    assert "column" in message
    assert "(at line" not in message
    with pytest.raises(LockError) as caught:
        parse_lock(text)
    assert caught.value.hint is not None and "pyrlab lock" in caught.value.hint


def test_a_merge_conflict_names_its_first_line() -> None:
    text = GOLDEN.replace('numpy = "2.3.5"\n', '<<<<<<< HEAD\nnumpy = "2.3.5"\n=======\n'
                          'numpy = "2.3.6"\n>>>>>>> main\n')
    line = text.splitlines().index("<<<<<<< HEAD") + 1
    assert lock_problem(text).startswith(f"pyrlab.lock:{line}: not valid TOML: ")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pyrlab.lock"
    path.write_bytes(GOLDEN.encode().replace(b'jinja2 = "3.1.6"', b'jinja2 = "3.1.\xff"'))
    line = GOLDEN.splitlines().index('jinja2 = "3.1.6"') + 1
    with pytest.raises(LockError, match=rf"^pyrlab\.lock:{line}: not valid UTF-8$"):
        read_lock(path, shown="pyrlab.lock")


def at(text: str, line_text: str) -> int:
    return text.splitlines().index(line_text) + 1


@pytest.mark.parametrize(("sections", "bad_line", "message"), [
    ({"debs": 'libc6 = ""\n'}, 'libc6 = ""', "'libc6' has no version"),
    ({"debs": 'libc6 = "2.41-12"\n'}, 'libc6 = "2.41-12"',
     '\'libc6\' = "2.41-12": expected "VERSION ARCH"'),
    ({"debs": 'libc6 = "2.41-12  amd64"\n'}, 'libc6 = "2.41-12  amd64"',
     '\'libc6\' = "2.41-12  amd64": expected "VERSION ARCH"'),
    ({"python": 'numpy = "  "\n'}, 'numpy = "  "', "'numpy' has no version"),
    ({"python": 'numpy = "2.3.5 @ "\n'}, 'numpy = "2.3.5 @ "',
     '\'numpy\' = "2.3.5 @ ": expected "VERSION" or "VERSION @ URL"'),
    ({"python": "numpy = 2\n"}, "numpy = 2",
     "'numpy' must be a string \"VERSION\" or \"VERSION @ URL\", not an integer"),
    ({"python": '"" = "1.0"\n'}, '"" = "1.0"', 'not a valid package name: ""'),
    ({"python": 'Foo_Bar = "1.0"\nfoo-bar = "1.1"\n'}, "[images.pylab.python]",
     "[images.pylab.python] lists 'foo-bar' twice"),
    ({"r": 'ggplot2 = "3.5.2 github"\n'}, 'ggplot2 = "3.5.2 github"',
     "'ggplot2': unknown source 'github' (expected debian, cran, archive)"),
    ({"r": 'ggplot2 = "3.5.2"\n'}, 'ggplot2 = "3.5.2"',
     '\'ggplot2\' = "3.5.2": expected "VERSION SOURCE" (SOURCE: debian, cran, archive)'),
    ({"image": 'input-hash = "x"\n'}, "[images.pylab]", "'base-id' of image 'pylab': missing"),
    ({"image": 'input-hash = 1\n'}, "input-hash = 1",
     "'input-hash' of image 'pylab': an integer, not a string"),
    ({"image": 'colour = "blue"\n'}, 'colour = "blue"',
     "unknown key 'colour' in [images.pylab]"),
])
def test_bad_entries_name_their_line(sections: dict[str, str], bad_line: str,
                                     message: str) -> None:
    text = valid_lock(**sections)
    problems = lock_problem(text)
    assert f"pyrlab.lock:{at(text, bad_line)}: {message}" in problems


def test_the_top_level_is_checked() -> None:
    assert lock_problem("images = {}\n") == "pyrlab.lock: missing 'version = 1' at the top"
    assert lock_problem('version = "1"\n').startswith("pyrlab.lock:1: unknown lock file version '1'")
    assert lock_problem("version = true\n").startswith("pyrlab.lock:1: unknown lock file version")
    assert lock_problem("version = 1\nimages = 3\n") == (
        "pyrlab.lock:2: 'images' must be a table, not an integer")
    assert lock_problem("version = 1\nextra = 3\n") == (
        "pyrlab.lock:2: unknown key 'extra' at the top level")
    assert lock_problem('version = 1\n[images]\n"Bad Name" = {}\n') == (
        "pyrlab.lock:3: not a valid image name: 'Bad Name'")
    assert lock_problem("version = 1\n[images]\npylab = 1\n") == (
        "pyrlab.lock:3: 'images.pylab' must be a table, not an integer")
    assert parse_lock("version = 1\n") == {}


def test_every_problem_is_reported_at_once() -> None:
    text = valid_lock(debs='libc6 = ""\n', r='ggplot2 = "1.0 nowhere"\n')
    with pytest.raises(LockError) as caught:
        parse_lock(text, "my.lock")
    libc6 = at(text, 'libc6 = ""')
    ggplot2 = at(text, 'ggplot2 = "1.0 nowhere"')
    assert [str(p) for p in caught.value.problems] == [
        f"my.lock:{libc6}: 'libc6' has no version",
        f"my.lock:{ggplot2}: 'ggplot2': unknown source 'nowhere' (expected debian, cran, archive)",
    ]


def test_a_hand_written_lock_in_another_toml_style_is_read() -> None:
    text = textwrap.dedent("""\
        version = 1
        [images.pylab]
        input-hash = "h"
        base-id = "b"
        os = "Debian"
        os-id = 'debian'
        os-version = "13"
        python-version = "3.13.5"
        r-version = ""
        pyrlab = "0.1.0"
        debs = { libc6 = "2.41-12 amd64" }
        python.numpy = "2.3.5"
    """)
    [(name, inv)] = parse_lock(text).items()
    assert name == "pylab"
    assert inv == Inventory(meta("pylab", input_hash="h", base_id="b", os="Debian", r=""),
                            debs=(Deb("libc6", "2.41-12", "amd64"),),
                            python=(PyDist("numpy", "2.3.5"),), r=())
    # problems inside an inline table point at its line
    assert lock_problem(text.replace('"2.41-12 amd64"', '""')).startswith(
        "pyrlab.lock:11: 'libc6' has no version")
    assert lock_problem(text.replace('"2.3.5"', "[]")).startswith(
        "pyrlab.lock:12: 'numpy' must be a string")


def test_r_packages_keep_their_case() -> None:
    text = valid_lock(r='Rcpp = "1.0.14 debian"\nrcpp = "1.0.13 cran"\n')
    assert parse_lock(text)["pylab"].packages("r") == (RPkg("Rcpp", "1.0.14", "debian"),
                                           RPkg("rcpp", "1.0.13", "cran"))


# --- where keys are -----------------------------------------------------------------------

def test_key_lines_finds_tables_keys_and_dotted_keys() -> None:
    text = textwrap.dedent('''\
        version = 1   # comment
        text = """
        fake = "not a key"
        """
        [images."a.b"]
        'literal.key' = "x"
          dotted . "quoted\\"key" = 2
        [ images . c . debs ]
        "libstdc++6" = "1 amd64"
        list = [
          "item",
        ]
        after = 3
    ''')
    lines = key_lines(text)
    assert lines[("version",)] == 1
    assert lines[("text",)] == 2
    assert ("fake",) not in lines
    assert lines[("images",)] == 5
    assert lines[("images", "a.b")] == 5
    assert lines[("images", "a.b", "literal.key")] == 6
    assert lines[("images", "a.b", "dotted")] == 7
    assert lines[("images", "a.b", "dotted", 'quoted"key')] == 7
    assert lines[("images", "c")] == 8
    assert lines[("images", "c", "debs", "libstdc++6")] == 9
    assert ("images", "c", "debs", "item") not in lines
    assert lines[("images", "c", "debs", "after")] == 13


def test_a_file_cut_short_names_its_last_line() -> None:
    text = GOLDEN + '"unfinished'
    assert lock_problem(text).startswith(f"pyrlab.lock:{len(text.splitlines())}: not valid TOML")
