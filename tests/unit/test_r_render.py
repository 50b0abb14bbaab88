"""R in the rendered build contexts: where each r_packages.txt entry goes (Debian binary or
the CRAN-like repository), the R step of the image that installs R, CRAN's Debian
repository for r = "cran" with its shipped signing key, and that key's check."""

from __future__ import annotations

import base64
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from labfiles import make_project

from pyrlab import keys
from pyrlab.config.project import load_project
from pyrlab.dockerfile.network import build_secrets
from pyrlab.dockerfile.render import render_context
from pyrlab.errors import ConfigError

R_TOML = """\
[base]
bootstrap = "trixie"
debs = []

[proxy]
{proxy}

[images.pyrlab-base]

[images.rlab-base]
from = "pyrlab-base"
r = "{r}"

[images.rlab]
from = "rlab-base"
requirements = ["r_requirements.txt"]
r_packages = ["r_packages.txt"]
r_source = "{r_source}"
"""


def r_lab(tmp_path: Path, packages: str, *, r: str = "debian", r_source: str = "cran",
          proxy: str = "") -> Path:
    return make_project(tmp_path / "lab", {
        "pyrlab.toml": R_TOML.format(r=r, r_source=r_source, proxy=proxy),
        "r_requirements.txt": "jupyterlab\n",
        "r_packages.txt": textwrap.dedent(packages),
    })


def files(root: Path, image: str) -> dict[str, str]:
    context = render_context(load_project(root, environ={}), image)
    return {path: content.decode() for path, (content, _) in context.files.items()}


def test_each_entry_goes_to_the_source_it_asks_for_or_the_image_prefers(tmp_path: Path) -> None:
    root = r_lab(tmp_path, """\
        IRkernel
        data.table
        cran:jsonlite
        apt:ggplot2
        cli==3.6.4
        Rcpp>=1.0
    """, r_source="apt")
    rlab = files(root, "rlab")
    # Debian's names are lower case; a version can only come from the R repository.
    assert rlab["pyrlab/r/apt.txt"] == "r-cran-irkernel\nr-cran-data.table\nr-cran-ggplot2\n"
    assert rlab["pyrlab/r/cran.txt"] == "jsonlite\ncli==3.6.4\nRcpp>=1.0\n"


def test_cran_preference_keeps_plain_entries_in_the_r_repository(tmp_path: Path) -> None:
    rlab = files(r_lab(tmp_path, "IRkernel\napt:data.table\n"), "rlab")
    assert rlab["pyrlab/r/apt.txt"] == "r-cran-data.table\n"
    assert rlab["pyrlab/r/cran.txt"] == "IRkernel\n"


def test_the_configured_repository_reaches_r_as_a_file(tmp_path: Path) -> None:
    url = "https://packagemanager.posit.co/cran/__linux__/trixie/latest"
    root = r_lab(tmp_path, "jsonlite\n", proxy=f'cran = "{url}"')
    for image in ("rlab-base", "rlab"):
        context = files(root, image)
        assert context["pyrlab/r/repos.txt"] == url + "\n"
        assert context["pyrlab/r/site-repos.txt"] == url + "\n"  # R in the lab uses it too
        assert url not in context["Dockerfile"]
    # Without [proxy] cran the installer's default (CRAN's cloud mirror) applies.
    assert "pyrlab/r/repos.txt" not in files(r_lab(tmp_path / "plain", "jsonlite\n"), "rlab")


def test_a_repository_with_credentials_is_used_by_the_build_only(tmp_path: Path) -> None:
    url = "https://me:secret@cran.example/cran"
    root = r_lab(tmp_path, "jsonlite\n", proxy=f'cran = "{url}"')
    context = files(root, "rlab")
    # Masked in the context (and the input hash); the real one is a build secret.
    assert context["pyrlab/r/repos.txt"] == "https://me:***@cran.example/cran\n"
    assert build_secrets(load_project(root, environ={}))["repos.txt"] == (url + "\n").encode()
    assert "pyrlab/r/site-repos.txt" not in context  # r-install.R: R's default in the lab


def test_the_image_that_installs_r_configures_it_and_the_next_installs_packages(
        tmp_path: Path) -> None:
    root = r_lab(tmp_path, "jsonlite\n")
    base = files(root, "rlab-base")
    assert base["pyrlab/apt/system.txt"] == "r-base-core\nr-base-dev\n"
    assert "/run/pyrlab/bin/r-install" in base["Dockerfile"]  # site profile + start-up check
    assert base["pyrlab/r/cran.txt"] == ""
    rlab = files(root, "rlab")
    assert "r-base-core" not in rlab.get("pyrlab/apt/system.txt", "")
    dockerfile = rlab["Dockerfile"]
    # The R step comes after the Python one (IRkernel registers with the venv's Jupyter) and
    # mounts the apt caches and the R download/build cache.
    assert dockerfile.index("uv-install") < dockerfile.index("r-install")
    r_step = dockerfile[dockerfile.rindex("RUN ", 0, dockerfile.index("r-install")):]
    assert "id=pyrlab-r,target=/var/cache/pyrlab/r" in r_step
    assert "id=pyrlab-apt-archives" in r_step
    # Images without R have no R step.
    assert "r-install" not in files(root, "pyrlab-base")["Dockerfile"]


def test_r_from_cran_adds_its_debian_repository_with_the_shipped_key(tmp_path: Path) -> None:
    base = files(r_lab(tmp_path, "jsonlite\n", r="cran"), "rlab-base")
    sources = base["pyrlab/apt/sources/pyrlab-cran-debian.sources"]
    assert "URIs: https://cloud.r-project.org/bin/linux/debian\n" in sources
    assert "Suites: @VERSION_CODENAME@-cran40/\n" in sources  # apt-install fills the release
    assert "Signed-By: /etc/apt/keyrings/pyrlab-cran-debian.asc\n" in sources
    shipped = keys.load_key(keys.CRAN_DEBIAN, "test")
    if shipped is None:
        # Never fetched at build time: the build stops at once with this message.
        message = base["pyrlab/apt/sources/pyrlab-cran-debian.missing-key"]
        assert keys.CRAN_DEBIAN.fingerprint in message
        assert "pyrlab/keys/cran-debian.asc" in message
        assert "pyrlab/apt/sources/pyrlab-cran-debian.asc" not in base
    else:
        assert base["pyrlab/apt/sources/pyrlab-cran-debian.asc"].encode() == shipped
    assert not any("sources/" in p for p in files(r_lab(tmp_path / "d", "x1\n"), "rlab-base"))


def test_apt_install_refuses_a_repository_without_its_key() -> None:
    script = (Path(keys.__file__).parents[1] / "container" / "apt-install").read_text()
    assert '*.missing-key) echo "pyrlab: error: $(cat "$f")" >&2; exit 1 ;;' in script


# --------------------------------------------------------------------------- the key check


def armour(binary: bytes) -> bytes:
    body = base64.b64encode(binary).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + "\n".join(lines)
            + "\n=AAAA\n-----END PGP PUBLIC KEY BLOCK-----\n").encode()


def gpg_fingerprints(keyring: Path) -> list[str]:
    gpg = shutil.which("gpg")
    if gpg is None:
        pytest.skip("gpg is not installed")
    out = subprocess.run([gpg, "--batch", "--with-colons", "--show-keys", str(keyring)],
                         capture_output=True, text=True, check=True).stdout
    fields = [line.split(":") for line in out.splitlines()]
    primary_ids = [f[4] for f in fields if f[0] == "pub"]
    fingerprints = [f[9] for f in fields if f[0] == "fpr"]
    # A primary key's fingerprint ends with its key ID (the others are subkeys').
    return [next(fp for fp in fingerprints if fp.endswith(key_id)) for key_id in primary_ids]


def test_fingerprints_match_gpg_on_real_keys() -> None:
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if not keyring.is_file():
        pytest.skip("no Debian archive keyring on this host")
    expected = gpg_fingerprints(keyring)
    assert expected
    assert keys.primary_fingerprints(armour(keyring.read_bytes())) == expected


def test_a_key_file_that_is_not_the_expected_key_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if not keyring.is_file():
        pytest.skip("no Debian archive keyring on this host")
    (tmp_path / "cran-debian.asc").write_bytes(armour(keyring.read_bytes()))
    monkeypatch.setattr(keys.resources, "files", lambda package: tmp_path)
    with pytest.raises(ConfigError) as caught:
        keys.load_key(keys.CRAN_DEBIAN, "pyrlab.toml: images.rlab-base.r")
    message = str(caught.value)
    assert message.startswith("pyrlab.toml: images.rlab-base.r: ")
    assert f"expected fingerprint {keys.CRAN_DEBIAN.fingerprint}" in message
    (tmp_path / "cran-debian.asc").write_text("not a key\n")
    with pytest.raises(ConfigError, match="is not an OpenPGP key"):
        keys.load_key(keys.CRAN_DEBIAN, "here")


def test_a_missing_key_file_is_reported_as_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys.resources, "files", lambda package: tmp_path)
    assert keys.load_key(keys.CRAN_DEBIAN, "here") is None
