"""`pyrlab sbom IMAGE [-o FILE] [--platform P]`: a CycloneDX SBOM of what an image holds,
for scanners; it names the image's platform (contents/sbom.py)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrlab.commands._args import add_platform, config_from, engine_from
from pyrlab.contents.images import image_inventory, image_spec
from pyrlab.engines.select import add_engine_argument
from pyrlab.platforms import NATIVE
from pyrlab.safewrite import write_file

SPEC_VERSION = "1.6"  # the CycloneDX version contents/sbom.py writes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE",
                        help="an image of the project, e.g. pylab (pylab:previous: another tag)")
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="write the SBOM to FILE (default: standard output); a FILE "
                        "that is not pyrlab's SBOM is kept unless --force")
    parser.add_argument("--force", action="store_true",
                        help="replace FILE even when pyrlab did not write it")
    add_platform(parser, many=False,
                 help="the SBOM of PLATFORM's image (linux/amd64, linux/arm64; another "
                 "platform's is IMAGE/arm64:TAG); default: the engine's own")
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


def is_pyrlab_sbom(content: bytes) -> bool:
    """Whether a file is an SBOM pyrlab wrote: CycloneDX JSON whose tools name pyrlab (JSON
    has no comment to carry the header other files have)."""
    try:
        data = json.loads(content)
        tools = data["metadata"]["tools"]["components"]
        return data["bomFormat"] == "CycloneDX" and any(t["name"] == "pyrlab" for t in tools)
    except (ValueError, KeyError, TypeError):
        return False


def run(args: argparse.Namespace) -> SbomResult:
    config = config_from(args)
    image_spec(config, args.image)  # an unknown image is named before the engine is asked
    engine = engine_from(args, config)
    platform = args.platform or NATIVE
    # The engine is asked its platform only when one is named (as `inspect`).
    spec = image_spec(config, args.image, platform,
                      engine.platform() if platform else NATIVE)
    inventory = image_inventory(engine, spec)
    # cyclonedx is imported only here: every other command would pay for it at start-up.
    from pyrlab.contents.sbom import sbom

    # The image's platform: its inventory's (what the engine says the image is for), else
    # the engine's own.
    document = sbom(inventory, platform=inventory.platform or engine.platform())
    components = len(json.loads(document).get("components", []))
    output = Path(args.output) if args.output else None
    if output is not None:
        write_file(output, document + "\n", force=args.force, ours=is_pyrlab_sbom,
                   hint="add --force to replace it, or choose another -o FILE")
    return SbomResult(spec.ref, document, output, components)
