"""`pyrlab why PACKAGE [--image IMAGE]`: why a Python distribution (or, where no Python one
has that name, an R package) is in a built image.

For each image that holds it: its version, every list line (of the image and its
ancestors) that pulls it in, with the chain of packages from the line to it, and every
constraint on its version: a list line that names it, each installed package's dependency
on it (`mlflow 3.17.2 requires sqlalchemy<3,>=1.4.0`, `IRkernel 1.3.2 imports jsonlite
(>= 0.9.6)`), and pyrlab.lock's version. Offline: the image's metadata is read in a
throwaway container with no network (contents/dependencies.py); the lists are the
project's as they are now. `--platform P`: P's images (under emulation), its lines
and its sections of pyrlab.lock.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from packaging.utils import canonicalize_name

from pyrlab import ecosystems
from pyrlab.commands._args import add_platform, engine_from, project_from
from pyrlab.config.project import Project
from pyrlab.contents.dependencies import (
    Bound,
    DependencyGraph,
    ListLine,
    PythonGraph,
    RGraph,
    Throwaway,
    Why,
    why,
)
from pyrlab.contents.images import ImageSpec, image_spec, lock_file
from pyrlab.contents.lockfile import LOCK_NAME, LockError, read_lock
from pyrlab.engines.base import Engine, short_id
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import ConfigError, NotBuiltError, Problem
from pyrlab.imagebuild.planner import on_engine
from pyrlab.platforms import NATIVE, Platform, is_native

NOBODY = 65534


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", metavar="PACKAGE",
                        help="a Python distribution, e.g. urllib3, or else an R package")
    parser.add_argument("--image", metavar="IMAGE", default=None,
                        help="the image to look in, e.g. pylab (pylab:previous: another tag; "
                             "default: every built image of the project that holds it)")
    add_platform(parser, many=False,
                 help="look in PLATFORM's images (linux/amd64, linux/arm64; another "
                 "platform's run under emulation); default: the engine's own")
    add_engine_argument(parser)


@dataclass(frozen=True)
class ImageWhy:
    image: str
    ref: str
    image_id: str
    why: Why
    lock: Bound | None  # pyrlab.lock's version of it for this image, when there is one

    def to_data(self) -> dict[str, Any]:
        return {"image": self.image, "ref": self.ref, "id": self.image_id,
                **asdict(self.why), "lock": asdict(self.lock) if self.lock else None}

    def lines(self) -> list[str]:
        w = self.why
        kind = "R package " if w.ecosystem == "r" else ""
        head = f"{kind}{w.name} {w.version} in {self.image}"
        out = [f"{head} ({self.ref}, {short_id(self.image_id)})"]
        if w.from_lists:
            out.append("  pulled in by:")
            width = max(len(p.where) for p in w.pulls)
            out += [f"    {p.where:<{width}}  "
                    + (f"{p.line} (listed)" if p.direct else " → ".join(map(str, p.chain)))
                    for p in w.pulls]
        elif w.pulls:
            out.append("  no list line pulls it in; it comes with these, which no list "
                       "names (pyrlab's own packages, or left over):")
            out += [f"    {' → '.join(map(str, p.chain))}" for p in w.pulls]
        else:
            out.append("  no list line pulls it in and nothing installed requires it "
                       "(pyrlab's own steps put it there)")
        bounds = [b for b in w.bounds if b.bounds]
        loose = [b for b in w.bounds if not b.bounds]
        if bounds:
            out.append("  version bounds:")
            width = max(len(self._by(b)) for b in bounds)
            for bound in bounds:
                verb = f"{bound.verb} " if bound.verb else ""
                note = "" if bound.satisfied else f"  (NOT met by {w.version})"
                out.append(f"    {self._by(bound):<{width}}  {verb}{bound.requirement}{note}")
        else:
            out.append("  version bounds: none")
        if loose:
            out.append("  required without a bound by: " + ", ".join(map(self._by, loose)))
        if self.lock:
            # Only Python versions are a plain build's preferences (imagebuild/pins.py Pins).
            kept = "a plain build keeps it while the lists allow it, " \
                if w.ecosystem == "python" else ""
            held = "" if self.lock.satisfied else f"; the image holds {w.version}"
            out.append(f"  {self.lock.by}: {self.lock.requirement} ({kept}"
                       f"`build --locked` requires it{held})")
        return out

    @staticmethod
    def _by(bound: Bound) -> str:
        return f"{bound.by} [extra {bound.extra}]" if bound.extra else bound.by


@dataclass(frozen=True)
class WhyResult:
    package: str
    images: tuple[ImageWhy, ...]
    not_in: tuple[str, ...] = ()  # built images that do not hold it
    not_built: tuple[str, ...] = ()  # images of the project left out: nothing to read

    def to_data(self) -> Any:
        return {"package": self.package, "images": [i.to_data() for i in self.images],
                "not_in": list(self.not_in), "not_built": list(self.not_built)}

    def to_text(self) -> str:
        lines = [line for n, answer in enumerate(self.images)
                 for line in ([""] if n else []) + answer.lines()]
        if self.not_in:
            lines.append(f"not in: {', '.join(self.not_in)}")
        if self.not_built:
            lines.append(f"not built, not read: {', '.join(self.not_built)}")
        return "\n".join(lines)


def list_lines(project: Project, name: str, ecosystem: str) -> list[ListLine]:
    """The lines of the image's lists and its ancestors' for `ecosystem`, ancestors first."""
    return [ListLine(entry.where, entry.text) for image in project.order([name])
            for entry in project.lists[image].of(ecosystem)]


def lock_bound(project: Project, image: str, found: Why,
               platform: Platform = NATIVE) -> Bound | None:
    """pyrlab.lock's version of `found` in `platform`'s section of `image` (NATIVE: the
    engine's own platform's, see lockfile.Lock.view)."""
    lock = lock_file(project.config)
    try:
        section = read_lock(lock.path, shown=lock.shown, platform=platform).get(image)
    except LockError:
        return None  # a lock that cannot be read says nothing here (`build` names why)
    eco = ecosystems.named(found.ecosystem)  # the graph's: "python" or "r"
    name = eco.contents.canonical_name(found.name)
    pinned = next((p for p in section.packages(eco.name) if p.name == name), None) \
        if section else None
    if pinned is None:
        return None
    return Bound("lock", f"{LOCK_NAME} [{image}]", f"{pinned.name}=={pinned.version}",
                 f"=={pinned.version}", satisfied=pinned.version == found.version)


def close_names(package: str, names: Iterable[str]) -> list[str]:
    """Installed names like `package`: spelled alike, or containing it."""
    by_key: dict[str, str] = {canonicalize_name(n): n for n in sorted(set(names))}
    key = canonicalize_name(package)
    close = difflib.get_close_matches(key, list(by_key), n=5, cutoff=0.7)
    close += [k for k in by_key if key in k and k not in close]
    return [by_key[k] for k in close[:5]]


def find(engine: Engine, image_id: str, user: str, package: str, platform: Platform = NATIVE,
         ) -> tuple[DependencyGraph | None, list[str]]:
    """The graph of the ecosystem that holds `package` in the image (Python first, then
    R where the image has it), or None and every name the image holds. `platform`: the
    image's, where it is another than the engine's own."""
    with Throwaway(engine, image_id, user, platform) as container:
        installed = container.python()
        graphs: list[DependencyGraph] = [PythonGraph(installed)]
        if graphs[0].key(package) not in graphs[0].nodes and installed.has_r:
            graphs.append(RGraph(container.r()))
    for graph in graphs:
        if graph.key(package) in graph.nodes:
            return graph, []
    return None, [node.name for graph in graphs for node in graph.nodes.values()]


def run(args: argparse.Namespace) -> WhyResult:
    project = project_from(args)
    config = project.config
    engine = engine_from(args, config)
    # The engine is asked its platform only when one is named (as `inspect`).
    host = engine.platform() if args.platform else NATIVE
    platform: Platform = NATIVE if is_native(args.platform or NATIVE, host) else args.platform
    concrete = args.platform or NATIVE  # whose lock sections: NATIVE is the engine's own
    mine = on_engine(project, engine, platform)  # its lists: lines limited to it
    specs = ([image_spec(config, args.image, platform, host)] if args.image
             else [ImageSpec(n, config.image_ref(n, "latest", platform, host))
                   for n in config.images])
    known = engine.images_by_ref([s.ref for s in specs])
    not_built = tuple(s.name for s in specs if known[s.ref] is None)
    flag = f" --platform {platform}" if platform else ""
    if args.image and not_built:
        raise NotBuiltError(f"image {specs[0].ref} is not built",
                            hint=f"build it with `pyrlab build{flag} {specs[0].name}`")
    if len(not_built) == len(specs):
        raise NotBuiltError(f"no image of the project is built"
                            f"{f' for {platform}' if platform else ''}",
                            hint=f"build them with `pyrlab build{flag}`")
    # The lab's user; never root, even where pyrlab runs as root (nobody reads as well).
    user = f"{config.run.uid}:{config.run.gid}" if config.run.uid else f"{NOBODY}:{NOBODY}"
    answers: list[ImageWhy] = []
    names: list[str] = []
    not_in: list[str] = []
    for spec in specs:
        info = known[spec.ref]
        if info is None:
            continue
        graph, held = find(engine, info.id, user, args.package, platform)
        if graph is None:
            not_in.append(spec.name)
            names += held
            continue
        found = why(graph, args.package, list_lines(mine, spec.name, graph.ecosystem))
        answers.append(ImageWhy(spec.name, spec.ref, info.id, found,
                                lock_bound(project, spec.name, found, concrete)))
    if not answers:
        suggestions = close_names(args.package, names)
        where = specs[0].ref if args.image else ", ".join(not_in)
        raise ConfigError(
            Problem("command line", f"{args.package} is not installed in {where}"),
            hint=(f"did you mean {' or '.join(suggestions)}?" if suggestions
                  else "`pyrlab inspect IMAGE` lists what an image holds"))
    return WhyResult(args.package, tuple(answers), tuple(not_in), not_built)
