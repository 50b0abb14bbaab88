"""Shared pieces of the property-based (Hypothesis) tests, test_fuzz_*.py.

Profiles: "ci" (the default) is small and derandomised, so every run tries the same inputs
and the whole fuzz suite stays around 20 seconds; `HYPOTHESIS_PROFILE=deep` is the long
local hunt (20,000 examples a property unless HYPOTHESIS_MAX_EXAMPLES says otherwise,
random, failures kept in .hypothesis/), e.g.

    HYPOTHESIS_PROFILE=deep .venv/bin/python -m pytest tests/unit/test_fuzz_*.py

The properties they share: a user's input is accepted, or refused with problems located as
`FILE:LINE` or `FILE: key` (never any other exception), and nothing accepted from a list or
the config reaches a Dockerfile line except the few values whose strict grammar makes them
safe there (image references, image and port names, the locale).
"""

from __future__ import annotations

import datetime
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
settings.register_profile("deep", deadline=None,
                          max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "20000")),
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
    key (`FILE: key`, `FILE:LINE: key`), or is about the file as a whole; each prints as
    one line. (A file outside the project is named by its path, which may be written
    with `..`.)"""
    for problem in problems:
        text = str(problem)
        assert len(text.splitlines()) == 1, f"a problem spans lines: {text!r}"
        assert problem.message, f"a problem without a message: {problem!r}"
        where = problem.where
        if where in files or os.path.normpath(where) in files:
            continue
        rests = [form[len(f) + 1:] for form in (where, os.path.normpath(where))
                 for f in files if form.startswith(f + ":")]
        assert rests, f"problem not located in {sorted(files)[:12]}: {text!r}"
        assert any(re.fullmatch(r"[1-9][0-9]*", rest)
                   or (keyed and re.match(r"(?:[1-9][0-9]*:)? (?=.*\S)", rest, re.DOTALL))
                   for rest in rests), (
            f"not FILE:LINE or FILE: key: {text!r}")


def path_forms(root: Path, texts: list[str]) -> set[str]:
    """Every name a problem may give a file named by one of `texts` in the config: as
    written, `~` expanded, relative to the project, lexically normalised."""
    names = set()
    for text in texts:
        if "\0" in text:
            continue
        for form in (text, os.path.expanduser(text), str(root / text),
                     str(root / os.path.expanduser(text))):
            names |= {form, os.path.normpath(form)}
    return names


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


# ----------------------------------------------------------------------------- TOML

TomlValue = Any


def toml_string(text: str) -> str:
    """`text` as a TOML basic string: every control character escaped (TOML allows none)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict), value
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, TomlValue], *, headers: bool = True) -> str:
    """A TOML document for `doc`: top-level tables (and tables inside them) as [headers],
    or, with headers=False, everything as inline values."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, TomlValue]]] = []
    for key, value in doc.items():
        if headers and isinstance(value, dict):
            tables.append((toml_string(key), value))
        else:
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    while tables:
        name, table = tables.pop(0)
        lines.append(f"\n[{name}]")
        for key, value in table.items():
            if isinstance(value, dict) and value and len(name) < 200:
                tables.append((f"{name}.{toml_string(key)}", value))
            else:
                lines.append(f"{toml_string(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- config


def spoiled(good: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Good values, and good values with an odd piece put before, after or inside."""
    piece = st.one_of(st.sampled_from(ODD_CHARS + SHELL_BITS), odd_text)

    @st.composite
    def spoil(draw: st.DrawFn) -> str:
        value = draw(good)
        at = draw(st.integers(0, len(value)))
        return value[:at] + draw(piece) + value[at:]

    return st.one_of(good, good, spoil(), odd_text)


def text_of(*good: str) -> st.SearchStrategy[str]:
    return spoiled(st.sampled_from(good))


leaves: st.SearchStrategy[TomlValue] = st.one_of(
    st.booleans(), st.integers(), st.integers(-70000, 70000), st.floats(), odd_text,
    st.datetimes(), st.dates(), st.times(), st.just(MARK))
any_value: st.SearchStrategy[TomlValue] = st.recursive(
    leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                    st.dictionaries(odd_text, inner, max_size=3)),
    max_leaves=6)

LIST_NAMES = ("base_debs.txt", "requirements.txt", "r_debs.txt", "r_packages.txt",
              "r_requirements.txt", f"{MARK}.txt", "missing.txt", "sub/../requirements.txt")
IMAGE_NAMES = ("pyrlab-base", "pylab", "rlab-base", "rlab", f"{MARK}-flavour", "pylab.torch")
file_names = text_of(*LIST_NAMES)
file_lists = st.one_of(st.lists(file_names, max_size=3), file_names, any_value)
urls = text_of("http://127.0.0.1:3142", "https://pypi.org/simple/",
               f"https://{MARK}.example/simple/", f"http://user:pw@{MARK}.example:3141/+simple/",
               "file:///srv/cran", "https://packagemanager.posit.co/cran/latest")
image_refs = text_of("python:3.14-trixie", "pyrlab-debian:trixie", "debian:trixie",
                     f"registry.example:5000/{MARK}/img:1.0", f"{MARK}@sha256:{'a' * 64}")


def value_of(good: st.SearchStrategy[TomlValue]) -> st.SearchStrategy[TomlValue]:
    """Mostly a plausible value for the key, sometimes anything at all (a wrong type)."""
    return st.one_of(good, good, good, any_value)


def table_of(keys: dict[str, st.SearchStrategy[TomlValue]]) -> st.SearchStrategy[TomlValue]:
    """Some of `keys`, sometimes an unknown one, sometimes not a table at all."""
    optional = st.fixed_dictionaries({}, optional={k: value_of(v) for k, v in keys.items()})
    extra = st.dictionaries(text_of(*keys, MARK), any_value, max_size=1)
    table = st.tuples(optional, extra).map(lambda parts: {**parts[1], **parts[0]})
    return st.one_of(table, table, table, any_value)


bools = st.booleans()
ports = st.dictionaries(text_of("lab", "dtale", "tensorboard", MARK), value_of(
    st.one_of(st.integers(1, 65535), st.integers(), st.sampled_from([8888, 0, 65536, 2**64]))),
    max_size=3)
IMAGE_TABLE = {
    "from": text_of(*IMAGE_NAMES), "debs": file_lists, "requirements": file_lists,
    "r_packages": file_lists, "r": text_of("debian", "cran"), "r_source": text_of("cran", "apt"),
    "ports": ports, "run_args": st.lists(text_of("--shm-size=1g", f"--label={MARK}"), max_size=2),
}
CONFIG_TABLES: dict[str, st.SearchStrategy[TomlValue]] = {
    "engine": text_of("auto", "docker", "podman"),
    "prefix": text_of("", "registry.example:5000/team/", f"{MARK}/"),
    "base": table_of({
        "image": image_refs, "bootstrap": text_of("trixie", "bookworm", MARK),
        "mirror": urls, "python": text_of("image", "debian"), "debs": file_lists,
        "cuda": bools, "cuda_toolkit": bools,
        "ca_certificates": st.lists(text_of("certs/ca.pem", f"certs/{MARK}.pem"), max_size=2),
        "locale": text_of("C.UTF-8", "de_DE.UTF-8", "en_US.utf8"), "slim": bools,
    }),
    "proxy": table_of({
        "apt": urls, "apt_https": bools, "pip_index": urls,
        "pip_extra_index": st.lists(urls, max_size=2), "cran": urls, "http_proxy": urls,
        "https_proxy": urls, "no_proxy": text_of("localhost,127.0.0.1", f".{MARK}.example"),
        "network_host": bools, "timeout": st.integers(-5, 5000), "retries": st.integers(-1, 30),
    }),
    "images": st.one_of(st.dictionaries(text_of(*IMAGE_NAMES), table_of(IMAGE_TABLE),
                                        max_size=4), any_value),
    "run": table_of({
        "notebooks": text_of("~/notebooks", f"{MARK}/nb", "/tmp/x"),
        "home": text_of("~/docker", f"{MARK}-home"),
        "rc": st.dictionaries(text_of(*IMAGE_NAMES), text_of("pylab.sh", f"{MARK}.sh"),
                              max_size=2),
        "userlab": text_of("userlab.sh", f"{MARK}.sh", ""), "envfile": text_of(".env", MARK),
        "bind": text_of("127.0.0.1", "0.0.0.0", "::1", "localhost"),
        "uid": st.integers(-2, 2**40), "gid": st.integers(-2, 2**40),
        "docker_args": st.lists(text_of("--cpus=2", MARK), max_size=2),
        "sudo": bools, "allow_no_token": bools,
    }),
}
config_documents: st.SearchStrategy[dict[str, TomlValue]] = table_of(CONFIG_TABLES).filter(
    lambda doc: isinstance(doc, dict))


def strings_in(value: TomlValue, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) for every string in `value`, table keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item, path + "[]")
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else key
            yield inner + "<key>", key
            yield from strings_in(item, inner)


# Config values that are meant to stand in Dockerfile lines (FROM, LABEL, ENV, EXPOSE):
# each has a strict grammar in config/validators.py.
DOCKERFILE_KEYS = re.compile(r"(?:base\.(?:image|bootstrap|locale)|prefix|images\.[^.]+<key>"
                             r"|images\.[^.]+\.from|images\.[^.]+\.ports\.[^.]+<key>)")


def assert_config_text_stays_out(contexts: dict[str, BuildContext],
                                 values: list[tuple[str, str]]) -> None:
    """No Dockerfile line holds a control character, and a fuzzed string (one with MARK)
    stands in one only when its key is one of DOCKERFILE_KEYS and it is a plain token; in
    the context's other files, such text is never more or less than whole printable lines."""
    for image, context in contexts.items():
        for path, (content, _mode) in context.files.items():
            for line in content.decode("utf-8", "replace").split("\n"):
                if MARK in line:
                    assert line.isprintable(), f"{image}'s {path}: {line!r}"
        dockerfile = context.dockerfile
        for line in dockerfile.split("\n"):
            assert line.isprintable(), f"{image}'s Dockerfile: {line!r}"
        for key, text in values:
            if MARK in text and text in dockerfile:
                assert DOCKERFILE_KEYS.fullmatch(key), f"{key} = {text!r} in {image}'s Dockerfile"
                assert DOCKERFILE_TOKEN.fullmatch(text), (
                    f"{key} = {text!r} in {image}'s Dockerfile")
