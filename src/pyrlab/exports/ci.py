"""`pyrlab export ci --kind github`: a GitHub Actions workflow that builds the project's
images with the registry's build cache on every push and pull request, and pushes them
from the default branch.

It installs the pyrlab this project uses (this pyrlab's version, pinned), so the images CI
builds are the ones `pyrlab build` builds here. Nothing of the user's (project folder,
registry) is written into a `run:` line: it goes into the job's `env:` as quoted YAML
strings, and the scripts only say "$LAB_PROJECT". Those names do not start with PYRLAB_,
which pyrlab would read as configuration.

With `[build] platforms` naming another platform than the runner's (GitHub's ubuntu-latest
is linux/amd64), the job first installs qemu-user-static, whose binfmt_misc handlers let
the runner build and self-test arm64 images under emulation, and checks that the handler
is there; `pyrlab push` then sends one index per tag (see commands/push.py).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from pyrlab import __version__
from pyrlab.config.model import Config
from pyrlab.errors import UsageError
from pyrlab.exports import Exported
from pyrlab.exports.yamltext import Block, dump
from pyrlab.platforms import Platform, qemu_name

HELP = "a CI workflow (GitHub Actions) that builds the images with the registry cache and " \
    "pushes them from the default branch"
KINDS = ("github",)
DEFAULT_OUTPUT = ".github/workflows/pyrlab.yml"  # where GitHub looks, from the repository

# A registry and namespace: host[:port][/component…], as image references spell them.
_NAME = r"[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
REGISTRY_RE = re.compile(f"^{_NAME}$")
CACHE_REF_RE = re.compile(f"^{_NAME}(?::[A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})?$")  # [:tag]
ON_DEFAULT_BRANCH = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
# A pull request from a fork gets no secrets: it builds with the public cache, logs in never.
HAS_SECRETS = ("github.event_name != 'pull_request' || "
               "github.event.pull_request.head.repo.full_name == github.repository")
# Actions by major version, as their authors recommend.
CHECKOUT = "actions/checkout@v4"
LOGIN = "docker/login-action@v3"
RUNNER_PLATFORM = "linux/amd64"  # runs-on: ubuntu-latest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KINDS, default="github",
                        help="the CI service (default: github, GitHub Actions)")
    parser.add_argument("--registry", metavar="R", default=None,
                        help="where the images are pushed, e.g. ghcr.io/ORG (default: the "
                        "registry of the config's prefix)")
    parser.add_argument("--cache-from", metavar="REF", default=None,
                        help="the build cache to start from (default: the registry)")
    parser.add_argument("--pyrlab", metavar="SPEC", default=None,
                        help="what the workflow installs as pyrlab, as pipx takes it "
                        "(default: pyrlab==THIS VERSION; e.g. a git+https URL at a tag, "
                        "or a wheel in the repository)")


def _user_text(value: str, what: str) -> str:
    """Text from the user that goes into the workflow: GitHub evaluates `${{ … }}` in any
    string of it (an env value included), and there is no escape for it."""
    if "${{" in value:
        raise UsageError(f"{what} {value!r} holds `${{{{`, which GitHub Actions would evaluate "
                         "as an expression", hint="rename it, or write the workflow yourself")
    return value


def _registry(config: Config, given: str | None) -> str:
    if given is None:
        first = config.prefix.split("/", 1)[0]
        if not config.prefix or not ("." in first or ":" in first or first == "localhost"):
            raise UsageError("the workflow needs a registry to push to and cache from",
                             hint="give --registry, e.g. --registry ghcr.io/ORG, or a prefix "
                             "with a registry in pyrlab.toml (prefix = \"ghcr.io/ORG/\")")
        given = config.prefix.rstrip("/")
    if not REGISTRY_RE.match(given):
        raise UsageError(f"--registry: expected a registry and namespace such as "
                         f"ghcr.io/org or registry.example.com:5000/team, got {given!r}")
    return given


def repository_root(folder: Path) -> Path | None:
    """The git repository the project is in (the folder holding .git), if any."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _login(registry: str) -> dict[str, Any]:
    host = registry.split("/", 1)[0]
    if host == "ghcr.io":  # the repository's own token may push its packages
        username, password = "${{ github.actor }}", "${{ secrets.GITHUB_TOKEN }}"
    else:
        username, password = "${{ secrets.REGISTRY_USERNAME }}", "${{ secrets.REGISTRY_PASSWORD }}"
    return {"name": "Log in to the registry", "if": HAS_SECRETS, "uses": LOGIN,
            "with": {"registry": host, "username": username, "password": password}}


def _emulation(platforms: tuple[Platform, ...]) -> dict[str, Any] | None:
    """The step that lets the runner run the other platforms' programs, or None."""
    foreign = [p for p in platforms if p != RUNNER_PLATFORM]
    if not foreign:
        return None
    # Ubuntu's package registers its handlers (flag F: containers reach the interpreter);
    # the check fails the job here, not an hour later inside a build step.
    checks = "".join(f"cat /proc/sys/fs/binfmt_misc/qemu-{qemu_name(p)}\n" for p in foreign)
    return {"name": f"Install emulation ({', '.join(foreign)} on this {RUNNER_PLATFORM} "
                    "runner)",
            "run": Block("sudo apt-get update\n"
                         "sudo apt-get install -y --no-install-recommends qemu-user-static\n"
                         + checks)}


def workflow(*, project_name: str, project_dir: str, registry: str, cache_from: str,
             pyrlab: str, bootstrap: bool,
             platforms: tuple[Platform, ...] = ()) -> dict[str, Any]:
    """The workflow as data (pure: tests read it without writing a file). `platforms`:
    [build] platforms (the build and the push take them from the config)."""
    steps: list[dict[str, Any]] = [
        {"uses": CHECKOUT},
        {"name": "Install pyrlab", "run": Block('pipx install "$LAB_PYRLAB"\n')},
    ]
    emulation = _emulation(platforms)
    if emulation is not None:  # before the bootstrap, which runs a foreign Debian's scripts
        steps.append(emulation)
    if bootstrap:
        # The Debian base comes from the mirror (no registry); mmdebstrap makes it without
        # root in a user namespace, which Ubuntu 24.04's AppArmor forbids unless told.
        steps.append({"name": "Install mmdebstrap (the Debian base is bootstrapped)",
                      "run": Block(
                          "sudo apt-get update\n"
                          "sudo apt-get install -y --no-install-recommends mmdebstrap uidmap"
                          # another platform's Debian: mmdebstrap checks it runs with arch-test
                          + (" arch-test" if emulation is not None else "") + "\n"
                          "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
                          "|| true\n")})
    steps += [
        _login(registry),
        {"name": "Build the images",
         "run": Block('pyrlab -C "$LAB_PROJECT" build --cache-from "$LAB_CACHE_FROM"\n')},
        {"name": "Push the images", "if": ON_DEFAULT_BRANCH,
         "run": Block('pyrlab -C "$LAB_PROJECT" push --registry "$LAB_REGISTRY"\n')},
    ]
    return {
        "name": f"pyrlab images: {project_name}",
        "on": {"push": {}, "pull_request": {}, "workflow_dispatch": {}},
        "permissions": {"contents": "read", "packages": "write"},
        "jobs": {"images": {
            "runs-on": "ubuntu-latest",
            "timeout-minutes": 120,
            "env": {
                "LAB_PYRLAB": pyrlab,
                "LAB_PROJECT": project_dir,
                "LAB_REGISTRY": registry,
                "LAB_CACHE_FROM": cache_from,
                "PYRLAB_ENGINE": "docker",
            },
            "steps": steps,
        }},
    }


def render(data: dict[str, Any]) -> str:
    comment = "\n".join([
        f"Written by `pyrlab export ci --kind github` (pyrlab {__version__}).",
        "Builds the images on every push and pull request with the registry's build cache;",
        "pushes them from the default branch only. Secrets: REGISTRY_USERNAME and",
        "REGISTRY_PASSWORD (ghcr.io: the repository's GITHUB_TOKEN, nothing to add).",
    ])
    return dump(data, comment=comment)


def export(config: Config, args: argparse.Namespace) -> Exported:
    registry = _registry(config, args.registry)
    cache_from = args.cache_from or registry
    if not CACHE_REF_RE.match(cache_from):
        raise UsageError(f"--cache-from: expected an image reference such as "
                         f"ghcr.io/org/cache or ghcr.io/org/pylab:cache, got {cache_from!r}")
    root = config.root.resolve()
    repo = repository_root(root)
    notes = []
    if repo is None:
        project_dir = "."
        notes.append(f"no git repository holds {root}: the workflow takes the project to be "
                     "the repository's root folder")
    else:
        project_dir = root.relative_to(repo).as_posix() or "."
        notes.append(f"GitHub reads workflows from {repo / DEFAULT_OUTPUT}")
    data = workflow(project_name=_user_text(root.name, "the project folder"),
                    project_dir=_user_text(project_dir, "the project folder"),
                    registry=registry, cache_from=cache_from,
                    pyrlab=_user_text(args.pyrlab or f"pyrlab=={__version__}", "--pyrlab"),
                    bootstrap=config.base.bootstrap is not None,
                    platforms=config.build.platforms)
    return Exported(text=render(data), summary=f"GitHub Actions workflow for {root.name}",
                    notes=tuple(notes),
                    data={"registry": registry, "cache_from": cache_from,
                          "pyrlab": args.pyrlab or f"pyrlab=={__version__}",
                          "project_dir": project_dir})
