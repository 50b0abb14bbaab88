"""`pyrlab export KIND [-o FILE]`: a file for another tool, made from the config. A thin
dispatcher: each KIND is a module in pyrlab.exports with HELP, add_arguments(parser) and
export(config, args) → Exported."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pyrlab.errors import ConfigError, Problem
from pyrlab.exports import Exported, jupyterhub
from pyrlab.output import info
from pyrlab.run.session import config_from

KINDS: dict[str, ModuleType] = {"jupyterhub": jupyterhub}

NAME = "export"
HELP = f"write a file for another tool ({', '.join(KINDS)})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export_kind", metavar="KIND", choices=list(KINDS),
                        help="; ".join(f"{kind}: {module.HELP}" for kind, module in KINDS.items()))
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="write to FILE (default: standard output)")
    for module in KINDS.values():
        module.add_arguments(parser)


@dataclass(frozen=True)
class ExportResult:
    kind: str
    exported: Exported
    output: Path | None  # where it was written; None: the text is the output

    def to_data(self) -> Any:
        data: dict[str, Any] = {"kind": self.kind, "summary": self.exported.summary,
                                "path": str(self.output) if self.output else None,
                                "notes": list(self.exported.notes), **self.exported.data}
        if self.output is None:
            data["text"] = self.exported.text
        return data

    def to_text(self) -> str:
        if self.output is None:
            return self.exported.text
        return f"wrote {self.output}: {self.exported.summary}"


def run(args: argparse.Namespace) -> ExportResult:
    config = config_from(args)
    exported: Exported = KINDS[args.export_kind].export(config, args)
    output = Path(args.output) if args.output else None
    if output is not None:
        try:
            output.write_text(exported.text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(Problem(str(output), f"cannot write: {exc.strerror}"),
                              hint="choose another -o FILE") from None
    for note in exported.notes:
        info(f"note: {note}")
    return ExportResult(args.export_kind, exported, output)
