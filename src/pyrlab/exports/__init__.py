"""What `pyrlab export KIND` writes: one module per kind, each a pure renderer of text from
the configuration, plus a small `run(args)` entry that `commands/export.py` dispatches to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Export:
    """One exported file's text, and what it is (for the message that names it)."""

    text: str
    what: str  # "jupyterhub_config.py for JupyterHub + DockerSpawner (pylab, rlab)"
    images: tuple[str, ...] = ()  # the images it offers, as the references it names
