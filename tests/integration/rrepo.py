"""A tiny CRAN-like R repository for the integration tests, served on 127.0.0.1.

`make_repo` writes real source packages with `R CMD build` (the host needs R: Debian's
r-base-core, installed here on demand), indexes them with `tools::write_PACKAGES` and keeps
older versions under src/contrib/Archive/<name>/ as CRAN does; `serve` publishes the folder
over HTTP for as long as the `with` block lasts.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import re
import secrets
import shutil
import subprocess
import tarfile
import textwrap
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

FIXED_MTIME = 946684800  # 2000-01-01

def ensure_r() -> str:
    """The host's Rscript, installing r-base-core through apt when it is missing."""
    found = shutil.which("Rscript")
    if found:
        return found
    # Another apt may be running on a shared machine: wait for its lock rather than fail.
    apt = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=900"]
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for args in (["update"], ["install", "-y", "--no-install-recommends", "r-base-core"]):
        subprocess.run(apt + args, check=True, capture_output=True, text=True, timeout=1800, env=env)
    found = shutil.which("Rscript")
    assert found, "r-base-core installed but Rscript is not on PATH"
    return found


def _write_source(folder: Path, name: str, version: str, imports: Sequence[str],
                  broken: bool, stamp: str | None) -> None:
    (folder / "R").mkdir(parents=True)
    fields = {
        "Package": name,
        "Type": "Package",
        "Title": "A Tiny Package for Testing pyrlab",
        "Version": version,
        "Authors@R": 'person("pyrlab", "tests", email = "tests@example.org", role = c("aut", "cre"))',
        "Description": "Says which version it is, so that tests can tell versions apart.",
        "License": "MIT + file LICENSE",
        "Encoding": "UTF-8",
    }
    if imports:
        fields["Imports"] = ", ".join(imports)
    if stamp:
        fields["Stamp"] = stamp
    (folder / "DESCRIPTION").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
    (folder / "LICENSE").write_text("YEAR: 2025\nCOPYRIGHT HOLDER: pyrlab tests\n")
    (folder / "NAMESPACE").write_text("export(hello)\n")
    (folder / "R" / "hello.R").write_text(textwrap.dedent(f"""\
        hello <- function() "hello from {name} {version}"
    """))
    if broken:  # R CMD build does not parse R code; R CMD INSTALL does, and fails
        (folder / "R" / "broken.R").write_text("broken <- function( {\n")


def build_package(work: Path, name: str, version: str, imports: Sequence[str] = (),
                  broken: bool = False, stamp: str | None = None) -> Path:
    """`R CMD build` of a generated package; returns the NAME_VERSION.tar.gz it wrote,
    the same bytes for the same arguments. A `broken` one holds an R syntax error, so
    that installing it fails; a `stamp` (a DESCRIPTION field) makes other bytes."""
    rscript = ensure_r()
    source = work / f"{name}-{version}" / name
    _write_source(source, name, version, imports, broken, stamp)
    r = str(Path(rscript).with_name("R"))
    subprocess.run([r, "CMD", "build", "--no-build-vignettes", "--no-manual", name],
                   cwd=source.parent, check=True, capture_output=True, text=True, timeout=300)
    tarball = source.parent / f"{name}_{version}.tar.gz"
    assert tarball.is_file(), f"R CMD build wrote no {tarball.name}"
    _make_reproducible(tarball)
    return tarball


def _make_reproducible(tarball: Path) -> None:
    """Rewrite an `R CMD build` tarball so that the same package gives the same bytes in
    every test session (as a CRAN tarball does): no build date, fixed owners and times.
    Caches keyed by a tarball's md5 then behave across sessions as they do with CRAN."""
    out = io.BytesIO()
    with tarfile.open(tarball, "r:gz") as source, tarfile.open(fileobj=out, mode="w",
                                                               format=tarfile.GNU_FORMAT) as tar:
        for member in source.getmembers():
            extracted = source.extractfile(member) if member.isfile() else None
            data = extracted.read() if extracted is not None else None
            if data is not None and member.name.endswith("/DESCRIPTION"):
                data = re.sub(rb"(?m)^Packaged: .*$", b"Packaged: 2000-01-01 00:00:00 UTC; tests",
                              data)
                member.size = len(data)
            member.mtime = FIXED_MTIME
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    with tarball.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                  mtime=0) as gz:
        gz.write(out.getvalue())


def make_repo(root: Path, packages: Mapping[str, Sequence[str]],
              imports: Mapping[str, Sequence[str]] | None = None,
              broken: Sequence[str] = (), fresh: Sequence[str] = ()) -> Path:
    """A CRAN-like repository in `root`: {name: [versions, oldest first]}; the newest of
    each goes to src/contrib (indexed), the others to src/contrib/Archive/NAME/.
    `imports` adds dependencies; packages named in `broken` fail to install; those in
    `fresh` differ from any made before (a random stamp), so no cache can know them."""
    contrib = root / "src" / "contrib"
    contrib.mkdir(parents=True, exist_ok=True)
    work = root.parent / f".{root.name}-build"
    for name, versions in packages.items():
        for i, version in enumerate(versions):
            tarball = build_package(work, name, version, (imports or {}).get(name, ()),
                                    broken=name in broken,
                                    stamp=secrets.token_hex(8) if name in fresh else None)
            newest = i == len(versions) - 1
            target = contrib if newest else contrib / "Archive" / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tarball, target / tarball.name)
    shutil.rmtree(work)
    subprocess.run([ensure_r(), "--vanilla", "-e",
                    'invisible(tools::write_PACKAGES(commandArgs(TRUE)[[1]], type = "source"))',
                    str(contrib)], check=True, capture_output=True, text=True, timeout=120)
    assert (contrib / "PACKAGES").is_file()
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.requests.append(self.path)


@contextmanager
def serve(root: Path, port: int = 0) -> Iterator[tuple[str, list[str]]]:
    """Serve `root` on 127.0.0.1 in a thread (port 0: a free one); yields (URL, the paths
    requested so far, a list the caller may clear)."""
    requests: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="cran-like-repo", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
