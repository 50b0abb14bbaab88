"""No lost files (issue 21): every command that writes files writes only into a new or
empty folder or one pyrlab made, and replaces only files pyrlab wrote, unless told to
(--force). Also: render and check choose the engine as build does, init checks --ca and
--base before writing anything, and `clean --dry-run` removes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fakes import FILES, ORDER, FakeEngine
from labfiles import PEM, build_json, init_lab, make_project, pyrlab, write

from pyrlab.contents.lockfile import HEADER
from pyrlab.errors import EXIT_CONFIG, EXIT_ENGINE, EXIT_USAGE, ConfigError
from pyrlab.safewrite import MARKER, claim_folder, has_pyrlab_header, write_file

MARKER_TEXT = ("pyrlab made this folder (pyrlab render -o) and may replace anything in it.\n"
               "Delete this file to keep pyrlab from writing here again.\n")


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # messages name files as the user gave them
    return init_lab(tmp_path / "lab")


# --------------------------------------------------------------------------- render -o


def test_render_refuses_a_folder_with_the_users_files_and_keeps_them(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The report: `render -o .` in a project replaced pylab/ and deleted a notebook in it.
    os.chdir(lab)
    write(lab, "pylab/analysis.ipynb", "{}\n")
    capsys.readouterr()
    code, out, err = pyrlab(capsys, "render", "-o", ".")
    assert code == EXIT_CONFIG and out == ""
    assert err.splitlines() == [
        ("pyrlab: error: .: holds files pyrlab did not make (pylab/analysis.ipynb, .gitignore, "
         "Makefile and 6 more); pyrlab writes only into a new or empty folder, or one it "
         "made (with a .pyrlab-output file)"),
        "pyrlab: hint: name a new or empty folder with -o; nothing was written"]
    assert (lab / "pylab" / "analysis.ipynb").read_text() == "{}\n"
    assert sorted(p.name for p in (lab / "pylab").iterdir()) == ["analysis.ipynb"]
    assert not (lab / MARKER).exists()


def test_render_takes_a_new_or_empty_folder_and_marks_it_as_its_own(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, empty = lab.parent / "new" / "contexts", lab.parent / "empty"
    empty.mkdir()
    for out in (new, empty):
        code, out_text, err = pyrlab(capsys, "render", "-C", str(lab), "-o", str(out), "pylab",
                                     "--engine", "docker")
        assert code == 0, err
        assert out_text == f"pylab            {out / 'pylab'}\n"
        assert err == "rendering for docker, from --engine\n"
        assert (out / MARKER).read_text() == MARKER_TEXT
        assert (out / "pylab" / "Dockerfile").is_file()
    # Made by pyrlab: rendered again, what pyrlab put there is replaced.
    write(new, "pylab/left-over.txt", "x\n")
    assert pyrlab(capsys, "render", "-C", str(lab), "-o", str(new), "pylab")[0] == 0
    assert not (new / "pylab" / "left-over.txt").exists()


def test_render_into_a_file_is_refused(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(lab, "notes.txt", "mine\n")
    code, _, err = pyrlab(capsys, "render", "-C", str(lab), "-o", str(lab / "notes.txt"))
    assert code == EXIT_CONFIG
    assert err.splitlines() == [f"pyrlab: error: {lab / 'notes.txt'}: is not a folder",
                                "pyrlab: hint: -o takes a folder: name a new or empty one"]
    assert (lab / "notes.txt").read_text() == "mine\n"


def test_render_without_o_uses_pyrlabs_own_folder_even_when_an_older_pyrlab_made_it(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contexts = lab / ".pyrlab" / "contexts"
    write(contexts, "pylab/Dockerfile", "FROM old\n")  # before markers existed
    assert pyrlab(capsys, "render", "-C", str(lab), "pylab")[0] == 0
    assert (contexts / "pylab" / "Dockerfile").read_text() != "FROM old\n"
    assert (contexts / MARKER).read_text() == MARKER_TEXT.replace(" -o)", ")")


# --------------------------------------------------------------------------- engine choice


@pytest.mark.parametrize(("how", "source"), [
    (["--engine", "podman"], "--engine"),
    (["--podman"], "--engine"),  # the old flag, kept as an alias
    (["--set", "engine=podman"], "--set engine"),
    ([], "PYRLAB_ENGINE"),
])
def test_render_renders_for_the_engine_a_build_would_use(
        lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        how: list[str], source: str) -> None:
    if not how:
        monkeypatch.setenv("PYRLAB_ENGINE", "podman")
    out = lab.parent / "out"
    code, _, err = pyrlab(capsys, "render", "-C", str(lab), "-o", str(out), *how, "pylab")
    assert code == 0
    assert err == f"rendering for podman, from {source}\n"
    dockerfile = (out / "pylab" / "Dockerfile").read_text()
    assert "sharing=locked" not in dockerfile and "--mount=type=cache" in dockerfile
    # Named docker: BuildKit's locked cache mounts, and no engine need be there.
    code, _, err = pyrlab(capsys, "render", "-C", str(lab), "-o", str(out), "--engine",
                          "docker", "pylab")
    assert code == 0 and err == "rendering for docker, from --engine\n"
    assert "sharing=locked" in (out / "pylab" / "Dockerfile").read_text()
    code, data, _ = pyrlab(capsys, "render", "-C", str(lab), "-o", str(out), "--json", *how,
                           "pylab")
    assert json.loads(data)["engine"] == {"name": "podman", "source": source}


def test_check_names_the_engine_a_build_would_use(
        lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = pyrlab(capsys, "check", "-C", str(lab), "--engine", "podman")
    assert code == 0 and out.splitlines()[-1] == "engine: podman, from --engine"
    code, out, _ = pyrlab(capsys, "--engine", "docker", "check", "-C", str(lab), "--json")
    assert code == 0 and json.loads(out)["engine"] == {"name": "docker", "source": "--engine"}
    code, out, _ = pyrlab(capsys, "check", "-C", str(lab), "--set", "engine=podman")
    assert out.splitlines()[-1] == "engine: podman, from --set engine"
    monkeypatch.setenv("PYRLAB_ENGINE", "docker")
    code, out, _ = pyrlab(capsys, "check", "-C", str(lab))
    assert out.splitlines()[-1] == "engine: docker, from PYRLAB_ENGINE"


def test_engine_choice_refuses_an_unknown_engine_where_no_config_checks_it() -> None:
    from pyrlab.engines.select import engine_choice, named_engine

    assert named_engine(None, "auto", {"PYRLAB_ENGINE": "podman"}) == ("podman",
                                                                       "PYRLAB_ENGINE")
    assert engine_choice("docker", "podman", {}).name == "docker"  # nothing is probed
    from pyrlab.errors import EngineError
    with pytest.raises(EngineError) as caught:
        named_engine("rocket", "auto", {})
    assert caught.value.message == "unknown engine 'rocket' (from --engine): use docker or podman"
    assert caught.value.exit_code == EXIT_ENGINE


# --------------------------------------------------------------------------- init


def test_init_checks_ca_before_writing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_cert = tmp_path / "hostname"
    not_a_cert.write_text("myhost\n")
    code, out, err = pyrlab(capsys, "init", str(tmp_path / "lab"), "--ca", str(not_a_cert))
    assert (code, out) == (EXIT_USAGE, "")
    assert err.splitlines() == [
        (f"pyrlab: error: --ca {not_a_cert}: is not a PEM certificate file: holds no PEM "
         "certificate"),
        "pyrlab: hint: --ca takes a CA certificate in PEM form (-----BEGIN CERTIFICATE-----)"]
    assert not (tmp_path / "lab").exists()
    code, _, err = pyrlab(capsys, "init", str(tmp_path / "lab"), "--ca", str(tmp_path))
    assert code == EXIT_USAGE and f"--ca {tmp_path}: is a directory" in err
    assert not (tmp_path / "lab").exists()


def test_init_lists_only_the_hosts_ca_files_that_hold_certificates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrlab.commands import init as init_command

    host = tmp_path / "host-cas"
    write(host, "corp.crt", PEM.decode())
    write(host, "empty.crt", "")  # would fail every build (and `check`)
    monkeypatch.setattr(init_command, "HOST_CA_DIR", host)
    code, out, _ = pyrlab(capsys, "init", str(tmp_path / "lab"), "--json")
    assert code == 0
    assert json.loads(out)["ca_certificates"] == [str(host / "corp.crt")]
    assert pyrlab(capsys, "check", "-C", str(tmp_path / "lab"))[0] == 0


def test_init_checks_the_base_suite_before_writing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hint = ("pyrlab: hint: one of bookworm, trixie, forky, duke, sid, oldstable, stable, "
            "testing, unstable (another suite: write it in pyrlab.toml's base.bootstrap "
            "after init)")
    code, _, err = pyrlab(capsys, "init", str(tmp_path / "lab"), "--base", "debian:trixy")
    assert code == EXIT_USAGE
    assert err.splitlines() == [
        ("pyrlab: error: --base: 'trixy' is not a Debian suite on its mirrors; did you mean "
         "debian:trixie?"), hint]
    code, _, err = pyrlab(capsys, "init", str(tmp_path / "lab"), "--base", "debian:foo")
    assert err.splitlines() == [
        "pyrlab: error: --base: 'foo' is not a Debian suite on its mirrors", hint]
    assert not (tmp_path / "lab").exists()
    assert pyrlab(capsys, "init", str(tmp_path / "lab"), "--base", "debian:forky",
                  "--no-host-ca")[0] == 0
    assert 'bootstrap = "forky"' in (tmp_path / "lab" / "pyrlab.toml").read_text()


def test_init_adds_its_files_beside_the_users_and_replaces_none_unasked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    write(root, "analysis.ipynb", "{}\n")
    write(root, ".git/HEAD", "ref: refs/heads/main\n")
    assert pyrlab(capsys, "init", str(root), "--no-host-ca")[0] == 0
    assert (root / "analysis.ipynb").read_text() == "{}\n"
    assert (root / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (root / MARKER).exists()  # the project folder is the user's, not pyrlab's
    write(root, "Makefile", "mine:\n")
    code, _, err = pyrlab(capsys, "init", str(root), "--no-host-ca")
    assert code == EXIT_CONFIG
    assert err.splitlines()[-1] == "pyrlab: hint: use --force to overwrite"
    assert f"  {root / 'Makefile'}: already exists" in err.splitlines()
    assert (root / "Makefile").read_text() == "mine:\n"


# --------------------------------------------------------------------------- export -o


def test_export_replaces_its_own_file_and_no_other_unless_forced(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine, hub = lab / "mine.py", lab / "hub.py"
    mine.write_text("c = get_config()\n")
    code, out, err = pyrlab(capsys, "export", "jupyterhub", "-C", str(lab), "-o", str(mine))
    assert (code, out) == (EXIT_CONFIG, "")
    assert err.splitlines() == [f"pyrlab: error: {mine}: exists and pyrlab did not write it",
                                ("pyrlab: hint: add --force to replace it, or choose "
                                 "another -o FILE")]
    assert mine.read_text() == "c = get_config()\n"
    for _ in range(2):  # the second time, over the file it wrote
        code, out, _ = pyrlab(capsys, "export", "jupyterhub", "-C", str(lab), "-o", str(hub))
        assert code == 0 and out.startswith(f"wrote {hub}: ")
    code, _, _ = pyrlab(capsys, "export", "jupyterhub", "-C", str(lab), "-o", str(mine),
                        "--force")
    assert code == 0 and mine.read_text() == hub.read_text()
    assert sorted(p.name for p in lab.iterdir() if p.suffix == ".py") == ["hub.py", "mine.py"]


# --------------------------------------------------------------------------- sbom, lock


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: FakeEngine,
          capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    root = make_project(tmp_path / "built", FILES)
    build_json(capsys, root)
    return root


def test_sbom_replaces_its_own_sbom_and_no_other_file_unless_forced(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(built, "notes.json", '{"mine": true}\n')
    code, _, err = pyrlab(capsys, "sbom", "-C", "built", "pylab", "-o", "notes.json")
    assert code == EXIT_CONFIG
    assert err.splitlines() == [
        "pyrlab: error: notes.json: exists and pyrlab did not write it",
        "pyrlab: hint: add --force to replace it, or choose another -o FILE"]
    assert (built / "notes.json").read_text() == '{"mine": true}\n'
    for _ in range(2):
        code, out, _ = pyrlab(capsys, "sbom", "-C", "built", "pylab", "-o", "sbom.json")
        assert code == 0 and out.startswith("wrote sbom.json: CycloneDX 1.6 SBOM")
    assert pyrlab(capsys, "sbom", "-C", "built", "pylab", "-o", "notes.json",
                  "--force")[0] == 0
    assert json.loads((built / "notes.json").read_text())["bomFormat"] == "CycloneDX"


def test_lock_rewrites_its_own_lock_but_not_a_file_it_did_not_write(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = built / "pyrlab.lock"
    written = lock.read_text()
    assert written.startswith(HEADER)
    # Its own, broken by a merge: rewritten (the fix its error names).
    lock.write_text(written + "<<<<<<< HEAD\n")
    assert pyrlab(capsys, "lock", "-C", "built")[0] == 0 and lock.read_text() == written
    # Its own with the header edited away: still a lock, still rewritten.
    lock.write_text(written.removeprefix(HEADER).replace('"six"', '"seven"', 1))
    assert pyrlab(capsys, "lock", "-C", "built")[0] == 0 and lock.read_text() == written
    # Not pyrlab's: kept, named, and replaced only when asked.
    lock.write_text("my own notes\n")
    code, _, err = pyrlab(capsys, "lock", "-C", "built")
    assert code == EXIT_CONFIG
    assert err.splitlines() == [
        "pyrlab: error: pyrlab.lock: exists and pyrlab did not write it",
        "pyrlab: hint: move it away, or replace it with `pyrlab lock --force`"]
    assert lock.read_text() == "my own notes\n"
    # build reads the lock before it writes it: it stops there, and writes nothing.
    code, _, err = pyrlab(capsys, "build", "-C", "built")
    assert code == EXIT_CONFIG and "pyrlab: error: pyrlab.lock:1: not valid TOML" in err
    assert lock.read_text() == "my own notes\n"
    code, out, _ = pyrlab(capsys, "lock", "-C", "built", "--force")
    assert code == 0 and out == f"pyrlab.lock: {', '.join(ORDER)} (replaced the " \
        "unreadable file)\n"
    assert lock.read_text() == written


# --------------------------------------------------------------------------- clean --dry-run


def test_clean_dry_run_says_what_would_go_and_removes_nothing(
        built: Path, engine: FakeEngine, capsys: pytest.CaptureFixture[str]) -> None:
    before = dict(engine.refs)
    code, out, err = pyrlab(capsys, "clean", "-C", "built", "--dry-run")
    assert code == 0 and err == "engine: fake (fake), from auto-detection\n"
    would = [line.removeprefix("would remove ") for line in out.splitlines()
             if line.startswith("would remove ")]
    assert would[:3] == ["t/other:latest", "t/other:trixie", "t/pylab-torch:latest"]
    assert out.splitlines()[-2:] == [
        "kept the base image t/debian:trixie (remove it with your engine's rmi)",
        "dry run: nothing was removed"]
    assert engine.refs == before
    code, out, _ = pyrlab(capsys, "clean", "-C", "built", "--json", "-n", "--cache")
    data = json.loads(out)
    assert data["dry_run"] is True and data["removed"] == would
    assert engine.refs == before
    # What the dry run listed is what clean goes on to remove, or to keep where the
    # engine refuses (which only asking it shows).
    code, out, _ = pyrlab(capsys, "clean", "-C", "built")
    removed = [line.removeprefix("removed ") for line in out.splitlines()
               if line.startswith("removed ")]
    refused = [line.removeprefix("kept ").split(": ", 1)[0] for line in out.splitlines()
               if line.startswith("kept t/")]
    assert removed and sorted(removed + refused) == sorted(would)
    assert engine.refs != before


# --------------------------------------------------------------------------- the module


def test_write_file_names_what_it_refuses(tmp_path: Path) -> None:
    target = tmp_path / "out.yml"
    write_file(target, "# Written by `pyrlab export compose` (pyrlab 1).\nservices: {}\n")
    write_file(target, "# written by `pyrlab x`\n")  # its own: replaced
    assert target.read_text() == "# written by `pyrlab x`\n"
    target.write_text("# my notes\n# written by `pyrlab x` is what I will say\n")
    write_file(target, "again\n")  # the header's words, anywhere in its leading comment
    target.write_text("services: {}\n# written by `pyrlab x`\n")
    with pytest.raises(ConfigError) as caught:
        write_file(target, "new\n")
    assert (caught.value.message, caught.value.hint) == (
        f"{target}: exists and pyrlab did not write it",
        "add --force to replace it, or choose another file")
    with pytest.raises(ConfigError) as caught:
        write_file(tmp_path, "x")
    assert caught.value.message == f"{tmp_path}: is a folder"
    with pytest.raises(ConfigError) as caught:
        write_file(tmp_path / "no" / "such" / "file", "x", shown="the file")
    assert caught.value.message == "the file: cannot write: No such file or directory"
    write_file(tmp_path / "made" / "file", "x", parents=True)
    assert (tmp_path / "made" / "file").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made", "out.yml"]  # no temp left


def test_write_file_writes_through_a_link_and_checks_its_target(tmp_path: Path) -> None:
    (tmp_path / "real.yml").write_text("mine\n")
    (tmp_path / "link.yml").symlink_to("real.yml")
    with pytest.raises(ConfigError):
        write_file(tmp_path / "link.yml", "new\n")
    write_file(tmp_path / "link.yml", "new\n", force=True)
    assert (tmp_path / "link.yml").is_symlink() and (tmp_path / "real.yml").read_text() == "new\n"


def test_has_pyrlab_header() -> None:
    assert has_pyrlab_header(HEADER.encode())
    assert has_pyrlab_header(b"# Zero to JupyterHub\n# per image, written by `pyrlab export")
    assert not has_pyrlab_header(b"")
    assert not has_pyrlab_header(b"key: 1\n# written by `pyrlab export`\n")
    assert not has_pyrlab_header(b"# written by pyrlab, says someone\n")


def test_claim_folder_names_the_files_it_would_replace_first(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "")
    write(tmp_path, "b.txt", "")
    write(tmp_path, "z/deep/one.ipynb", "")
    write(tmp_path, "z/two.ipynb", "")
    with pytest.raises(ConfigError) as caught:
        claim_folder(tmp_path, by="x", writes=["z"])
    assert caught.value.message.startswith(
        f"{tmp_path}: holds files pyrlab did not make (z/deep/one.ipynb, z/two.ipynb, "
        "a.txt and 1 more); ")
    (tmp_path / MARKER).write_text("")  # a folder the user hands to pyrlab
    claim_folder(tmp_path, by="x")
    assert (tmp_path / MARKER).read_text().startswith("pyrlab made this folder (x)")


def test_claim_folder_follows_a_link_to_a_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    claim_folder(tmp_path / "link", by="x")
    assert (tmp_path / "real" / MARKER).is_file()
    write(tmp_path, "mine/notes.txt", "")
    (tmp_path / "link2").symlink_to("mine")
    with pytest.raises(ConfigError) as caught:
        claim_folder(tmp_path / "link2", by="x")
    assert "holds files pyrlab did not make (notes.txt)" in caught.value.message
