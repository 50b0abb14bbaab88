"""A package index of made-up distributions on 127.0.0.1, with fixed metadata, for tests
that must not depend on what the live index holds today (resolution, held-back packages,
the self-test's corpus of import traps).

Each `Dist` becomes a pure-Python wheel built in-process (labtools.make_wheel) and is served
as PEP 503 HTML and PEP 691 JSON, with its Requires-Python, its upload time (PEP 700) and
whether it is yanked, as PyPI serves them. Every project the index does not hold is fetched
from the upstream simple index (PyPI by default, `PYRLAB_TEST_UPSTREAM_INDEX` to change it)
and answered as it came, so a lab built through this index still gets JupyterLab and uv; its
files stay on the upstream's file host (the page's links are absolute). With upstream=None
such projects answer 404.

Builds reach the index on 127.0.0.1 with host networking, which pyrlab chooses by itself for
a `pip_index` on a loopback address.
"""

from __future__ import annotations

import hashlib
import html
import http.server
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from labtools import make_wheel, serving

UPSTREAM = os.environ.get("PYRLAB_TEST_UPSTREAM_INDEX", "https://pypi.org/simple/")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Dist:
    """One release of a made-up distribution, as one py3-none-any wheel."""

    name: str
    version: str
    requires: tuple[str, ...] = ()  # Requires-Dist lines, e.g. "depx<2"
    requires_python: str | None = None
    modules: Mapping[str, str] = field(default_factory=dict)  # path in the wheel → source
    uploaded: str = "2024-01-01T00:00:00Z"  # PEP 700 upload-time
    yanked: bool = False

    @property
    def metadata(self) -> tuple[str, ...]:
        lines = [f"Requires-Dist: {r}" for r in self.requires]
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        return tuple(lines)


@dataclass(frozen=True)
class _File:
    dist: Dist
    filename: str
    sha256: str


@dataclass
class LocalIndex:
    url: str  # the simple index URL to configure (ends in /simple/)
    requested: list[str] = field(default_factory=list)  # project pages served, in order

    def asked(self, project: str) -> bool:
        return normalize(project) in self.requested


def _build(dists: Iterable[Dist], folder: Path) -> dict[str, list[_File]]:
    projects: dict[str, list[_File]] = {}
    for dist in dists:
        wheel = make_wheel(folder, dist.name.replace("-", "_"), dist.version,
                           dict(dist.modules), dist.metadata)
        digest = hashlib.sha256((folder / wheel).read_bytes()).hexdigest()
        projects.setdefault(normalize(dist.name), []).append(_File(dist, wheel, digest))
    return projects


def _json_page(project: str, files: list[_File], base: str) -> bytes:
    return json.dumps({
        "meta": {"api-version": "1.1"},
        "name": project,
        "versions": sorted({f.dist.version for f in files}),
        "files": [{
            "filename": f.filename,
            "url": f"{base}/files/{f.filename}",
            "hashes": {"sha256": f.sha256},
            "requires-python": f.dist.requires_python,
            "yanked": f.dist.yanked,
            "upload-time": f.dist.uploaded,
        } for f in files],
    }).encode()


def _html_page(project: str, files: list[_File], base: str) -> bytes:
    links = []
    for f in files:
        attrs = ""
        if f.dist.requires_python:
            attrs += f' data-requires-python="{html.escape(f.dist.requires_python)}"'
        if f.dist.yanked:
            attrs += ' data-yanked=""'
        links.append(f'<a href="{base}/files/{f.filename}#sha256={f.sha256}"{attrs}>'
                     f"{f.filename}</a><br/>")
    return (f"<!DOCTYPE html><html><body><h1>{project}</h1>\n" + "\n".join(links)
            + "\n</body></html>\n").encode()


@contextmanager
def local_index(dists: Iterable[Dist], folder: Path, *,
                upstream: str | None = UPSTREAM) -> Iterator[LocalIndex]:
    """Serve `dists` (wheels written into `folder`) while the block runs."""
    projects = _build(dists, folder)
    state = LocalIndex("")
    upstream_pages: dict[tuple[str, str], tuple[int, str, bytes]] = {}

    def from_upstream(project: str, accept: str) -> tuple[int, str, bytes]:
        key = (project, accept)
        if upstream is None:
            return 404, HTML_TYPE, b""
        if key not in upstream_pages:
            request = urllib.request.Request(f"{upstream}{project}/",
                                             headers={"Accept": accept})
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    upstream_pages[key] = (200, answer.headers.get("Content-Type", HTML_TYPE),
                                           answer.read())
            except urllib.error.HTTPError as exc:
                return exc.code, HTML_TYPE, b""
            except OSError:
                return 502, HTML_TYPE, b""
        return upstream_pages[key]

    class Handler(http.server.BaseHTTPRequestHandler):
        head_only = False

        def do_HEAD(self) -> None:  # uv asks before a download whether ranges are served
            self.head_only = True
            self.do_GET()

        def do_GET(self) -> None:
            base = f"http://{self.headers.get('Host', '127.0.0.1')}"
            if self.path.startswith("/files/"):
                path = folder / Path(self.path.removeprefix("/files/")).name
                self._answer(*((200, "application/octet-stream", path.read_bytes())
                               if path.is_file() else (404, HTML_TYPE, b"")))
                return
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) != 2 or parts[0] != "simple":
                self._answer(404, HTML_TYPE, b"")
                return
            project = normalize(parts[1])
            if not self.head_only:
                state.requested.append(project)
            accept = self.headers.get("Accept", "text/html")
            if project not in projects:
                self._answer(*from_upstream(project, accept))
            elif JSON_TYPE in accept:
                self._answer(200, JSON_TYPE, _json_page(project, projects[project], base))
            else:
                self._answer(200, HTML_TYPE, _html_page(project, projects[project], base))

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not self.head_only:
                    self.wfile.write(body)
            except OSError:
                pass  # the client gave up

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as port:
        state.url = f"http://127.0.0.1:{port}/simple/"
        yield state
