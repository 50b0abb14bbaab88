"""`pyrlab sbom IMAGE [-o FILE]`: a CycloneDX SBOM of what an image holds, for scanners."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import ConfigError, Problem
from pyrlab.inventory.images import image_inventory, image_spec
from pyrlab.run.session import config_from, engine_from

SPEC_VERSION = "1.6"  # the CycloneDX version inventory/sbom.py writes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE",
                        help="an image of the project, e.g. pylab (pylab:previous: another tag)")
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="write the SBOM to FILE (default: standard output)")
    add_engine_argument(parser)


@dataclass(frozen=True)
class SbomResult:
    ref: str
    document: str  # the CycloneDX JSON
    output: Path | None  # where it was written; None: it is the output
    components: int

    def to_data(self) -> Any:
        if self.output is None:
            return json.loads(self.document)
        return {"image": self.ref, "path": str(self.output), "components": self.components,
                "spec_version": SPEC_VERSION}

    def to_text(self) -> str:
        if self.output is None:
            return self.document
        return (f"wrote {self.output}: CycloneDX {SPEC_VERSION} SBOM of "
                f"{self.ref} ({self.components} components)")


def run(args: argparse.Namespace) -> SbomResult:
    config = config_from(args)
    spec = image_spec(config, args.image)
    inventory = image_inventory(engine_from(args, config), spec)
    # cyclonedx is imported only here: every other command would pay for it at start-up.
    from pyrlab.inventory.sbom import sbom

    document = sbom(inventory)
    components = len(json.loads(document).get("components", []))
    output = Path(args.output) if args.output else None
    if output is not None:
        try:
            output.write_text(document + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(Problem(str(output), f"cannot write: {exc.strerror}")) from None
    return SbomResult(spec.ref, document, output, components)
