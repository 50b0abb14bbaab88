"""Errors a user can cause, each with an exit code that means something.

Everything raised as a PyrlabError ends in one clear message on stderr and its exit
code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_DIFFERENT = 1  # `diff` found a difference (as diff(1) and `git diff --exit-code`)
EXIT_USAGE = 2  # bad command line
EXIT_CONFIG = 3  # bad config, list entry or missing file
EXIT_ENGINE = 4  # container engine missing, not running or unusable
EXIT_BUILD = 5  # an image build failed
EXIT_RUN = 6  # a lab could not be started, reached or stopped
EXIT_TEST = 7  # an image failed its self-test
EXIT_NOT_BUILT = 8  # an image the command reads is not built
EXIT_REGISTRY = 9  # a registry refused a push (unknown host, credentials, plain HTTP)
EXIT_INTERRUPTED = 130  # SIGINT (128 + 2); SIGTERM ends with 143 (see proc.Interrupted)
EXIT_TERMINATED = 143  # SIGTERM (128 + 15)
EXIT_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE 13), as `git log | head` ends

# The one table of what each exit code means: `pyrlab --help` and docs/command-line.md show
# it (a unit test keeps the page in step).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_DIFFERENT: "`diff` found a difference",
    EXIT_USAGE: "bad command line",
    EXIT_CONFIG: "bad pyrlab.toml, package list or file; no project found",
    EXIT_ENGINE: "container engine missing, not running or unusable",
    EXIT_BUILD: "an image build failed",
    EXIT_RUN: "a lab could not be started, reached or stopped",
    EXIT_TEST: "an image failed its self-test",
    EXIT_NOT_BUILT: "an image the command reads is not built",
    EXIT_REGISTRY: "a registry refused a push",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGINT)",
    EXIT_PIPE: "the reader of the output went away (`head -1` had its line): no message",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}

@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as we can."""

    where: str  # "FILE:LINE", "FILE: key.path" or "FILE"
    message: str

    def __str__(self) -> str:
        return f"{_one_line(self.where)}: {_one_line(self.message)}"


def _one_line(text: str) -> str:
    """`text` with what would break or hide part of a one-line message (line breaks, control
    and invisible characters, from a key or file name the user wrote) shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class PyrlabError(Exception):
    exit_code = EXIT_CONFIG

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(PyrlabError):
    exit_code = EXIT_USAGE


class ConfigError(PyrlabError):
    """One or more problems with the configuration or package lists."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[Problem] | Problem | str, *, hint: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("config", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems), hint=hint)


class EngineError(PyrlabError):
    exit_code = EXIT_ENGINE


class BuildError(PyrlabError):
    exit_code = EXIT_BUILD


class RunError(PyrlabError):
    exit_code = EXIT_RUN


class SelfTestError(PyrlabError):
    exit_code = EXIT_TEST


class NotBuiltError(PyrlabError):
    exit_code = EXIT_NOT_BUILT


class RegistryError(PyrlabError):
    exit_code = EXIT_REGISTRY
