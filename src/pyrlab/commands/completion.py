"""`pyrlab completion SHELL`: print the shell code that turns on tab completion.

The completing itself is pyrlab.completion's (argcomplete); this verb only prints the code
a shell's start-up file runs (docs/command-line.md, "Shell completion").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab.completion import SHELLS, TURN_ON, script


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL",
                        help="; ".join(f"{shell}: {line}" for shell, line in TURN_ON.items()))


@dataclass(frozen=True)
class CompletionScript:
    shell: str
    text: str

    def to_data(self) -> Any:
        return {"shell": self.shell, "script": self.text}

    def to_text(self) -> str:
        return self.text


def run(args: argparse.Namespace) -> CompletionScript:
    return CompletionScript(args.shell, script(args.shell))
