"""The R ecosystem: R packages, from Debian's r-cran-* packages or a CRAN-like repository."""

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
    name="r",
    title="R packages",
    order=40,
    step="r",
    list_key="r_packages",
    lock_key="r",
    manifest_key="r",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
