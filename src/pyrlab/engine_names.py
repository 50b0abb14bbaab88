"""The container engines pyrlab knows: each name with the module that finds it, in
auto-detection order. The one registration table: `pyrlab.engines.registry` looks engines
up by it, and the config, far below the engines, checks an `engine =` value against it.
"""

from __future__ import annotations

# name → the module whose find() looks for it; auto-detection goes down this list.
ENGINES: dict[str, str] = {
    "docker": "pyrlab.engines.docker",
    "podman": "pyrlab.engines.podman",
}

AUTO = "auto"  # not an engine: "look for one"


def engine_choices() -> tuple[str, ...]:
    """What `--engine`, PYRLAB_ENGINE and the config's `engine` accept."""
    return (AUTO, *ENGINES)
