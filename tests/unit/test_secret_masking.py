"""Credentials in [proxy] URLs: masked in the build context, the input hash and what the
engine prints; the real settings only as build secrets (files outside the context, named on
the command line by path)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from labfiles import FULL_FILES, FULL_TOML, make_project

from pyrlab import ecosystems
from pyrlab.config.project import Project, load_project
from pyrlab.credentials import Redactor, has_credentials, mask_url
from pyrlab.dockerfile.context import secret_folder
from pyrlab.dockerfile.network import SECRET_DIR, build_secrets, secret_id, step_secrets
from pyrlab.dockerfile.render import render_context
from pyrlab.engines.base import BuildRequest, request_args
from pyrlab.engines.docker import DockerBuildx, DockerClassic
from pyrlab.engines.podman import Podman
from pyrlab.errors import BuildError, ConfigError, EngineError

PROXY = """\
[proxy]
apt = "http://aptuser:apt-S3CRET@apt-cache.internal:3142"
pip_index = "https://__token__:pypi-T0KEN@pypi.internal/simple/"
pip_extra_index = ["https://wheel-T0KEN@wheels.internal/simple/", "https://open.internal/simple/"]
cran = "https://ruser:r%2FS3CRET@cran.internal/cran"
http_proxy = "http://puser:proxy-S3CRET@proxy.internal:3128"
no_proxy = "localhost,127.0.0.1"
"""
PASSWORDS = ("apt-S3CRET", "pypi-T0KEN", "wheel-T0KEN", "r%2FS3CRET", "r/S3CRET",
             "proxy-S3CRET")


def project(tmp_path: Path, proxy: str = PROXY, name: str = "lab") -> Project:
    start = FULL_TOML.index("[proxy]")
    end = FULL_TOML.index("[images.pyrlab-base]")
    toml = FULL_TOML[:start] + proxy + "\n" + FULL_TOML[end:]
    root = make_project(tmp_path / name, {**FULL_FILES, "pyrlab.toml": toml})
    return load_project(root, environ={})


def test_urls_are_masked_keeping_what_names_the_place() -> None:
    assert mask_url("http://user:secret@proxy:3128") == "http://user:***@proxy:3128"
    assert mask_url("https://TOKEN@pypi.example/simple/") == "https://***@pypi.example/simple/"
    assert mask_url("http://u:p%40ss@h/x?y=1") == "http://u:***@h/x?y=1"
    assert mask_url("http://127.0.0.1:3141/root/pypi/+simple/") == \
        "http://127.0.0.1:3141/root/pypi/+simple/"
    assert has_credentials("https://TOKEN@host/") and not has_credentials("https://host/")


def test_the_context_has_every_credential_masked(tmp_path: Path) -> None:
    lab = project(tmp_path)
    for name in lab.order():
        context = render_context(lab, name)
        leaks = [(path, word) for path, (content, _) in context.files.items()
                 for word in PASSWORDS if word.encode() in content]
        assert leaks == [], name
    files = render_context(lab, "rlab").files
    assert b"http://aptuser:***@apt-cache.internal:3142" in files["pyrlab/net/apt/apt-proxy.conf"][0]
    uv = files["pyrlab/net/python/uv.toml"][0].decode()
    assert '"https://__token__:***@pypi.internal/simple/"' in uv
    assert '"https://***@wheels.internal/simple/", "https://open.internal/simple/"' in uv
    assert files["pyrlab/r/repos.txt"][0] == b"https://ruser:***@cran.internal/cran\n"


def test_the_build_secrets_hold_the_real_settings(tmp_path: Path) -> None:
    secrets = build_secrets(project(tmp_path))
    assert sorted(secrets) == ["apt-proxy.conf", "pip.conf", "proxy.env", "repos.txt", "uv.toml"]
    assert b'"http://aptuser:apt-S3CRET@apt-cache.internal:3142"' in secrets["apt-proxy.conf"]
    assert b"index-url = https://__token__:pypi-T0KEN@pypi.internal/simple/" in secrets["pip.conf"]
    assert b"https://wheel-T0KEN@wheels.internal/simple/" in secrets["uv.toml"]
    assert secrets["repos.txt"] == b"https://ruser:r%2FS3CRET@cran.internal/cran\n"
    # The proxy variables in both spellings tools look for, never as build arguments.
    assert secrets["proxy.env"].decode().splitlines() == [
        "HTTP_PROXY=http://puser:proxy-S3CRET@proxy.internal:3128",
        "NO_PROXY=localhost,127.0.0.1",
        "http_proxy=http://puser:proxy-S3CRET@proxy.internal:3128",
        "no_proxy=localhost,127.0.0.1"]
    # Every secret is one that some step mounts.
    assert set(secrets) <= {n for eco in ecosystems.registered()
                            for n in step_secrets(eco.context)}


def test_settings_without_credentials_need_no_secret_but_the_proxy_variables(
        tmp_path: Path) -> None:
    assert build_secrets(project(tmp_path)) != {}
    plain = project(tmp_path, name="plain", proxy='[proxy]\npip_index = "http://devpi:3141/s/"\n')
    assert build_secrets(plain) == {}
    proxied = project(tmp_path, name="proxied",
                      proxy='[proxy]\nhttps_proxy = "http://proxy.internal:3128"\n')
    assert list(build_secrets(proxied)) == ["proxy.env"]


def test_a_new_password_keeps_the_input_hash_a_new_url_does_not(tmp_path: Path) -> None:
    def hashes(proxy: str, name: str) -> dict[str, str]:
        lab = project(tmp_path, proxy, name)
        return {n: render_context(lab, n).input_hash for n in lab.order()}

    before = hashes(PROXY, "before")
    assert hashes(PROXY.replace("S3CRET", "0THER").replace("T0KEN", "T0KEN2"), "pw") == before
    # The proxy variables are not in the context at all: another proxy does not rebuild.
    assert hashes(PROXY.replace("proxy.internal", "proxy2.internal"), "proxy") == before
    assert hashes(PROXY.replace("pypi.internal", "pypi2.internal"), "moved")["pylab"] != \
        before["pylab"]
    assert hashes(PROXY.replace("__token__", "someone"), "user")["pylab"] != before["pylab"]


def test_each_network_step_mounts_the_secrets_it_reads(tmp_path: Path) -> None:
    dockerfile = render_context(project(tmp_path), "rlab").dockerfile
    for step, script in (("python", "uv-install"), ("r", "r-install")):
        run = dockerfile[dockerfile.rindex("RUN ", 0, dockerfile.index(f"/bin/{script}")):
                         dockerfile.index(f"/bin/{script}")]
        for name in step_secrets(ecosystems.named(step).context):
            assert f"--mount=type=secret,id={secret_id(name)},target={SECRET_DIR}/{name}" in run


def test_secrets_are_passed_by_file_on_every_engine(tmp_path: Path) -> None:
    request = BuildRequest(context=tmp_path / "ctx",
                           secrets={"pyrlab-pip.conf": tmp_path / "s" / "pip.conf"})
    expected = ["--secret", f"id=pyrlab-pip.conf,src={tmp_path}/s/pip.conf"]
    for engine in (DockerBuildx("docker"), DockerClassic("docker"), Podman("podman")):
        argv = engine.build_argv(request, tmp_path / "iid")
        at = argv.index("--secret")
        assert argv[at:at + 2] == expected, engine.name
    with pytest.raises(EngineError, match="has a comma"):
        request_args(BuildRequest(context=tmp_path, secrets={"x": Path("/tmp/a,b/x")}))


def test_secret_files_are_private_and_removed_afterwards() -> None:
    with pytest.raises(RuntimeError), secret_folder({"pip.conf": b"[global]\n"}) as folder:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "pip.conf").stat().st_mode) == 0o600
        assert (folder / "pip.conf").read_bytes() == b"[global]\n"
        assert not any(part in os.fspath(folder) for part in (".pyrlab", "build"))
        raise RuntimeError("a failed build")
    assert not folder.exists()


def test_engine_output_is_redacted(tmp_path: Path) -> None:
    redact = Redactor(project(tmp_path).config.proxy.urls())
    line = ("trying URL 'https://ruser:r/S3CRET@cran.internal/cran/src/contrib/PACKAGES' "
            "via http://puser:proxy-S3CRET@proxy.internal:3128 with wheel-T0KEN")
    assert redact(line) == ("trying URL 'https://ruser:***@cran.internal/cran/src/contrib/"
                            "PACKAGES' via http://puser:***@proxy.internal:3128 with ***")
    # Any URL's password, even one not from pyrlab.toml; a short secret only inside URLs.
    short = Redactor(project(tmp_path, '[proxy]\npip_index = "https://u:pw@h/s/"\n', "short")
                     .config.proxy.urls())
    assert short("pip wants https://u:pw@h/s/ and git://me:tok3n@git.example/x") == \
        "pip wants https://u:***@h/s/ and git://me:***@git.example/x"
    assert short("pwd is not masked, nor is http://host:8080/path") == \
        "pwd is not masked, nor is http://host:8080/path"


def test_a_bad_url_is_reported_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        project(tmp_path, '[proxy]\npip_index = "ftp://u:hunter2-S3CRET@h/s/"\n'
                'http_proxy = "http://u:bad$S3CRET@proxy:3128"\n')
    message = str(raised.value)
    assert "S3CRET" not in message
    assert "proxy.pip_index" in message and "'ftp://u:***@h/s/'" in message
    assert "not allowed (in its credentials, shown as ***): 'http://u:***@proxy:3128'" in message


def test_throwaway_containers_get_the_secrets_as_a_mounted_folder_only(tmp_path: Path) -> None:
    """`pyrlab outdated`: uv-resolve in a container of the image reads the real pip.conf and
    uv.toml from a read-only mount (through net-env's net_file); neither its environment
    nor its command line has a credential, and a failure's message is masked."""
    from fakes import FakeEngine

    from pyrlab.contents.model import Inventory, Meta
    from pyrlab.contents.upgradable import upgradable
    from pyrlab.engines.base import RunRequest

    lab = project(tmp_path)
    engine = FakeEngine()
    seen: dict[str, object] = {}

    def run(request: RunRequest) -> str:
        argv = " ".join(engine.run_argv(request))
        secret = next(m for m in request.mounts if m.target == SECRET_DIR)
        seen.update(argv=argv, env=dict(request.env), read_only=secret.read_only,
                    folder=secret.source, pip_conf=(secret.source / "pip.conf").read_bytes(),
                    uv_toml=(secret.source / "uv.toml").read_bytes())
        raise EngineError("pip failed: cannot reach https://__token__:pypi-T0KEN@pypi.internal")

    engine.run = run  # type: ignore[method-assign]
    inventory = Inventory(Meta("pylab", "h", "0", "b", "Debian", "debian", "13", "3.13.5", ""))
    with pytest.raises(BuildError) as raised:
        upgradable(lab, engine, "pylab", "t/pylab:latest", inventory, network_host=False)
    assert "pypi-T0KEN" not in raised.value.message and "__token__:***@" in raised.value.message
    assert b"pypi-T0KEN" in seen["pip_conf"] and seen["read_only"] is True
    assert b"pypi-T0KEN" in seen["uv_toml"]
    assert seen["env"] == {}
    assert not any(word in str(seen["argv"]) for word in PASSWORDS)
    assert not Path(str(seen["folder"])).exists()
