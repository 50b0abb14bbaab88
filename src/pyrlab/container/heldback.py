"""Held-back listed packages after a fresh resolution, and the requirement holding each.

Run by uv-install after a fresh resolution (no lock yet, or `pyrlab upgrade`) with the
environment's own interpreter, and by `pyrlab outdated` in a throwaway container of the
image; standard library only (packaging from pip's vendored copy where the host's is not
there), since it runs in the image.

A listed package is held back when the newest release installable for this interpreter
(uv's pick for the name alone, without dependencies: Requires-Python, wheel tags, yanked
and pre-releases as uv weighs them) is a major version ahead of the resolved one, or was
uploaded more than 12 months after it (upload times from the index's PEP 691 JSON, where
it gives them; without them only the major rule applies). A package whose own list line
excludes the newest is the user's choice and not reported.

For each held-back package (at most MAX_PROBES, within PROBE_SECONDS) the lists are resolved again, dry, with
`NAME>=NEWEST` as a constraint: uv's failure names what holds it back; a success that
lowers no other listed package is a better resolution, which the fresh one then takes
(`--install`: installed again with those floors).

Output: with --install, one `pyrlab-held-back: {json}` line per package (the build reads
them from its output and words them, pyrlab.contents.heldback); without, the resolution and the
findings as one JSON object on stdout (`pyrlab outdated`, through uv-resolve).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # in the image: pip's copy
    from pip._vendor.packaging.version import (  # type: ignore[assignment]
        InvalidVersion,
        Version,
    )

MARKER = "pyrlab-held-back: "
MAX_PROBES = 8
# All probes of one resolution together: a probe of a long list may build old sdists for
# their metadata, and the check must not double a build's time.
PROBE_SECONDS = 120.0
TIMED_OUT = -9
TIMED_OUT_TEXT = "timed out"
YEAR = datetime.timedelta(days=365)
DEFAULT_INDEX = "https://pypi.org/simple/"
_NAME_RE = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*(.*)$")
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
# "b==1.0 depends on a<2", "all versions of b depend on a<2", "b>=1 depends on a>=1,<2"
_DEPENDS_RE = re.compile(
    r"((?:all versions of |only )?[A-Za-z0-9][\w.\-\[\],]*?(?:[=<>!~]=?[^\s,]+"
    r"(?:,\s*[=<>!~]=?[^\s,]+)*)?) depends? on ([A-Za-z0-9][\w.\-]*)(\[[^\]]*\])?"
    r"((?:[=<>!~]=?[^\s,]+)(?:,\s*[=<>!~]=?[^\s,]+)*)?")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def listed_names(lines: Iterable[str]) -> dict[str, str]:
    """{canonical name: version specifier as written} of a list's index packages (the
    first line of a name; direct references and options left out)."""
    names: dict[str, str] = {}
    for raw in lines:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith("-") or "://" in line or " @ " in line:
            continue
        match = _NAME_RE.match(line)
        if match:
            spec = match.group(3).split(";", 1)[0].strip()
            names.setdefault(canonical(match.group(1)), spec)
    return names


def pinned(text: str) -> dict[str, str]:
    """{canonical name: version} of a `name==version` list (uv pip compile's output)."""
    out = {}
    for line in text.splitlines():
        match = _PIN_RE.match(line.strip())
        if match:
            out[canonical(match.group(1))] = match.group(2)
    return out


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def allows(spec: str, version: str) -> bool:
    """Whether a list line's own specifier (`>=1,<2`) admits `version`."""
    wanted = _version(version)
    if wanted is None:
        return True
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = re.match(r"^(===|==|!=|<=|>=|~=|<|>)\s*(.+)$", part)
        if not match:
            continue
        op, text = match.groups()
        if text.endswith(".*"):
            prefix = text[:-2].split(".")
            same = str(wanted.base_version).split(".")[:len(prefix)] == prefix
            if (op == "==" and not same) or (op == "!=" and same):
                return False
            continue
        bound = _version(text)
        if bound is None:
            continue
        if op == "~=":
            upper = list(bound.release[:-1])
            upper[-1] += 1
            ok = wanted >= bound and wanted < Version(".".join(map(str, upper)))
        else:
            ok = {"==": wanted == bound, "===": version == text, "!=": wanted != bound,
                  "<=": wanted <= bound, ">=": wanted >= bound, "<": wanted < bound,
                  ">": wanted > bound}[op]
        if not ok:
            return False
    return True


def held_reason(installed: str, newest: str, uploaded: Mapping[str, datetime.datetime],
                ) -> str | None:
    """Why `installed` counts as held back behind `newest` (their upload times in
    `uploaded`, by version, where the index gave them), or None."""
    have, best = _version(installed), _version(newest)
    if have is None or best is None or best <= have:
        return None
    if best.major > have.major:
        return f"major version {best.major} is out"
    old, new = uploaded.get(installed), uploaded.get(newest)
    if old is not None and new is not None and new - old > YEAR:
        return (f"{newest} was uploaded {(new - old).days // 30} months after "
                f"{installed} ({new.date()} against {old.date()})")
    return None


def upload_times(project: Mapping[str, Any], name: str) -> dict[str, datetime.datetime]:
    """{version: its first file's upload time} from a PEP 691 project page (PEP 700's
    `upload-time`); versions read from the file names."""
    times: dict[str, datetime.datetime] = {}
    prefix = canonical(name).replace("-", "_")
    for file in project.get("files", ()):
        stamp, filename = file.get("upload-time"), file.get("filename", "")
        if not stamp:
            continue
        version = _file_version(filename, prefix)
        if version is None:
            continue
        when = datetime.datetime.fromisoformat(stamp)
        key = str(version)
        if key not in times or when < times[key]:
            times[key] = when
    return times


def _file_version(filename: str, prefix: str) -> Version | None:
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return _version(parts[1]) if len(parts) >= 5 else None
    for ending in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(ending):
            stem = filename[: -len(ending)]
            cut = stem.rfind("-")
            if cut > 0 and canonical(stem[:cut]).replace("-", "_") == prefix:
                return _version(stem[cut + 1:])
    return None


def holder(error: str, name: str) -> str:
    """What holds `name` back, from uv's explanation of why `name>=NEWEST` cannot be
    resolved: the clauses that depend on `name` (a bound on it), else uv's first reason."""
    text = " ".join(line.strip() for line in error.splitlines())
    found = []
    for match in _DEPENDS_RE.finditer(text):
        if canonical(match.group(2)) == canonical(name):
            bound = (match.group(4) or "").rstrip(".")  # a sentence's full stop
            clause = f"{match.group(1)} depends on {match.group(2)}{bound}"
            clause = re.sub(r"^all versions of (\S+) depends", r"all versions of \1 depend",
                            clause)
            if clause not in found:
                found.append(clause)
    if found:
        return "; ".join(found[:3])
    reasons = [line.strip() for line in error.splitlines()
               if line.strip() and not line.strip().startswith(("error:", "Resolved", "×"))]
    reason = reasons[0] if reasons else error.strip()[:300]
    return re.sub(r"^(cause:|╰─▶)\s*", "", reason)


# ------------------------------------------------------------------ talking to uv and the index
class Resolver:
    def __init__(self, uv: str, python: str, lists: Sequence[str]) -> None:
        self.uv, self.python, self.lists = uv, python, list(lists)
        self.probes = 0

    def _run(self, args: Sequence[str], timeout: float | None = None,
             ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self.uv, "pip", *args], capture_output=True, text=True,
                                  check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, TIMED_OUT, "", "")

    def compile(self, constraints: Sequence[str] = (), timeout: float | None = None,
                ) -> tuple[dict[str, str] | None, str]:
        """The lists' resolution ({name: version}) with extra constraints, or None and
        uv's explanation (TIMED_OUT_TEXT when it took longer than `timeout` seconds)."""
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as extra:
            extra.write("".join(f"{c}\n" for c in constraints))
            extra.flush()
            args = ["compile", "--quiet", "--no-header", "--no-annotate", "--python",
                    self.python, *self.lists]
            if constraints:
                args += ["-c", extra.name]
            done = self._run(args, timeout)
        if done.returncode == TIMED_OUT:
            return None, TIMED_OUT_TEXT
        if done.returncode != 0:
            return None, done.stderr
        return pinned(done.stdout), ""

    def newest(self, names: Sequence[str]) -> tuple[dict[str, str], str]:
        """Each name's newest release installable here (uv, no dependencies; one call)."""
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as listed:
            listed.write("".join(f"{n}\n" for n in names))
            listed.flush()
            done = self._run(["compile", "--quiet", "--no-header", "--no-annotate",
                              "--no-deps", "--python", self.python, listed.name])
        if done.returncode != 0:
            return {}, done.stderr
        return pinned(done.stdout), ""

    def install(self, constraints: Sequence[str]) -> tuple[bool, str]:
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as extra:
            extra.write("".join(f"{c}\n" for c in constraints))
            extra.flush()
            args = ["install", "--python", self.python]
            for path in self.lists:
                args += ["-r", path]
            done = self._run([*args, "-c", extra.name])
        return done.returncode == 0, done.stderr


def index_urls(uv_toml: str | None) -> list[str]:
    """The indexes uv asks, first to last, from the build's uv.toml."""
    if not uv_toml or not os.path.isfile(uv_toml):
        return [DEFAULT_INDEX]
    with open(uv_toml, encoding="utf-8") as file:
        text = file.read()
    first = re.search(r'^index-url\s*=\s*(".*")\s*$', text, re.MULTILINE)
    extra = re.search(r"^extra-index-url\s*=\s*(\[.*\])\s*$", text, re.MULTILINE)
    urls = [json.loads(first.group(1))] if first else [DEFAULT_INDEX]
    return urls + (json.loads(extra.group(1)) if extra else [])


def fetch_project(indexes: Sequence[str], name: str) -> dict[str, Any] | None:
    """A project's PEP 691 JSON page from the first index that has it, or None."""
    for index in indexes:
        parts = urllib.parse.urlsplit(index)
        headers = {"Accept": "application/vnd.pypi.simple.v1+json"}
        netloc = parts.netloc
        if "@" in netloc:  # credentials: a header, not the URL (urllib ignores them there)
            userinfo, netloc = netloc.rsplit("@", 1)
            token = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        url = urllib.parse.urlunsplit((parts.scheme, netloc,
                                       parts.path.rstrip("/") + f"/{canonical(name)}/", "", ""))
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=30) as response:
                if "json" not in response.headers.get("Content-Type", ""):
                    continue
                data: dict[str, Any] = json.load(response)
                return data
        except (OSError, ValueError):
            continue
    return None


# ------------------------------------------------------------------ the check
def check(resolver: Resolver, listed: Mapping[str, str], resolved: Mapping[str, str],
          indexes: Sequence[str], *, max_probes: int = MAX_PROBES,
          probe_seconds: float = PROBE_SECONDS) -> dict[str, Any]:
    """The held-back report for `listed` packages resolved to `resolved`."""
    names = [n for n in listed if n in resolved]
    result: dict[str, Any] = {"held": [], "raised": [], "floors": [], "notes": []}
    if not names:
        return result
    newest, error = resolver.newest(names)
    if error:
        result["notes"].append("the newest releases could not be asked: "
                               + holder(error, "").splitlines()[0][:300])
        return result
    candidates = []
    undated = []
    for name in names:
        best, have = newest.get(name), resolved[name]
        if not best or not allows(listed[name], best):
            continue
        why = held_reason(have, best, {})
        if why is None and (_version(best) or Version("0")) > (_version(have) or Version("0")):
            page = fetch_project(indexes, name)
            if page is None or not page.get("files"):
                undated.append(name)
            why = held_reason(have, best, upload_times(page or {}, name))
        if why:
            candidates.append((name, have, best, why))
    if undated:
        result["notes"].append("no upload times from the index (PEP 691 JSON) for "
                               + ", ".join(undated) + ": only the major-version rule applied")
    floors: list[str] = []
    deadline = time.monotonic() + probe_seconds
    for name, have, best, why in candidates:
        row = {"name": name, "resolved": have, "newest": best, "why": why}
        left = deadline - time.monotonic()
        if resolver.probes >= max_probes or left <= 0:
            row["holder"] = (f"not probed (at most {max_probes} probes per resolution)"
                             if left > 0 else
                             f"not probed (the probes' {probe_seconds:.0f} s are spent)")
            result["held"].append(row)
            continue
        resolver.probes += 1
        probe, error = resolver.compile([*floors, f"{name}>={best}"], timeout=left)
        if probe is None:
            row["holder"] = (holder(error, name) if error != TIMED_OUT_TEXT else
                             f"not found (the probes' {probe_seconds:.0f} s are spent)")
            result["held"].append(row)
            continue
        lowered = [f"{other} {resolved[other]} -> {probe[other]}" for other in names
                   if other != name and other in probe
                   and (_version(probe[other]) or Version("0"))
                   < (_version(resolved[other]) or Version("0"))]
        if lowered:
            row["holder"] = ("the resolution with it lowers other listed packages: "
                             + ", ".join(lowered))
            result["held"].append(row)
            continue
        floors.append(f"{name}>={best}")
        row["to"] = probe.get(name, best)
        result["raised"].append(row)
    result["floors"] = floors
    skipped = sum(row["holder"].startswith("not probed") for row in result["held"])
    if skipped:
        result["notes"].append(f"{skipped} held-back packages not probed (at most "
                               f"{max_probes} probes, {probe_seconds:.0f} s in all)")
    return result


def installed_versions() -> dict[str, str]:
    """{name: version} of this interpreter's environment (the one just installed into)."""
    return {canonical(d.metadata["Name"]): d.version
            for d in importlib.metadata.distributions() if d.metadata["Name"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uv", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--listed", required=True, help="the user's list (pyrlab's copy)")
    parser.add_argument("--uv-toml")
    parser.add_argument("--install", action="store_true",
                        help="the environment holds the fresh resolution: check it, and "
                        "install again with the floors found")
    parser.add_argument("lists", nargs="+")
    args = parser.parse_args(argv)
    with open(args.listed, encoding="utf-8") as file:
        listed = listed_names(file)
    resolver = Resolver(args.uv, args.python, args.lists)
    if args.install:
        resolved = installed_versions()
    else:
        compiled, error = resolver.compile()
        if compiled is None:
            print(error, file=sys.stderr)
            return 1
        resolved = compiled
    result = check(resolver, listed, resolved, index_urls(args.uv_toml))
    if result["floors"]:
        if args.install:
            ok, error = resolver.install(result["floors"])
            if not ok:  # never worse than uv's first pick: keep it, say so
                result["notes"].append("installing with the raised floors failed: "
                                       + error.strip()[-300:])
                for row in result["raised"]:
                    row["holder"] = "installing it with that floor failed"
                result["held"] += result["raised"]
                result["raised"] = []
        else:
            compiled, _ = resolver.compile(result["floors"])
            resolved = compiled or resolved
    if not args.install:  # `pyrlab outdated`: the answer, for the host to read
        result["resolution"] = dict(resolved)
        print(json.dumps(result, sort_keys=True))
        return 0
    for kind in ("raised", "held"):
        for row in result[kind]:
            print(MARKER + json.dumps({"kind": kind, **row}, sort_keys=True))
    for note in result["notes"]:
        print(MARKER + json.dumps({"kind": "note", "text": note}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
