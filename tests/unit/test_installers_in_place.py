"""Each ecosystem's installer commands are named only by its own module and its container
scripts: the rest of pyrlab asks the ecosystem (its parts) and never calls apt-get, uv or
Rscript itself. Comments and docstrings may mention them; code and strings may not, except
where a message tells the user how to install a tool on their own machine."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from pyrlab import ecosystems

SRC = Path(__file__).resolve().parents[2] / "src" / "pyrlab"

# An installer command -> the ecosystem module that owns it (its container scripts under
# container/ are its own too).
OWNERS = {
    "apt-get": "debian",
    "apt-install": "debian",
    "uv": "python",
    "uv-install": "python",
    "uv-resolve": "python",
    "Rscript": "r",
    "r-install": "r",
}
# The installers by name (bare, or as /run/pyrlab/bin/NAME); uv as a command: an argv
# element "uv" or `uv SUBCOMMAND` (uv.toml, the "uv" cache and uv's name in a message are not
# calls).
_WORD = re.compile(r"(?<![\w.-])(apt-get|apt-install|uv-install|uv-resolve|Rscript|r-install)"
                   r"(?![\w-])|(?:^[\"']?|\$\(|\s)(uv)(?:[\"']$| (?:pip|sync|run|lock|tool|venv|cache)\b)")


def _commands(text: str) -> set[str]:
    return {a or b for a, b in _WORD.findall(text.strip())}


# Strings that name a command the user runs on their own machine, not an installer run by
# pyrlab: (file, command) -> why.
HOST_HINTS = {
    ("engines/docker.py", "apt-get"): "how to install Docker on the host",
    ("engines/podman.py", "apt-get"): "how to install Podman on the host",
    ("engines/emulation.py", "apt-get"): "how to install qemu-user-static on the host",
    ("baseimage.py", "apt-get"): "how to install mmdebstrap on the host",
    ("exports/ci.py", "apt-get"): "the CI runner's own setup, written into the CI file",
}


# Container scripts that name another ecosystem's command: (script, command) -> why.
CONTAINER_EXCEPTIONS = {
    # R's Debian binaries (r-cran-*) go through Debian's installer: a call, not a copy of it.
    ("r-install", "apt-install"): "R asks Debian's installer for r-cran-* packages",
    # The shared collector and `why`'s dependency dump are hashed into every image: they stay
    # one file each until a release that may change every input hash splits them.
    ("inventory.py", "Rscript"): "the shared collector lists R's packages",
    ("requires.py", "Rscript"): "why's dependency dump says where Rscript is",
}


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a Python module but its docstrings, with its line."""
    found = []
    previous = tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.STRING and previous not in (tokenize.NEWLINE, tokenize.NL,
                                                              tokenize.INDENT, tokenize.DEDENT):
            found.append((token.start[0], token.string))
        elif token.type == tokenize.STRING:
            # A string standing alone as a statement is a docstring (or a no-op): text.
            pass
        if token.type not in (tokenize.COMMENT, tokenize.NL):
            previous = token.type
    return found


def _template_code(path: Path) -> list[tuple[int, str]]:
    """A template's lines less its Dockerfile comments (`# …` lines)."""
    return [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1)
            if not line.lstrip().startswith("#")]


def test_installer_commands_appear_only_in_their_ecosystem() -> None:
    misplaced, hinted = [], set()
    for path in sorted(SRC.rglob("*")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith("container/") or "__pycache__" in relative:
            continue
        if path.suffix == ".py":
            lines = _code_strings(path)
        elif path.suffix == ".j2":
            lines = _template_code(path)
        else:
            continue
        for number, text in lines:
            for command in sorted(_commands(text)):
                owner = f"ecosystems/{OWNERS[command]}.py"
                if relative == owner:
                    continue
                if (relative, command) in HOST_HINTS:
                    hinted.add((relative, command))
                    continue
                misplaced.append(f"{relative}:{number}: {command} (belongs in {owner})")
    assert not misplaced, "\n".join(misplaced)
    assert hinted == set(HOST_HINTS), "a host hint no module gives any more"


def _script_code(path: Path) -> list[tuple[int, str]]:
    if path.suffix == ".py":
        return _code_strings(path)
    return _template_code(path)  # shell and R: `#` starts a comment line in both


def test_container_scripts_name_only_their_own_ecosystem_s_commands() -> None:
    owner_of = {script: eco.name for eco in ecosystems.registered()
                for script in eco.context.scripts()}
    misplaced, excepted = [], set()
    for path in sorted((SRC / "container").iterdir()):
        if not path.is_file() or path.suffix in (".pyc", ".ini") or path.name == "__init__.py":
            continue
        for number, text in _script_code(path):
            for command in sorted(_commands(text)):
                if owner_of.get(path.name) == OWNERS[command]:
                    continue
                if (path.name, command) in CONTAINER_EXCEPTIONS:
                    excepted.add((path.name, command))
                else:
                    misplaced.append(f"container/{path.name}:{number}: {command} "
                                     f"(an installer of {OWNERS[command]})")
    assert not misplaced, "\n".join(misplaced)
    assert excepted == set(CONTAINER_EXCEPTIONS), "an exception no script needs any more"


def test_the_check_sees_a_misplaced_command(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Rscript in a docstring is text."""\n# apt-get in a comment too\n'
                      'ARGV = ("Rscript", "-e", "1")\nUV = ["uv", "pip", "list"]\n'
                      'CACHE = "uv"\nNOTE = "uv.toml, pyrlab-uv and uv\'s resolution"\n')
    strings = [text for _, text in _code_strings(module)]
    assert strings[:3] == ['"Rscript"', '"-e"', '"1"']
    # The argv's "uv" and the cache id "uv" (a bare "uv" is taken for a command).
    assert [sorted(_commands(text)) for text in strings if _commands(text)] == [
        ["Rscript"], ["uv"], ["uv"]]
    assert _commands('"$bin/apt-install" x; /run/pyrlab/bin/r-install; exec uv pip install') == {
        "apt-install", "r-install", "uv"}
