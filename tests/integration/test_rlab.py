"""R labs end to end, through the real `pyrlab build` / `up` / `down`.

One lab project (cases/rlab) is built once for the module on the session's bootstrapped
trixie base: R from Debian, IRkernel and small packages as Debian binaries (r-cran-*), and
packages from a CRAN-like repository that the test writes with `R CMD build` +
`tools::write_PACKAGES` and serves on 127.0.0.1 (one pinned to an archived version). Then:
every package is in the image at the wanted version, an R kernel runs code through the
lab's server, pyrlab.lock's R section is what R itself reports in the image, adding one
package installs only that one, and a bad entry fails the build, naming it, without moving
`latest`.

Everything that goes into the build contexts is the same in every session (fixed prefix,
base name, repository port, reproducible package tarballs): BuildKit reuses the files of a
context folder of the same name whose files have the same sizes and mtimes, so contexts
that differ only in a random value of equal length would build from stale files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import rrepo
from labclient import LabClient
from labtools import EngineCli, free_port, named, new_prefix, project_key

from pyrlab.contents.lockfile import read_lock

pytestmark = pytest.mark.integration

ENGINE = "docker"
CASE = Path(__file__).parent / "cases" / "rlab"
PREFIX = new_prefix()  # this module's images
RLAB = f"{PREFIX}rlab:latest"
LAB_PORT = free_port()
# As root the lab runs as a UID/GID that is nobody's default; otherwise as the caller.
UID, GID = (4242, 4343) if os.geteuid() == 0 else (os.getuid(), os.getgid())
# What r_packages.txt lists, as R names: every one must load in the kernel.
R_PACKAGES = ["IRkernel", "jsonlite", "digest", "pyrlabdep", "pyrlabdemo"]
REPO = {"pyrlabdemo": ["0.1.0", "0.2.0"], "pyrlabdep": ["1.0"], "pyrlabextra": ["0.3"]}
IMPORTS = {"pyrlabdemo": ["pyrlabdep"]}
# Every package R finds outside its base set (Priority "base" comes with R itself), the one
# R loads of each name (find.package: the first library in .libPaths() that has it), with
# the version in that copy's DESCRIPTION and its folder.
R_INSTALLED = r"""ip <- installed.packages(noCache = TRUE)
names <- unique(ip[is.na(ip[, "Priority"]) | ip[, "Priority"] != "base", "Package"])
for (p in names) {
  path <- find.package(p)
  cat(p, read.dcf(file.path(path, "DESCRIPTION"), fields = "Version")[1, 1], path, "\n",
      sep = "\t")
}"""



@dataclass
class RLab:
    root: Path
    engine: EngineCli
    repo_url: str
    requests: list[str]  # paths asked of the repository (cleared by the tests)

    def pyrlab(self, command: str, *args: str,
               timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PYRLAB_") or k == "PYRLAB_USER_CONFIG"}
        return subprocess.run([sys.executable, "-m", "pyrlab", command, "-C", str(self.root),
                               *args], capture_output=True, text=True, timeout=timeout,
                              check=False, env=env)

    def build(self) -> subprocess.CompletedProcess[str]:
        return self.pyrlab("build", "rlab", "--engine", ENGINE)

    def image_id(self) -> str | None:
        return self.engine.image_id(RLAB)  # type: ignore[no-any-return]

    def r(self, code: str) -> subprocess.CompletedProcess[str]:
        """Rscript in a throwaway rlab container, as the lab's user, without a network."""
        return self.engine("run", "--rm", "--user", f"{UID}:{GID}", "--env",
                           "HOME=/home/notebook", "--network", "none", RLAB,
                           "Rscript", "-e", code, check=False)  # type: ignore[no-any-return]

    def last_log(self) -> str:
        logs = sorted((self.root / ".pyrlab" / "logs").glob("rlab-[0-9]*.log"))  # not rlab-base
        return logs[-1].read_text() if logs else ""


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    assert "@" not in text.replace("tests@example", ""), text
    return text


@pytest.fixture(scope="module")
def rlab(get_engine: Callable[[str], EngineCli], bootstrapped_bases: Callable[[str], str],
         host_ca_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RLab]:
    engine = get_engine(ENGINE)  # fails in CI (skips elsewhere) without an engine
    base = bootstrapped_bases(ENGINE)
    tmp = tmp_path_factory.mktemp("rlab")
    root = tmp / "lab"
    shutil.copytree(CASE, root)
    # Notebooks and home in the project folder (outside it: --allow-unsafe or a user file).
    work = root / "work"
    for folder in (work, work / "notebooks", work / "home"):
        folder.mkdir()
        os.chown(folder, UID, GID)
    # pyrlabextra is new in every session: the test of adding it must really install it.
    repo = rrepo.make_repo(tmp / "cran", REPO, imports=IMPORTS, fresh=["pyrlabextra"])
    with rrepo.serve(repo) as (url, requests):
        config = root / "pyrlab.toml"
        config.write_text(named(fill(config.read_text(), {
            "PREFIX": PREFIX, "LAB_PORT": str(LAB_PORT), "BASE_IMAGE": base, "CA_FILES": json.dumps([str(p) for p in host_ca_files]),
            "CRAN_URL": url, "WORK": str(work), "UID": str(UID), "GID": str(GID)}), PREFIX))
        lab = RLab(root, engine, url, requests)
        try:
            started = time.monotonic()
            done = lab.build()
            assert done.returncode == 0, done.stdout + done.stderr
            print(f"\nrlab and its ancestors built in {time.monotonic() - started:.0f} s")
            yield lab
        finally:
            lab.pyrlab("down", "--all", timeout=300)
            engine.remove_project(project_key(root), PREFIX)


def test_every_listed_package_is_installed_at_the_wanted_version(rlab: RLab) -> None:
    listed = ", ".join(f'"{p}"' for p in R_PACKAGES)
    versions = rlab.r(f'for (p in c({listed})) cat(p, format(packageVersion(p)), "\\n")')
    assert versions.returncode == 0, versions.stderr
    found = dict(line.split() for line in versions.stdout.strip().splitlines())
    assert set(found) == set(R_PACKAGES)
    assert found["pyrlabdemo"] == "0.1.0"  # the pin: an archived version
    assert found["pyrlabdep"] == "1.0"
    # R starts silently (no locale warning), knows the configured repository; Debian's
    # packages are Debian's, the repository's live in /usr/local.
    where = rlab.r('cat(getOption("repos")[["CRAN"]], find.package("jsonlite"), '
                   'find.package("pyrlabdemo"), sep = "\\n")')
    assert where.returncode == 0
    assert where.stderr == ""
    assert where.stdout.split() == [rlab.repo_url, "/usr/lib/R/site-library/jsonlite",
                                    "/usr/local/lib/R/site-library/pyrlabdemo"]
    # [base] locale = "en_US.UTF-8": generated at build time and R's own (no warning above).
    here = rlab.r('cat(Sys.getlocale("LC_CTYPE"), Sys.getlocale("LC_COLLATE"), sep = "\\n")')
    assert here.stderr == ""
    assert here.stdout.split("\n")[:2] == ["en_US.UTF-8", "en_US.UTF-8"]


def installed_r_packages(rlab: RLab) -> dict[str, tuple[str, str]]:
    """name → (version, folder) of every package R in the rlab image sees, base set left out."""
    done = rlab.r(R_INSTALLED)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines() if line]
    assert rows and all(len(row) == 4 and row[3] == "" for row in rows), done.stdout
    return {name: (version, folder) for name, version, folder, _ in rows}


def dpkg_owners(rlab: RLab, paths: list[str]) -> dict[str, str]:
    """path → the Debian package that installed it, as `dpkg -S` says (a path no package
    owns is left out: dpkg -S names it on stderr and exits 1)."""
    done = rlab.engine("run", "--rm", "--network", "none", "--entrypoint", "dpkg", RLAB,
                       "-S", *paths, check=False)
    owners: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("diversion "):
            continue
        package, _, path = line.rpartition(": ")
        owners[path] = package.split(":")[0]  # a package:arch keeps only its name
    assert set(owners) <= set(paths), done.stdout
    return owners


def test_the_lock_lists_exactly_the_r_packages_r_reports(rlab: RLab) -> None:
    installed = installed_r_packages(rlab)
    # The image really has all three kinds: Debian's, the repository's, a pinned one.
    assert set(R_PACKAGES) <= set(installed)
    descriptions = {name: f"{folder}/DESCRIPTION" for name, (_, folder) in installed.items()}
    owners = dpkg_owners(rlab, sorted(descriptions.values()))
    from_debian = {name for name, path in descriptions.items()
                   if owners.get(path, "").startswith("r-cran-")}
    assert {"IRkernel", "jsonlite", "digest"} <= from_debian
    assert not {"pyrlabdep", "pyrlabdemo"} & from_debian
    pinned = {entry.removeprefix("cran:").split("==")[0]
              for entry in (rlab.root / "r_packages.txt").read_text().split()
              if entry.startswith("cran:") and "==" in entry}
    assert pinned == {"pyrlabdemo"}

    section = read_lock(rlab.root / "pyrlab.lock")["rlab"]
    locked = {p.name: (p.version, p.source) for p in section.packages("r")}
    assert len(locked) == len(section.packages("r"))  # one line per name
    expected = {name: (version, "debian" if name in from_debian
                       else "archive" if name in pinned else "cran")
                for name, (version, _) in installed.items()}
    missing = sorted(set(expected) - set(locked))
    extra = sorted(set(locked) - set(expected))
    assert (missing, extra) == ([], []), f"missing from the lock: {missing}; extra: {extra}"
    assert {name: locked[name] for name in expected} == expected
    r_version = rlab.r('cat(R.version$major, R.version$minor, sep = ".")')
    assert section.meta.r == r_version.stdout.strip()


def test_why_follows_the_r_packages_dependencies_from_the_lists(rlab: RLab) -> None:
    # r_packages.txt: IRkernel (line 2) imports jsonlite (line 3); pyrlabdemo (line 7),
    # from the test's repository, imports pyrlabdep (line 6).
    described = rlab.r('cat(packageDescription("IRkernel")$Imports)')
    assert described.returncode == 0, described.stderr
    item = next(i for i in described.stdout.split(",") if i.strip().startswith("jsonlite"))
    bound = re.fullmatch(r"\s*jsonlite\s*\(\s*([<>=]+)\s*(\S+?)\s*\)\s*", item)
    assert bound, item  # Debian's IRkernel asks for a minimum jsonlite
    done = rlab.pyrlab("why", "jsonlite", "--image", "rlab", "--json", "--engine", ENGINE)
    assert done.returncode == 0, done.stderr
    [answer] = json.loads(done.stdout)["images"]
    assert answer["ecosystem"] == "r"
    pulls = {p["where"]: [step["name"] for step in p["chain"]] for p in answer["pulls"]}
    assert pulls["r_packages.txt:3"] == ["jsonlite"]
    assert pulls["r_packages.txt:2"] == ["IRkernel", "jsonlite"]
    assert any(b["by"].startswith("IRkernel ") and b["verb"] == "imports"
               and b["requirement"] == f"jsonlite ({bound[1]} {bound[2]})" and b["satisfied"]
               for b in answer["bounds"]), answer["bounds"]
    text = rlab.pyrlab("why", "pyrlabdep", "--image", "rlab", "--engine", ENGINE)
    assert text.returncode == 0, text.stderr
    assert "R package pyrlabdep 1.0 in rlab" in text.stdout
    assert "r_packages.txt:6  pyrlabdep (listed)" in text.stdout
    assert "r_packages.txt:7  pyrlabdemo 0.1.0 → pyrlabdep 1.0" in text.stdout
    assert "required without a bound by: r_packages.txt:6, pyrlabdemo 0.1.0" in text.stdout


def test_r_trusts_the_configured_ca_files(rlab: RLab, host_ca_files: list[Path]) -> None:
    # R downloads through libcurl, which reads the bundle CURL_CA_BUNDLE names.
    bundle = rlab.r('cat(readLines(Sys.getenv("CURL_CA_BUNDLE")), sep = "\n")')
    assert bundle.returncode == 0, bundle.stderr
    for ca in host_ca_files:
        body = "".join(line for line in ca.read_text().splitlines() if "-----" not in line)
        assert body[:200] in "".join(bundle.stdout.splitlines()), ca


def test_the_image_keeps_no_r_download_or_build_cache(rlab: RLab) -> None:
    done = rlab.engine("run", "--rm", RLAB, "find", "/var/cache/pyrlab/r", "-mindepth", "1")
    assert done.stdout.strip() == ""


def test_an_r_kernel_runs_code_through_the_lab(rlab: RLab) -> None:
    up = rlab.pyrlab("up", "rlab", "--no-build", "--json", timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        url = urlsplit(json.loads(up.stdout)["url"])
        assert url.port == LAB_PORT
        client = LabClient(f"http://127.0.0.1:{url.port}", parse_qs(url.query)["token"][0])
        client.wait_ready(timeout=120)
        assert "ir" in client.kernelspecs()
        with client.kernel("ir") as kernel:
            loaded = kernel.execute(
                "".join(f"library({p}); " for p in R_PACKAGES) + 'cat("loaded\\n")',
                timeout=180)
            assert loaded.ok, loaded.describe()
            assert loaded.stdout == "loaded\n"
            # IRkernel shows values as display_data (text/plain among others).
            total = kernel.execute("sum(1:10)")
            assert total.ok, total.describe()
            assert total.display == ["[1] 55"]
            hello = kernel.execute("pyrlabdemo::hello()")
            assert hello.display == ['[1] "hello from pyrlabdemo 0.1.0"']
            failing = kernel.execute('stop("on purpose")')
            assert not failing.ok
            assert "on purpose" in failing.describe()
    finally:
        down = rlab.pyrlab("down", "rlab", timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr


def test_adding_one_package_installs_only_that_one(rlab: RLab) -> None:
    packages = rlab.root / "r_packages.txt"
    previous = rlab.image_id()
    packages.write_text(packages.read_text() + "cran:pyrlabextra\n")
    rlab.requests.clear()
    done = rlab.build()
    assert done.returncode == 0, done.stdout + done.stderr
    log = rlab.last_log()
    print("\nrlab rebuilt after adding one R package:\n"
          + "\n".join(line for line in log.splitlines() if "pyrlab: " in line))
    # Only the new package was fetched and compiled: the others were kept from the
    # previous image or unpacked from the build cache. (With PYRLAB_TEST_KEEP_BASE=1 an
    # earlier session may have built this very layer: then the engine reuses it whole.)
    if "pyrlab: R packages ready" in log:
        assert [p for p in rlab.requests if p.endswith(".tar.gz")] == \
            ["/src/contrib/pyrlabextra_0.3.tar.gz"], log
        assert "installing *source* package ‘pyrlabextra’" in log
        for other in ("pyrlabdemo", "pyrlabdep"):
            assert f"installing *source* package ‘{other}’" not in log
    else:
        assert os.environ.get("PYRLAB_TEST_KEEP_BASE") == "1", log
    now = rlab.r('cat(format(packageVersion("pyrlabextra")), '
                 'format(packageVersion("pyrlabdemo")))')
    assert now.stdout.split() == ["0.3", "0.1.0"], now.stderr
    assert rlab.image_id() != previous


@pytest.mark.parametrize(("entry", "named"), [
    ("cran:doesnotexist", "there is no package called 'doesnotexist'"),
    ("apt:doesnotexist", "r-cran-doesnotexist"),
])
def test_a_bad_entry_fails_the_build_naming_it_and_keeps_latest(
        rlab: RLab, entry: str, named: str) -> None:
    packages = rlab.root / "r_packages.txt"
    before = packages.read_text()
    latest = rlab.image_id()
    assert latest
    packages.write_text(before + entry + "\n")
    try:
        done = rlab.build()
    finally:
        packages.write_text(before)
    assert done.returncode == 5, done.stdout + done.stderr  # a build failed
    assert named in done.stderr, done.stderr
    assert "no tag was changed" in done.stderr
    assert rlab.image_id() == latest


def test_locked_installs_the_locked_r_versions_or_fails_naming_them(rlab: RLab) -> None:
    """`build --locked` for R packages of the repository: an image that holds its lock is
    left alone; a loosened list line gets the locked (archived) version, checked against
    the lock before the tag moves; a locked version the repository has nowhere fails the
    build naming it, and latest stays."""
    lock, packages = rlab.root / "pyrlab.lock", rlab.root / "r_packages.txt"
    good_lock, good_list = lock.read_text(), packages.read_text()
    try:
        done = rlab.pyrlab("build", "--locked", "--json", "rlab")
        assert done.returncode == 0, done.stderr
        assert {i["name"]: i["action"] for i in json.loads(done.stdout)["images"]} == {
            "pyrlab-base": "skipped", "rlab-base": "skipped", "rlab": "skipped"}

        packages.write_text(good_list.replace("cran:pyrlabdemo==0.1.0", "cran:pyrlabdemo"))
        assert "pyrlabdemo==0.1.0" not in packages.read_text()
        done = rlab.pyrlab("build", "--locked", "--json", "rlab")
        assert done.returncode == 0, done.stderr
        assert {i["name"]: i["action"] for i in json.loads(done.stdout)["images"]}["rlab"] \
            == "built"
        now = rlab.r('cat(format(packageVersion("pyrlabdemo")))')
        assert now.stdout == "0.1.0", now.stderr  # the repository's current one is 0.2.0
        latest = rlab.image_id()

        lock.write_text(re.sub(r'^pyrlabdemo = "0\.1\.0 ', 'pyrlabdemo = "0.0.9 ',
                               lock.read_text(), flags=re.MULTILINE))
        assert '"0.0.9 ' in lock.read_text()
        done = rlab.pyrlab("build", "--locked", "rlab")
        assert done.returncode == 5, done.stdout + done.stderr
        assert "pyrlabdemo==0.0.9: not in the repository (it has 0.2.0)" in done.stderr
        assert rlab.image_id() == latest
    finally:
        lock.write_text(good_lock)
        packages.write_text(good_list)
