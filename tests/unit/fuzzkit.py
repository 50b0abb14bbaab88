"""Shared pieces of the property-based (Hypothesis) tests, test_fuzz_*.py.

Profiles: "ci" (the default) is small and derandomised, so every run tries the same inputs
and the whole fuzz suite stays around 20 seconds; `HYPOTHESIS_PROFILE=deep` is the long
local hunt (20,000 examples a property, random, failures kept in .hypothesis/), e.g.

    HYPOTHESIS_PROFILE=deep .venv/bin/python -m pytest tests/unit/test_fuzz_*.py

The properties they share: a user's input is accepted, or refused with problems located as
`FILE:LINE` or `FILE: key` (never any other exception), and nothing accepted from a list or
the config reaches a Dockerfile line except the few values whose strict grammar makes them
safe there (image references, image and port names, the locale).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pyrlab.config.project import Project
from pyrlab.dockerfile.render import BuildContext, render_context
from pyrlab.errors import Problem

# The examples share the autouse environment fixture (it only clears PYRLAB_* variables)
# and a project folder that each example rewrites.
_SHARED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
           HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          database=None, suppress_health_check=_SHARED, print_blob=True)
settings.register_profile("deep", max_examples=20_000, deadline=None,
                          suppress_health_check=_SHARED, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Text that no template, script or default ever contains: where it shows up in a rendered
# context, it came from the fuzzed input.
MARK = "fzmark"

# Values of this shape may stand in a Dockerfile line (FROM, ENV, LABEL): no blank, quote,
# `$`, backslash or line break.
DOCKERFILE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")

# Text with everything a hostile or broken file may hold: shell syntax, quotes, line
# breaks of every kind, NUL, BOM, invisible and right-to-left characters, surrogate-free
# unicode of all planes.
ODD_CHARS = ("\x00", "\r", "\n", "\t", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\xa0",
             "\u200b", "\u200e", "\u2028", "\u2029", "\u202e", "\ufeff", "\ufffd", "\U0001f600",
             "é", "ß", "İ", "ǅ", "\u0301")
SHELL_BITS = (";", "$(reboot)", "`id`", "${HOME}", "|", "&&", "&", ">", "<", "<(", ">(", "'",
              '"', "\\", "*", "?", "~", "#", " #", "!", "{", "}", "[", "]", " ", "\t", "\r\n",
              " rm -rf /", "$IFS")
odd_text = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(ODD_CHARS)),
    max_size=40)


def fragments(*choices: str) -> st.SearchStrategy[str]:
    return st.sampled_from(choices)


def joined(parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    return parts.map("".join)


def problems_are_located(problems: list[Problem] | tuple[Problem, ...], files: set[str],
                         *, keyed: bool) -> None:
    """Every problem names one of `files`, with a line (`FILE:LINE`) or, when `keyed`, a
    key (`FILE: key`), or is about the file as a whole; each prints as one line. (A file
    outside the project is named by its path, which may be written with `..`.)"""
    for problem in problems:
        text = str(problem)
        assert "\n" not in text and "\r" not in text, f"a problem spans lines: {text!r}"
        assert problem.message, f"a problem without a message: {problem!r}"
        where = problem.where
        if where in files:
            continue
        file, sep, rest = where.partition(":")
        assert os.path.normpath(file) in files, f"problem not located in {sorted(files)}: {text!r}"
        if re.fullmatch(r"[0-9]+", rest):
            assert int(rest) >= 1, text
            continue
        assert keyed and sep and rest.startswith(" ") and rest.strip(), (
            f"not FILE:LINE or FILE: key: {text!r}")


def render_all(project: Project) -> dict[str, BuildContext]:
    return {name: render_context(project, name) for name in project.order()}


def normalised_dockerfile(context: BuildContext) -> str:
    """The Dockerfile without what is meant to change with every input (its hash)."""
    return context.dockerfile.replace(context.input_hash, "<input-hash>")


def reset_folder(folder: Path, template: Path | None = None) -> Path:
    """`folder` emptied (or made a copy of `template`), for the next example."""
    if folder.exists():
        shutil.rmtree(folder)
    if template is None:
        folder.mkdir(parents=True)
    else:
        shutil.copytree(template, folder, symlinks=True)
    return folder
