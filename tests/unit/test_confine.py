"""A project folder may come from someone else: every file it names must lie inside it
(after symlinks), and a file outside is refused without being opened. CA files are the one
exception, and they must hold nothing but certificates."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from labfiles import PEM, init_lab, write

from pyrlab import ecosystems
from pyrlab.cli import main
from pyrlab.config.confine import der_to_pem, pem_certificates
from pyrlab.config.lists import parse_lists
from pyrlab.config.project import load_project
from pyrlab.errors import ConfigError

T = TypeVar("T")

# Every file Python opens while a test watches (sys.addaudithook cannot be removed, so the
# hook records only while `_watching` holds a list).
_watching: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _watching and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _watching[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened() -> Iterator[list[str]]:
    seen: list[str] = []
    _watching.append(seen)
    yield seen
    _watching.remove(seen)


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    return init_lab(tmp_path / "lab")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the project whose content must never be read."""
    return write(tmp_path, "outside/secret.txt", "leaked-package\n")


def problems(lab: Path, *sets: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_project(lab, environ={}, sets=sets)
    return [str(p) for p in caught.value.problems]


def under(paths: list[str], folder: Path) -> list[str]:
    return [p for p in paths if Path(p).resolve().is_relative_to(folder.resolve())]


# --------------------------------------------------------------------------- includes


def test_include_outside_through_dotdot_is_refused_unopened(
        lab: Path, secret: Path, opened: list[str]) -> None:
    write(lab, "requirements.txt", "jupyterlab\n-r ../outside/secret.txt\n")
    assert problems(lab) == [
        ("requirements.txt:2: cannot include '../outside/secret.txt': it lies outside the "
        f"project folder {lab} (it resolves to {secret}); included files must be inside the "
        "project folder")]
    assert under(opened, secret.parent) == []


def test_include_of_an_absolute_path_is_refused_unopened(
        lab: Path, secret: Path, opened: list[str]) -> None:
    write(lab, "requirements.txt", f"jupyterlab\n--requirement={secret}\n")
    (message,) = problems(lab)
    assert message.startswith(f"requirements.txt:2: cannot include '{secret}': it lies "
                              f"outside the project folder {lab}")
    assert under(opened, secret.parent) == []


def test_include_through_a_symlink_that_points_out_is_refused(
        lab: Path, secret: Path, opened: list[str]) -> None:
    (lab / "more.txt").symlink_to(secret)
    write(lab, "requirements.txt", "jupyterlab\n-r more.txt\n")
    (message,) = problems(lab)
    assert message.startswith("requirements.txt:2: cannot include 'more.txt': it lies outside")
    assert f"(it resolves to {secret})" in message
    assert under(opened, secret.parent) == []


def test_an_include_inside_through_dotdot_still_works(lab: Path) -> None:
    write(lab, "lists/requirements.txt", "-r ../shared.txt\n")
    write(lab, "shared.txt", "httpx\n")
    project = load_project(lab, environ={}, sets=(
        'images.pylab.requirements=["lists/requirements.txt"]',))
    assert [e.name for e in project.lists["pylab"].of("python")] == ["httpx"]


def without_opening(fifo: Path, work: Callable[[], T]) -> T:
    """`work()`, failing (not hanging) if it opens `fifo`: opening a FIFO for reading
    blocks until someone writes, so a reader that opened it would hang."""
    result: list[T] = []
    reader = threading.Thread(target=lambda: result.append(work()), daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # unblock it, then fail
        with open(fifo, "w") as out:
            out.write("from-the-fifo\n")
        reader.join(timeout=10)
        pytest.fail(f"{fifo} was opened")
    return result[0]


def test_a_fifo_outside_is_never_opened(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    fifo = tmp_path / "outside.fifo"
    os.mkfifo(fifo)
    write(root, "requirements.txt", "-r ../outside.fifo\n")
    parsed = without_opening(fifo, lambda: parse_lists(
        [root / "requirements.txt"], ecosystems.named("python"), root=root))
    assert [str(p) for p in parsed.problems] == [
        (f"requirements.txt:1: cannot include '../outside.fifo': it lies outside the project "
        f"folder {root} (it resolves to {fifo}); included files must be inside the project "
        "folder")]


def test_a_fifo_inside_is_not_read_either(lab: Path) -> None:
    os.mkfifo(lab / "pipe.txt")
    write(lab, "requirements.txt", "-r pipe.txt\n")
    assert without_opening(lab / "pipe.txt", lambda: problems(lab)) == [
        "requirements.txt:1: cannot read included file 'pipe.txt': not a regular file"]


def test_constraint_files_are_refused_without_being_opened(
        lab: Path, secret: Path, opened: list[str]) -> None:
    write(lab, "requirements.txt", f"-c {secret}\n")
    assert problems(lab) == [("requirements.txt:1: option '-c' is not allowed in a list "
                             "(constraint files are not supported)")]
    assert under(opened, secret.parent) == []


# --------------------------------------------------------------------------- list keys


@pytest.mark.parametrize(("key", "kind"), [
    ("base.debs", "base.debs[0]"),
    ("images.pylab.requirements", "images.pylab.requirements[0]"),
    ("images.rlab.r_packages", "images.rlab.r_packages[0]"),
    ("images.rlab-base.debs", "images.rlab-base.debs[0]"),
])
def test_list_files_outside_name_their_key(lab: Path, secret: Path, opened: list[str],
                                           key: str, kind: str) -> None:
    found = problems(lab, f'{key}=["../outside/secret.txt"]')
    assert found == [
        (f"pyrlab.toml: {kind}: '../outside/secret.txt' lies outside the project folder {lab} "
        f"(it resolves to {secret}); list files must be inside it (from --set {key})")]
    assert under(opened, secret.parent) == []


def written_on(lab: Path, start: str) -> int:
    """The line of pyrlab.toml that starts with `start` (the first one)."""
    lines = (lab / "pyrlab.toml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.startswith(start))


def test_a_list_that_is_a_symlink_out_of_the_folder_is_refused(
        lab: Path, secret: Path, opened: list[str]) -> None:
    (lab / "requirements.txt").unlink()
    (lab / "requirements.txt").symlink_to(secret)
    (message,) = problems(lab)
    line = written_on(lab, "requirements = ")  # where `pyrlab init` writes it
    assert message.startswith(f"pyrlab.toml:{line}: images.pylab.requirements[0]: 'requirements.txt' "
                              "lies outside the project folder")
    assert under(opened, secret.parent) == []


def test_check_reports_confinement(lab: Path, secret: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    write(lab, "requirements.txt", f"-r {secret}\n")
    code = main(["check", "-C", str(lab), "--set", "run.envfile=/etc/hostname"])
    err = capsys.readouterr().err
    assert code == 3
    assert "requirements.txt:1: cannot include" in err
    assert ("pyrlab.toml: run.envfile: '/etc/hostname' lies outside the project folder" in err)
    assert "Traceback" not in err


# --------------------------------------------------------------------------- lab files


@pytest.mark.parametrize("key", ["run.envfile", "run.userlab", "run.rc.pylab"])
def test_files_given_to_the_lab_must_be_inside(lab: Path, secret: Path, key: str) -> None:
    assert problems(lab, f"{key}={secret}") == [
        (f"pyrlab.toml: {key}: '{secret}' lies outside the project folder {lab}; the lab may "
        f"only be given files from the project folder (from --set {key})")]


def test_a_lab_file_symlinked_out_is_refused(lab: Path, tmp_path: Path) -> None:
    (lab / ".env").symlink_to(tmp_path / "elsewhere.env")  # need not exist to be refused
    (message,) = problems(lab)
    line = written_on(lab, "envfile = ")
    assert message.startswith(f"pyrlab.toml:{line}: run.envfile: '.env' lies outside the project "
                              f"folder {lab} (it resolves to {tmp_path / 'elsewhere.env'})")


def test_lab_files_inside_are_mounted_resolved(lab: Path) -> None:
    from pyrlab.launch.plan import plan_lab
    write(lab, "env/real.env", "A=1\n")
    (lab / ".env").symlink_to(lab / "env" / "real.env")
    project = load_project(lab, environ={})
    plan = plan_lab(project.config, "pylab", token="t")
    sources = {m.target: m.source for m in plan.request.mounts}
    assert sources["/etc/pyrlab/env"] == (lab / "env" / "real.env").resolve()


# --------------------------------------------------------------------------- CA files


KEY_BLOCK = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n" \
            b"-----END PRIVATE KEY-----\n"


def ca_problem(lab: Path, content: bytes) -> list[str]:
    path = write(lab.parent, "host-ca/site.pem", content)
    return problems(lab, f'base.ca_certificates=["{path}"]')


def test_a_ca_file_from_the_host_is_allowed_and_only_its_certificates_are_used(
        lab: Path) -> None:
    path = write(lab.parent, "host-ca/site.pem",
                 b"# Issuer: pyrlab test only\n" + PEM + b"subject=something else\n" + PEM)
    project = load_project(lab, environ={}, sets=(f'base.ca_certificates=["{path}"]',))
    (ca,) = project.ca_files
    assert ca.content == PEM + PEM  # the comments stay on the host


@pytest.mark.parametrize(("content", "why"), [
    (b"just text\n", "holds no PEM certificate"),
    (PEM + KEY_BLOCK, "PEM block 2 is a 'PRIVATE KEY', not a 'CERTIFICATE'"),
    (PEM.replace(b"-----END CERTIFICATE-----\n", b""), "has a PEM block without its END line"),
    (b"-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n",
     "PEM block 1 is not valid base64"),
    # Valid base64, but cut short: the DER length does not match.
    ((b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUdGVzdC1vbmx5LW5vdC1hLXJlYWwtY2VydGlmaWNhdGUw\n"
     b"-----END CERTIFICATE-----\n"), "PEM block 1 does not decode as a certificate"),
])
def test_a_ca_file_that_is_not_only_certificates_is_refused(
        lab: Path, content: bytes, why: str) -> None:
    path = lab.parent / "host-ca" / "site.pem"
    assert ca_problem(lab, content) == [
        (f"pyrlab.toml: base.ca_certificates[0]: '{path}' is not a PEM certificate file: "
        f"{why}; none of it is used")]


def test_a_ca_fifo_is_not_opened(lab: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "ca.fifo")
    sets = f'base.ca_certificates=["{tmp_path / "ca.fifo"}"]'
    assert without_opening(tmp_path / "ca.fifo", lambda: problems(lab, sets)) == [
        (f"pyrlab.toml: base.ca_certificates[0]: cannot read '{tmp_path / 'ca.fifo'}': it is "
        "not a regular file")]


def test_check_lists_what_up_would_need_allow_unsafe_for(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-C", str(lab), "--set", "run.docker_args=['--privileged']"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == ("needs `pyrlab up --allow-unsafe`: run.docker_args: "
                                    "'--privileged' widens what the lab may do on the host "
                                    "(from --set run.docker_args)")
    assert main(["check", "-C", str(lab), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["needs_allow_unsafe"] == []


@pytest.mark.parametrize("size", [0, 1, 47, 48, 49, 96, 1000])
def test_certificates_are_written_as_ssl_writes_them(size: int) -> None:
    # The certificates' bytes go into the build context and its input hash: pyrlab's own
    # PEM writer (no ssl import) must give exactly what ssl.DER_cert_to_PEM_cert gives.
    import ssl

    der = bytes(range(256)) * 4
    assert der_to_pem(der[:size]) == ssl.DER_cert_to_PEM_cert(der[:size]).encode("ascii")


def test_a_certificate_file_comes_out_as_ssl_writes_it() -> None:
    import ssl

    der = ssl.PEM_cert_to_DER_cert(PEM.decode())
    assert pem_certificates(b"# a comment\n" + PEM) == \
        ssl.DER_cert_to_PEM_cert(der).encode("ascii")
