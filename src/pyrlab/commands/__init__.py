"""One module per verb, imported only when that verb runs (or its --help is shown).

Each module has add_arguments(parser) and run(args) → Result. COMMANDS holds the verbs in
the order `pyrlab --help` lists them, with their one-line help, so that listing them and
parsing one verb's command line import no other verb's module (nor what it needs: jinja2,
the engines, urllib…).
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS: dict[str, str] = {
    "init": "write a new lab project (pyrlab.toml, package lists, Makefile)",
    "check": "validate pyrlab.toml, the package lists and the image graph (no engine needed)",
    "config": "print every effective setting and where it came from (default, pyrlab.toml, "
              "the user file, the environment, --set)",
    "render": "write the build context (Dockerfile + files) of each image to a folder",
    "bootstrap": "make a Debian base image from a Debian mirror with debootstrap "
                 "(no registry needed)",
    "build": "build the images (and their ancestors) whose inputs changed, in dependency order",
    "test": "import every listed Python module, load every listed R package and run code in "
            "every kernel of the built images (no network, no home mounted)",
    "clean": "remove this project's images (with --cache also pyrlab's build cache)",
    "up": "start an image's JupyterLab (building it first when needed) and print its URL",
    "down": "stop and remove an image's lab (or --all of this project's labs)",
    "restart": "stop an image's lab and start it again (current config and image, same token)",
    "ps": "list this project's labs: image, ports, URL, uptime, health",
    "logs": "show an image's lab log (-f: follow it)",
    "shell": "open a shell in an image's running lab as the notebook user (or run a command)",
    "url": "print the URLs of an image's running lab: JupyterLab (with its token) and each "
           "named port",
    "inspect": "show what an image holds (Debian, Python and R packages) without starting it",
    "lock": "rewrite pyrlab.lock from what the project's images hold now",
    "diff": "show what changed between pyrlab.lock and the images, two images or two lock "
            "files",
    "why": "show which list lines pull a package (Python or R) into a built image and what "
           "bounds its version",
    "sbom": "write a CycloneDX (JSON) SBOM of what an image holds",
    "outdated": "show which packages of the built images have newer versions "
                "(builds nothing)",
    "upgrade": "rebuild the images (and their ancestors) from a fresh base with the newest "
               "packages, update pyrlab.lock and show what changed",
    "rollback": "move an image's latest tag back to the image the last build replaced "
                "(NAME:previous)",
    # The kinds are pyrlab.commands.export.KINDS (a unit test keeps the two in step).
    "export": "write a file for another tool (compose, ci, jupyterhub)",
    "push": "push the built images (latest and the base tag) to a registry and record their "
            "digests",
    "completion": "print the shell code that completes pyrlab's verbs, options, image names "
                  "and --set keys (bash, zsh, fish)",
}


def load(verb: str) -> ModuleType:
    """The module of one verb of COMMANDS."""
    if verb not in COMMANDS:
        raise KeyError(verb)
    return importlib.import_module(f"pyrlab.commands.{verb}")
