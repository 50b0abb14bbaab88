"""`pyrlab export KIND [options] [-o FILE]`: a file for another tool, made from the config.

One module per kind in pyrlab.exports (KINDS below); each has its own options
(`pyrlab export compose --help`). The text goes to -o FILE or to standard output; notes
(files pyrlab wrote beside it, where to put it) go to stderr.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pyrlab.commands._args import config_from
from pyrlab.exports import Exported, ci, compose, jupyterhub
from pyrlab.output import info
from pyrlab.safewrite import write_file

# KIND → module with HELP, add_arguments(parser) and export(config, args) → Exported.
KINDS: dict[str, ModuleType] = {
    "compose": compose,
    "ci": ci,
    "jupyterhub": jupyterhub,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The CLI's parsers give each KIND the global options too (`export compose -C DIR`).
    kinds = parser.add_subparsers(dest="export_kind", parser_class=type(parser))
    kinds.required = True
    for kind, module in KINDS.items():
        sub = kinds.add_parser(kind, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.add_argument("-o", "--output", metavar="FILE", default=None,
                         help="write to FILE (default: standard output); a FILE pyrlab did "
                         "not write is kept unless --force")
        sub.add_argument("--force", action="store_true",
                         help="replace FILE even when pyrlab did not write it")


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
    exported = KINDS[args.export_kind].export(config, args)
    assert isinstance(exported, Exported)
    output = Path(args.output) if args.output else None
    if output is not None:
        # The file pyrlab wrote before is replaced; one it did not write only with --force.
        write_file(output, exported.text, force=args.force, parents=True,
                   hint="add --force to replace it, or choose another -o FILE")
    for note in exported.notes:
        info(f"note: {note}")
    return ExportResult(args.export_kind, exported, output)
