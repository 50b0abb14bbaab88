"""The R installer (src/pyrlab/container/r-install.R) run by the host's R against a tiny
CRAN-like repository on 127.0.0.1: no container engine needed, so the install logic (pins,
the Archive, skipping, the build cache, failure messages) is checked without images. It runs
the host's R for ~20 s, which is why it lives here rather than in tests/unit. The same
script runs inside the images in tests/integration/test_rlab.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import rrepo

INSTALLER = Path(__file__).resolve().parents[2] / "src" / "pyrlab" / "container" / "r-install.R"


@dataclass
class Repo:
    url: str
    requests: list[str]


@pytest.fixture(scope="module")
def rscript() -> str:
    if os.geteuid() != 0 and not rrepo.shutil.which("Rscript"):
        pytest.skip("R is not installed and installing it needs root")
    return rrepo.ensure_r()


@pytest.fixture(scope="module")
def repo(rscript: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    root = rrepo.make_repo(
        tmp_path_factory.mktemp("cran") / "repo",
        {"pyrlabdemo": ["0.1.0", "0.2.0"], "pyrlabdep": ["1.0"], "pyrlabbroken": ["0.1"],
         "pyrlabneedsbroken": ["0.1"]},
        imports={"pyrlabdemo": ["pyrlabdep"], "pyrlabneedsbroken": ["pyrlabbroken"]},
        broken=["pyrlabbroken"],
    )
    with rrepo.serve(root) as (url, requests):
        yield Repo(url, requests)


@dataclass
class Run:
    code: int
    output: str
    lib: Path
    profile: Path


def install(rscript: str, repo: Repo, tmp: Path, entries: str, *, cache: Path | None = None,
            lib: Path | None = None) -> Run:
    lists = tmp / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "cran.txt").write_text(entries)
    (lists / "repos.txt").write_text(repo.url + "\n")
    (lists / "site-repos.txt").write_text(repo.url + "\n")
    lib = lib or tmp / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    profile = tmp / "Rprofile.site"
    env = {**os.environ, "R_LIBS": str(lib), "PYRLAB_R_SITE_PROFILE": str(profile)}
    repo.requests.clear()
    done = subprocess.run([rscript, "--vanilla", str(INSTALLER), str(lists),
                           str(cache or tmp / "cache")],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    return Run(done.returncode, done.stdout + done.stderr, lib, profile)


def installed(run: Run, name: str) -> str | None:
    description = run.lib / name / "DESCRIPTION"
    if not description.is_file():
        return None
    return next(line.split(":", 1)[1].strip() for line in description.read_text().splitlines()
                if line.startswith("Version:"))


def downloads(repo: Repo) -> list[str]:
    return [path for path in repo.requests if path.endswith(".tar.gz")]


def test_installs_with_dependencies_and_points_r_at_the_repository(
        rscript: str, repo: Repo, tmp_path: Path) -> None:
    run = install(rscript, repo, tmp_path, "pyrlabdemo\n")
    assert run.code == 0, run.output
    assert installed(run, "pyrlabdemo") == "0.2.0"
    assert installed(run, "pyrlabdep") == "1.0"  # its Imports, resolved by install.packages
    assert "pyrlab: R packages ready: pyrlabdemo" in run.output
    profile = run.profile.read_text()
    assert f'options(repos = c(CRAN = "{repo.url}"))' in profile
    assert "HTTPUserAgent" not in profile  # only binary (Posit Package Manager) URLs need it
    # A second run changes nothing and downloads nothing; the profile block is replaced.
    again = install(rscript, repo, tmp_path, "pyrlabdemo\n")
    assert again.code == 0, again.output
    assert "pyrlab: pyrlabdemo 0.2.0 is already installed" in again.output
    assert downloads(repo) == []
    assert run.profile.read_text().count("# >>> pyrlab") == 1


def test_a_pin_of_an_older_version_comes_from_the_archive(
        rscript: str, repo: Repo, tmp_path: Path) -> None:
    run = install(rscript, repo, tmp_path, "pyrlabdemo==0.1.0\n")
    assert run.code == 0, run.output
    assert installed(run, "pyrlabdemo") == "0.1.0"
    assert installed(run, "pyrlabdep") == "1.0"  # the archived version's own Imports
    assert "/src/contrib/Archive/pyrlabdemo/pyrlabdemo_0.1.0.tar.gz" in repo.requests
    # A pin of the current version and a minimum that it meets install from src/contrib.
    for entry in ("pyrlabdemo==0.2.0", "pyrlabdemo>=0.2"):
        run = install(rscript, repo, tmp_path / entry, entry + "\n")
        assert run.code == 0, run.output
        assert installed(run, "pyrlabdemo") == "0.2.0"


def test_a_fresh_library_unpacks_what_was_built_before(
        rscript: str, repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = install(rscript, repo, tmp_path / "one", "pyrlabdemo\n", cache=cache)
    assert first.code == 0, first.output
    assert sorted(p.name for p in downloads_dir(cache)) == ["pyrlabdemo_0.2.0.tar.gz",
                                                            "pyrlabdep_1.0.tar.gz"]
    # A rebuilt layer starts from an empty library: nothing is downloaded or compiled again.
    second = install(rscript, repo, tmp_path / "two", "pyrlabdemo\n", cache=cache)
    assert second.code == 0, second.output
    assert "unpacked 2 package(s) built before: pyrlabdemo, pyrlabdep" in second.output
    assert "installing" not in second.output
    assert downloads(repo) == []
    assert installed(second, "pyrlabdemo") == "0.2.0"


def downloads_dir(cache: Path) -> list[Path]:
    return sorted((cache / "src").glob("*.tar.gz"))


def test_unknown_packages_versions_and_pins_fail_together_naming_each(
        rscript: str, repo: Repo, tmp_path: Path) -> None:
    run = install(rscript, repo, tmp_path,
                  "doesnotexist\npyrlabdemo==0.0.9\npyrlabdep>=2.0\n")
    assert run.code == 1
    assert "pyrlab: error: R packages that cannot be installed:" in run.output
    assert (f"doesnotexist: there is no package called 'doesnotexist' in the R repository "
            f"{repo.url}") in run.output
    assert "pyrlabdemo==0.0.9: not in the repository (it has 0.2.0) nor at" in run.output
    assert "pyrlabdep>=2.0: the repository only has 1.0" in run.output
    assert not (run.lib / "pyrlabdep").exists()  # nothing installed when any entry is wrong


def test_a_package_that_fails_to_install_is_named_with_r_s_error(
        rscript: str, repo: Repo, tmp_path: Path) -> None:
    run = install(rscript, repo, tmp_path, "pyrlabneedsbroken\npyrlabdep\n")
    assert run.code == 1
    assert "pyrlab: error: R package 'pyrlabbroken' failed to install" in run.output
    assert "unexpected '{'" in run.output  # R's own parse error, from its install output
    assert ("pyrlab: error: R package 'pyrlabneedsbroken' was not installed: it needs "
            "pyrlabbroken, which failed") in run.output
    last = run.output.strip().splitlines()[-1]
    assert last == "pyrlab: error: R packages failed to install: pyrlabneedsbroken, pyrlabbroken"


def test_an_unreachable_repository_is_reported_as_such(
        rscript: str, repo: Repo, tmp_path: Path) -> None:
    dead = Repo("http://127.0.0.1:9", [])  # discard port: nothing listens
    run = install(rscript, dead, tmp_path, "pyrlabdemo\n")
    assert run.code == 1
    assert "pyrlab: error: cannot read the package index of the R repository http://127.0.0.1:9" \
        in run.output


def test_binary_repositories_get_the_user_agent_they_need(
        rscript: str, repo: Repo, tmp_path: Path) -> None:
    ppm = Repo("https://packagemanager.posit.co/cran/__linux__/trixie/latest", [])
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "repos.txt").write_text(ppm.url + "\n")
    (lists / "site-repos.txt").write_text(ppm.url + "\n")
    (lists / "cran.txt").write_text("")  # nothing to install: only the site profile
    profile = tmp_path / "Rprofile.site"
    profile.write_text("# Debian's own lines stay\n")
    done = subprocess.run([rscript, "--vanilla", str(INSTALLER), str(lists), str(tmp_path / "c")],
                          env={**os.environ, "PYRLAB_R_SITE_PROFILE": str(profile)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    text = profile.read_text()
    assert text.startswith("# Debian's own lines stay\n")
    assert f'options(repos = c(CRAN = "{ppm.url}"))' in text
    assert "options(HTTPUserAgent" in text
    # The profile must be valid R that sets both options.
    code = (f"source({str(profile)!r}); "
            "cat(getOption('repos')[['CRAN']], getOption('HTTPUserAgent'))")
    check = subprocess.run([rscript, "--vanilla", "-e", code],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.stdout.startswith(ppm.url + " R/"), check.stderr


def site_profile(rscript: str, tmp: Path, *, build: str, site: str | None) -> str:
    """The Rprofile.site block r-install.R writes for these repos.txt / site-repos.txt."""
    lists = tmp / "lists"
    lists.mkdir()
    (lists / "repos.txt").write_text(build + "\n")
    if site is not None:
        (lists / "site-repos.txt").write_text(site + "\n")
    (lists / "cran.txt").write_text("")
    profile = tmp / "Rprofile.site"
    done = subprocess.run([rscript, "--vanilla", str(INSTALLER), str(lists), str(tmp / "c")],
                          env={**os.environ, "PYRLAB_R_SITE_PROFILE": str(profile)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return profile.read_text()


def test_a_repository_with_credentials_stays_out_of_the_image(
        rscript: str, tmp_path: Path) -> None:
    # ecosystems/r.py writes no site-repos.txt for it: R in the lab gets R's default repository.
    text = site_profile(rscript, tmp_path, build="https://me:secret@cran.example/", site=None)
    assert "secret" not in text
    assert 'options(repos = c(CRAN = "https://cloud.r-project.org"))' in text


def test_the_lab_user_gets_a_per_image_library_first_in_lib_paths(
        rscript: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    profile = site_profile(rscript, tmp_path, build="https://cran.example", site=None)
    # Outside pytest's tmp_path (0700 for root): another UID must read and write here.
    shared = Path(tempfile.mkdtemp(prefix="pyrlab-rprofile-"))
    request.addfinalizer(lambda: shutil.rmtree(shared))
    shared.chmod(0o755)
    (shared / "Rprofile.site").write_text(profile)
    home = shared / "home"
    home.mkdir()
    home.chmod(0o777)
    code = (f"source({str(shared / 'Rprofile.site')!r}); "
            "cat(.libPaths()[[1]], '\\n')")
    env = {**os.environ, "HOME": str(home), "PYRLAB_IMAGE": "rlab",
           "R_LIBS_USER": "~/.local/share/pyrlab/rlab/R/%v"}
    argv = [rscript, "--vanilla", "-e", code]
    if os.geteuid() == 0:
        # Root builds images and gets no user library; the lab runs as an ordinary UID.
        as_root = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                                 check=False)
        assert as_root.returncode == 0, as_root.stderr
        assert not (home / ".local").exists()
        if not rrepo.shutil.which("setpriv"):
            pytest.skip("running as root without setpriv to become another user")
        argv = ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", *argv]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    version = subprocess.run([rscript, "--vanilla", "-e",
                              "cat(R.version$major, sub('\\\\..*', '', R.version$minor), sep='.')"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    lib = home / ".local" / "share" / "pyrlab" / "rlab" / "R" / version
    assert lib.is_dir()
    assert done.stdout.strip() == str(lib)
