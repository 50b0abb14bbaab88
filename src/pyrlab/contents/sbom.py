"""A CycloneDX SBOM of an image, from its inventory, for scanners and auditors.

Built with cyclonedx-python-lib, which knows the schema; every package is a component
with a package URL (purl) that vulnerability databases key on. The same inventory gives
the same document apart from its timestamp: the serial number is derived from the content.
The image's platform is a property of the image's component, `pyrlab:platform`
("linux/arm64"); each Debian package's purl names its architecture (`arch=`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from packageurl import PackageURL

from pyrlab import ecosystems
from pyrlab.contents.model import Inventory
from pyrlab.platforms import NATIVE, Platform

SCHEMA_VERSION = SchemaVersion.V1_6
# uuid5 namespace for serial numbers: one inventory, one serial number.
_SERIAL_NAMESPACE = uuid.UUID("6f2f4a53-93c1-4d3e-9d0c-7a1e4b0f5c21")
PLATFORM_PROPERTY = "pyrlab:platform"  # a property name in pyrlab's own namespace


def _purls(inventory: Inventory) -> list[PackageURL]:
    """Each package's URL, ecosystem by ecosystem in install order (one that has none for
    its packages leaves them out)."""
    purls = []
    for eco in ecosystems.registered():
        for package in inventory.packages(eco.name):
            purl = eco.contents.purl(package, inventory.meta)
            if purl is not None:
                purls.append(PackageURL(type=purl.type, namespace=purl.namespace,
                                        name=purl.name, version=purl.version,
                                        qualifiers=dict(purl.qualifiers) or None))
    return purls


def sbom(inventory: Inventory, *, timestamp: datetime | None = None,
         platform: Platform = NATIVE) -> str:
    """The CycloneDX 1.6 JSON document for `inventory` (timestamp: now unless given).
    `platform`: the image's, where the inventory does not say it (NATIVE: unsaid)."""
    meta = inventory.meta
    platform = inventory.platform or platform
    purls = _purls(inventory)
    packages = [
        Component(name=purl.name, version=purl.version, purl=purl, bom_ref=purl.to_string())
        for purl in purls
    ]
    operating_system = Component(
        name=meta.os_id, version=meta.os_version, description=meta.os or None,
        type=ComponentType.OPERATING_SYSTEM, bom_ref=f"os:{meta.os_id}-{meta.os_version}")
    image = Component(
        name=meta.image, version=meta.input_hash or None, type=ComponentType.CONTAINER,
        bom_ref=f"image:{meta.image}",
        properties=[Property(name=PLATFORM_PROPERTY, value=platform)] if platform else None)
    pyrlab = Component(name="pyrlab", version=meta.pyrlab_version or None,
                       type=ComponentType.APPLICATION)
    bom = Bom(
        components=[operating_system, *packages],
        metadata=BomMetaData(component=image, timestamp=timestamp,
                             tools=ToolRepository(components=[pyrlab])),
        serial_number=uuid.uuid5(_SERIAL_NAMESPACE, repr(inventory)),
    )
    # The image holds every package itself: a flat dependency graph.
    bom.register_dependency(image, [operating_system, *packages])
    return JsonV1Dot6(bom).output_as_string(indent=2)
