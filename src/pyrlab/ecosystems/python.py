"""The Python ecosystem: Python packages (distributions), installed with uv into /opt/venv."""

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
    name="python",
    title="Python packages",
    order=30,
    step="python",
    list_key="requirements",
    lock_key="python",
    manifest_key="python_dists",
    grammar=GRAMMAR,
    context=CONTEXT,
    contents=CONTENTS,
    queries=QUERIES,
    pins=PINS,
    checks=CHECKS,
)
