"""Credentials in [proxy] URLs are used at build time only, for real (Docker and Podman,
each building the lab once for the module's tests): a package
index on 127.0.0.1 that answers 401 without HTTP basic auth, and an HTTP proxy that answers
407 without its own, both given with credentials in pyrlab.toml. The build succeeds (the
credentials reached the installer), and neither password is anywhere a user or a registry
could see it: the image's layers, its history and configuration, pyrlab's logs, build
folders, lock file and DEBUG output, `pyrlab render`'s files.
"""

from __future__ import annotations

import base64
import gzip
import http.server
import io
import json
import secrets
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from labtools import EngineCli, Lab, make_wheel, run_pyrlab, serving

pytestmark = pytest.mark.integration

PROJECT = "pyrlab-secret-probe"
MODULE = "pyrlab_secret_probe"


@dataclass
class AuthIndex:
    """A simple index (PEP 503) of one wheel that wants `user:password` (Authorization),
    and is also an HTTP proxy for itself that wants `proxy_user:proxy_password`
    (Proxy-Authorization on absolute-form requests)."""

    folder: Path
    wheel: str
    password: str = field(default_factory=lambda: f"S3CRET-{secrets.token_hex(8)}")
    proxy_password: str = field(default_factory=lambda: f"PR0XY-{secrets.token_hex(8)}")
    port: int = 0
    seen: list[str] = field(default_factory=list)  # "index PATH" / "proxy PATH", authorized
    refused: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://user:{self.password}@127.0.0.1:{self.port}/simple/"

    @property
    def proxy_url(self) -> str:
        return f"http://puser:{self.proxy_password}@127.0.0.1:{self.port}"

    def words(self) -> list[bytes]:
        return [self.password.encode(), self.proxy_password.encode()]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, engine: EngineCli) -> Iterator[AuthIndex]:
    """A fresh index (new passwords, nothing seen yet) for each engine's lab."""
    folder = tmp_path_factory.mktemp("auth-index")
    wheel = make_wheel(folder, MODULE, "1.0", {f"{MODULE}.py": "ANSWER = 42\n"})
    state = AuthIndex(folder, wheel)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.answer(body_too=True)

        def do_HEAD(self) -> None:  # uv asks before it downloads a wheel
            self.answer(body_too=False)

        def answer(self, *, body_too: bool) -> None:
            path = self.path
            if path.startswith("http://"):  # absolute form: we are the proxy
                if self.headers.get("Proxy-Authorization") != basic("puser",
                                                                     state.proxy_password):
                    state.refused.append(f"proxy {path}")
                    self.send_response(407)
                    self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
                    self.end_headers()
                    return
                path = urlsplit(path).path
                state.seen.append(f"proxy {path}")
            if self.headers.get("Authorization") != basic("user", state.password):
                state.refused.append(f"index {path}")
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.end_headers()
                return
            state.seen.append(f"index {path}")
            if path.rstrip("/") == f"/simple/{PROJECT}":
                body = f'<a href="/files/{state.wheel}">{state.wheel}</a>\n'.encode()
                kind = "text/html"
            elif path == f"/files/{state.wheel}":
                body, kind = (folder / state.wheel).read_bytes(), "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body_too:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as state.port:
        yield state


@dataclass
class Built:
    lab: Lab
    outputs: list[str]  # stdout + stderr of every pyrlab command, PYRLAB_LOG_LEVEL=DEBUG
    tmp: Path  # the TMPDIR pyrlab ran with


def run(lab: Lab, tmp: Path, outputs: list[str], command: str, *args: str) -> str:
    """`pyrlab COMMAND -C LAB ARGS…` with PYRLAB_LOG_LEVEL=DEBUG (every engine command it
    runs on stderr) and TMPDIR=tmp; its output is kept in outputs."""
    engine = ["--engine", lab.engine_name] if command in ("build", "outdated") else []
    done = run_pyrlab(command, "-C", str(lab.root), *engine, *args, timeout=1200,
                      env={"PYRLAB_LOG_LEVEL": "DEBUG", "TMPDIR": str(tmp)})
    outputs.append(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module", params=["docker", "podman"])
def engine(request: pytest.FixtureRequest, get_engine: Callable[[str], EngineCli]) -> EngineCli:
    return get_engine(str(request.param))


@pytest.fixture(scope="module")
def built(make_module_lab: Callable[..., Lab], engine: EngineCli, index: AuthIndex,
          tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The lab built in two steps: the base without the HTTP proxy (apt would go through
    it), then pylab with it, so uv reaches the index through the proxy with both passwords;
    then `outdated`, which asks pip in a throwaway container of pylab, and `render`."""
    lab = make_module_lab("secrets", engine.name, name=f"secrets-{engine.name}",
                          INDEX=index.url)
    tmp = tmp_path_factory.mktemp("tmpdir")
    outputs: list[str] = []
    run(lab, tmp, outputs, "build", "--json", "pyrlab-base")
    config = lab.root / "pyrlab.toml"
    config.write_text(config.read_text().replace(
        "[proxy]\n", f'[proxy]\nhttp_proxy = "{index.proxy_url}"\n', 1))
    run(lab, tmp, outputs, "build", "--json")
    return Built(lab, outputs, tmp)


def test_the_credentials_reach_the_installer(built: Built, engine: EngineCli,
                                             index: AuthIndex) -> None:
    # uv fetched the project page and the wheel through the proxy, with both passwords.
    assert f"proxy /simple/{PROJECT}/" in index.seen, (index.seen, index.refused)
    assert f"index /files/{index.wheel}" in index.seen, (index.seen, index.refused)
    done = engine("run", "--rm", "--network", "none", built.lab.ref("pylab"),
                  "python", "-c", f"import {MODULE}; print({MODULE}.ANSWER)")
    assert done.stdout.strip() == "42"
    # The temporary folder of secret files went with the build.
    assert list(built.tmp.glob("pyrlab-secrets-*")) == []
    debug = "\n".join(built.outputs)
    assert "--secret id=pyrlab-pip.conf,src=" in debug  # the engine's argv, DEBUG


def test_a_changed_password_does_not_rebuild(built: Built, index: AuthIndex) -> None:
    config = built.lab.root / "pyrlab.toml"
    text = config.read_text()
    config.write_text(text.replace(index.password, "another-password"))
    try:
        result = json.loads(run(built.lab, built.tmp, built.outputs, "build", "--json",
                                "--no-test"))
    finally:
        config.write_text(text)
    assert {i["name"]: i["action"] for i in result["images"]} == {
        "pyrlab-base": "skipped", "pylab": "skipped"}


def test_outdated_asks_the_index_with_the_credentials(built: Built, index: AuthIndex) -> None:
    before = len(index.seen)
    run(built.lab, built.tmp, built.outputs, "outdated", "--json", "pylab")
    assert f"index /simple/{PROJECT}/" in index.seen[before:], (index.seen, index.refused)


def _search(data: bytes, words: list[bytes], where: str) -> list[str]:
    """Where in data (a tar's members, nested tars and gzip streams opened) a word is."""
    found = [f"{where}: {w.decode()}" for w in words if w in data]
    if data[:2] == b"\x1f\x8b":
        return found + _search(gzip.decompress(data), words, f"{where} (gunzipped)")
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    found += _search(extracted.read(), words, f"{where}/{member.name}")
    except tarfile.TarError:
        pass
    return found


def test_no_password_is_anywhere_a_user_can_see(built: Built, engine: EngineCli,
                                                index: AuthIndex, tmp_path: Path) -> None:
    words = index.words()
    lab = built.lab
    found: list[str] = []
    for image in ("pyrlab-base", "pylab"):
        ref = lab.ref(image)
        saved = tmp_path / f"{image}.tar"
        engine("save", "--output", str(saved), ref)
        found += _search(saved.read_bytes(), words, f"{engine.name} save {ref}")
        saved.unlink()
        history = engine("history", "--no-trunc", ref).stdout.encode()
        found += _search(history, words, f"{engine.name} history {ref}")
        found += _search(engine("image", "inspect", ref).stdout.encode(), words,
                         f"{engine.name} inspect {ref}")
    # pyrlab.lock, .pyrlab/ (logs, build folders) and whatever else pyrlab wrote.
    run(lab, built.tmp, built.outputs, "render", "-o", str(tmp_path / "rendered"))
    for root in (lab.root, tmp_path / "rendered"):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.name != "pyrlab.toml":
                found += _search(path.read_bytes(), words, str(path.relative_to(root.parent)))
    for n, output in enumerate(built.outputs):
        found += _search(output.encode(), words, f"output of pyrlab command {n + 1} (DEBUG)")
    assert found == []
    assert (lab.root / ".pyrlab" / "logs").is_dir() and (lab.root / "pyrlab.lock").is_file()
    # What they show instead: the URL masked.
    pip_conf = (tmp_path / "rendered" / "pylab" / "pyrlab" / "net" / "python" / "pip.conf")
    assert f"user:***@127.0.0.1:{index.port}/simple/" in pip_conf.read_text()
