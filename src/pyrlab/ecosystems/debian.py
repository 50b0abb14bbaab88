"""The Debian ecosystem: Debian packages, installed with apt-get."""

from __future__ import annotations

from pyrlab.ecosystems.base import Checks, Contents, Context, Ecosystem, Grammar, Pins, Queries

# -- grammar --------------------------------------------------------------------------------
GRAMMAR = Grammar()

# -- build context ----------------------------------------------------------------------------
CONTEXT = Context()

# -- contents ---------------------------------------------------------------------------------
CONTENTS = Contents()

# -- outdated -----------------------------------------------------------------------------
QUERIES = Queries()

# -- pins -------------------------------------------------------------------------------------
PINS = Pins()

# -- checks -----------------------------------------------------------------------------------
CHECKS = Checks()

# -- the whole --------------------------------------------------------------------------------
ECOSYSTEM = Ecosystem(
    name="debian",
    title="Debian packages",
    order=10,
    step="apt",
    list_key="debs",
    lock_key="debs",
    manifest_key="debs",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
