"""`pyrlab export KIND [-o FILE]`: a configuration that runs the project's images
elsewhere. A thin dispatcher: each KIND is a module in pyrlab/exports/ with
add_arguments(parser) and run(args, config) → Export."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pyrlab.errors import ConfigError, Problem
from pyrlab.exports import Export
from pyrlab.exports import jupyterhub as jupyterhub_export
from pyrlab.run.session import config_from

NAME = "export"
HELP = "write a configuration that runs the images elsewhere (jupyterhub)"
EXPORTS: dict[str, ModuleType] = {"jupyterhub": jupyterhub_export}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", metavar="KIND", choices=sorted(EXPORTS),
                        help=f"what to write: {', '.join(sorted(EXPORTS))}")
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="write it to FILE (default: standard output)")
    for module in EXPORTS.values():
        module.add_arguments(parser)


@dataclass(frozen=True)
class ExportResult:
    kind: str
    export: Export
    output: Path | None  # where it was written; None: it is the output

    def to_data(self) -> Any:
        data: dict[str, Any] = {"kind": self.kind, "what": self.export.what,
                                "images": list(self.export.images)}
        if self.output is None:
            data["text"] = self.export.text
        else:
            data["path"] = str(self.output)
        return data

    def to_text(self) -> str:
        if self.output is None:
            return self.export.text
        return f"wrote {self.output}: {self.export.what}"


def run(args: argparse.Namespace) -> ExportResult:
    config = config_from(args)
    export: Export = EXPORTS[args.what].run(args, config)
    output = Path(args.output) if args.output else None
    if output is not None:
        try:
            output.write_text(export.text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(Problem(str(output), f"cannot write: {exc.strerror}")) from None
    return ExportResult(args.what, export, output)
