"""`pyrlab test [IMAGE…]`: import every listed Python distribution, attach every listed R
package and run code in every kernel, in throwaway containers of the built images; judged
as the build's gate judges (known failures, warnings; see pyrlab/gate.py). The engine's
own platform's images, or `--platform P`'s (under emulation, with the gate's longer
timeouts and P's known failures)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from pyrlab import ecosystems
from pyrlab.commands._args import add_platform, engine_from, project_from
from pyrlab.engines.base import short_id
from pyrlab.engines.select import add_engine_argument
from pyrlab.errors import EXIT_OK, EXIT_TEST, NotBuiltError
from pyrlab.gate import Check, ImageTest, SelfTester
from pyrlab.imagebuild.planner import on_engine
from pyrlab.platforms import NATIVE, Platform, is_native


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="images to test (default: every built image of the project)")
    add_platform(parser, many=False,
                 help="test PLATFORM's images (linux/amd64, linux/arm64; another platform's "
                 "run under emulation: minutes); default: the engine's own")
    add_engine_argument(parser)


def render_test(test: ImageTest) -> list[str]:
    """A test's lines: a summary, every failure, then what passed in one line per kind."""
    checkers = [eco for eco in ecosystems.registered() if eco.checks.command is not None]
    count = {kind: sum(1 for c in test.checks if c.kind == kind)
             for kind in [eco.name for eco in checkers] + ["kernel"]}
    checked = ", ".join(f"{count[kind]} {label}" for kind, label in
                        [(eco.name, eco.checks.counted) for eco in checkers]
                        + [("kernel", "kernels")] if count[kind])
    verdict = "ok" if test.ok else f"FAILED ({len(test.failures)} of {len(test.checks)})"
    counted = [f"{n} {label}{'s' if n > 1 else ''}" for n, label in (
        (len(test.having("known")), "known failure"), (len(test.having("warning")), "warning"))
        if n]
    head = (f"{test.image} ({short_id(test.image_id)}): {verdict}"
            f"{''.join(f', {c}' for c in counted)}; "
            f"{checked or 'nothing to check'} in {test.seconds:.1f}s")
    lines = [head]
    lines += [f"  {c.line()}" for c in reported(test)]
    for kind, label in ([(eco.name, eco.checks.passed) for eco in checkers]
                        + [("kernel", "ran 6*7 in"), ("lab", "lab")]):
        passed = [c for c in test.checks if c.kind == kind and c.verdict == "ok"]
        if passed:
            lines.append(f"  {label}: {', '.join(map(_passed_name, passed))}")
    slow = sorted((c for c in test.checks if c.kind != "lab"), key=lambda c: -c.seconds)[:3]
    if slow and slow[0].seconds >= 1:
        lines.append("  slowest: " + ", ".join(
            f"{c.name if c.kind == 'kernel' else c.what or c.name} {c.seconds:.1f}s"
            for c in slow))
    return lines


def _passed_name(check: Check) -> str:
    if check.kind == "kernel":
        return check.name
    if check.kind == "lab":
        return f"{check.what} {check.seconds:.1f}s"
    return ecosystems.named(check.kind).checks.brief(check.name, check.what)


def reported(test: ImageTest) -> list[Check]:
    """The checks a report shows one by one: what blocks first, then known failures,
    warnings and notes (a mark that is no longer needed, a line its marker leaves out)."""
    order = ("regression", "failed", "known", "warning", "fixed", "skipped")
    return sorted((c for c in test.checks if c.verdict != "ok"),
                  key=lambda c: order.index(c.verdict or "failed"))


@dataclass(frozen=True)
class SelfTestResult:
    tests: tuple[ImageTest, ...]
    not_built: tuple[str, ...] = ()  # images of the project left out: nothing to test
    platform: Platform = NATIVE  # the images', when another than the engine's own

    @property
    def exit_code(self) -> int:
        return EXIT_OK if all(t.ok for t in self.tests) else EXIT_TEST

    def to_data(self) -> Any:
        return {"ok": self.exit_code == EXIT_OK, "images": [t.to_data() for t in self.tests],
                "not_built": list(self.not_built), "platform": self.platform or None}

    def to_text(self) -> str:
        lines = [f"{self.platform}'s images, under emulation:"] if self.platform else []
        lines += [line for t in self.tests for line in render_test(t)]
        if self.not_built:
            lines.append(f"not built, not tested: {', '.join(self.not_built)}")
        return "\n".join(lines)


def run(args: argparse.Namespace) -> SelfTestResult:
    project = project_from(args)
    engine = engine_from(args, project.config)
    names = project.order(args.images or None) if args.images else list(project.config.images)
    if args.images:  # the images named, not their ancestors: those are tested by name
        names = [n for n in names if n in args.images]
    # The engine is asked its platform only when one is named (as `inspect`).
    host = engine.platform() if args.platform else NATIVE
    platform: Platform = NATIVE if is_native(args.platform or NATIVE, host) else args.platform
    refs = {n: project.config.image_ref(n, "latest", platform, host) for n in names}
    known = engine.images_by_ref(list(refs.values()))
    missing = [n for n in names if known[refs[n]] is None]
    flag = f" --platform {platform}" if platform else ""
    if args.images and missing:
        raise NotBuiltError(f"not built{f' for {platform}' if platform else ''}: "
                            f"{', '.join(missing)}",
                            hint=f"build with `pyrlab build{flag} {' '.join(missing)}`")
    # Lines limited to other platforms are not this one's to check.
    tester = SelfTester(on_engine(project, engine, platform), engine, platform, host)
    tests = []
    for name in names:
        info = known[refs[name]]
        if info is not None:
            tests.append(tester.test(name, info.id))
    if not tests:
        raise NotBuiltError(f"no image of this project is built"
                            f"{f' for {platform}' if platform else ''}",
                            hint=f"run `pyrlab build{flag}`")
    return SelfTestResult(tuple(tests), tuple(missing), platform)
