"""Sample inventories for the unit tests of the lock file, SBOMs, tables and diffs."""

from __future__ import annotations

from typing import Any

from pyrlab.contents.model import Inventory, Meta
from pyrlab.ecosystems.debian import Deb
from pyrlab.ecosystems.python import PyDist
from pyrlab.ecosystems.r import RPkg


def meta(image: str = "pylab", **changes: str) -> Meta:
    fields = {"image": image, "input_hash": "a" * 64, "pyrlab_version": "0.1.0",
              "base_id": "sha256:" + "b" * 64, "os": "Debian GNU/Linux 13 (trixie)",
              "os_id": "debian", "os_version": "13", "python": "3.13.5", "r": "4.5.0"}
    fields.update(changes)
    return Meta(**fields)


def inventory(image: str = "pylab", **changes: Any) -> Inventory:
    """A small realistic image; keyword arguments replace its parts."""
    parts: dict[str, Any] = {
        "meta": meta(image),
        "debs": (Deb("libc6", "2.41-12", "amd64"), Deb("libstdc++6", "14.2.0-19", "amd64"),
                 Deb("libc6:i386", "2.41-12", "i386"), Deb("tzdata", "2025b-4", "all")),
        "python": (PyDist("numpy", "2.3.5"), PyDist("Jinja2", "3.1.6"),
                   PyDist("mypkg", "1.0", "https://example.org/mypkg-1.0.tar.gz")),
        "r": (RPkg("ggplot2", "3.5.2", "cran"), RPkg("Rcpp", "1.0.14", "debian"),
              RPkg("data.table", "1.17.0", "archive")),
    }
    parts.update(changes)
    return Inventory(**parts)
