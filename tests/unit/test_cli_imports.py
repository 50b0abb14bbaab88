"""The CLI imports what the chosen command needs, no more: start-up is most of a no-op.

Each check runs in a fresh interpreter and reads its sys.modules.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyrlab.cli import build_parser
from pyrlab.commands import COMMANDS, load

# What only building, rendering or self-testing needs.
HEAVY = ("jinja2", "pyrlab.gate", "pyrlab.dockerfile.render", "pyrlab.imagebuild.executor",
         "urllib.request", "ssl")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_version_imports_no_command() -> None:
    loaded = modules_after("from pyrlab.cli import main\n"
                           "try:\n    main(['--version'])\nexcept SystemExit:\n    pass")
    assert "pyrlab.cli" in loaded
    assert not {m for m in loaded if m.startswith("pyrlab.commands.")}
    assert not loaded & {*HEAVY, "pyrlab.engines.base", "pyrlab.config.lists"}
    assert not {m for m in loaded if m.startswith("pyrlab.ecosystems")}


@pytest.mark.parametrize("argv", [["up", "pylab", "--no-build"], ["down", "pylab"],
                                  ["-C", "/tmp", "ps"]])
def test_a_lab_command_imports_its_module_only(argv: list[str]) -> None:
    verb = next(arg for arg in argv if arg in COMMANDS)
    loaded = modules_after(f"from pyrlab.cli import parse_args\nparse_args({argv!r})")
    commands = {m for m in loaded if m.startswith("pyrlab.commands.")
                and not m.startswith("pyrlab.commands._")}  # _args, _common: shared helpers
    assert commands == {f"pyrlab.commands.{verb}"}
    assert not loaded & {*HEAVY, "difflib"}  # did-you-mean is for mistakes only


def test_a_no_op_build_does_not_import_the_self_test() -> None:
    # The gate's module is imported when a built image is tested, not to plan or skip.
    loaded = modules_after("from pyrlab.cli import parse_args\nparse_args(['build'])\n"
                           "from pyrlab.imagebuild.orchestration import self_test_gate\n"
                           "self_test_gate(None, None)")
    assert "pyrlab.commands.build" in loaded
    assert "pyrlab.gate" not in loaded


def test_every_verb_parses_with_its_own_options_and_help() -> None:
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb").choices
    assert verbs is not None and list(verbs) == [*COMMANDS, "help"]
    for verb, text in COMMANDS.items():
        sub = verbs[verb]
        help_text = sub.format_help()
        assert f"usage: pyrlab {verb} " in help_text and " ".join(text.split()[:3]) in help_text
        assert hasattr(load(verb), "run")
    assert parser.parse_args(["down", "--all"]).handler is load("down").run


def test_the_export_help_names_every_kind() -> None:
    from pyrlab.commands.export import KINDS

    assert COMMANDS["export"] == f"write a file for another tool ({', '.join(KINDS)})"


def test_the_engines_do_not_import_rendering() -> None:
    # `down`, `ps`, `logs` with either engine never render a context.
    loaded = modules_after("from pyrlab.engines.select import select_engine\n"
                           "import pyrlab.engines.docker, pyrlab.engines.podman, pyrlab.run.labs")
    assert not loaded & set(HEAVY)
