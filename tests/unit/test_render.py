"""Rendering build contexts: golden Dockerfiles, determinism, the input hash, and that
package lists and proxy URLs reach the build only as files in the context."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from labfiles import CONTAINER, FULL_FILES, PEM, UPDATE_GOLDEN, init_lab, make_project, write

from pyrlab import __version__
from pyrlab.cli import main
from pyrlab.config.project import Project, load_project
from pyrlab.dockerfile.context import FIXED_MTIME, content_mtime
from pyrlab.dockerfile.render import META_FILE, BuildContext, RenderOptions, render_context

GOLDEN = Path(__file__).parent / "golden"
# Files copied verbatim from src/pyrlab/container (checked once, not kept in the goldens).
COPIED = re.compile(r"^pyrlab/(?:bin/(?!uv-version$)|runtime/|inventory/inventory\.py$)")


def render_all(project: Project, options: RenderOptions | None = None) -> dict[str, BuildContext]:
    return {name: render_context(project, name, options) for name in project.order()}


def hashes(root: Path) -> dict[str, str]:
    return {n: c.input_hash for n, c in render_all(load_project(root, environ={})).items()}


def normalise(dockerfile: str) -> str:
    """Goldens pin the template's output, not pyrlab's version or the exact input hash
    (the hash covers the container scripts; its behaviour is tested below)."""
    text = re.sub(r'(org\.pyrlab\.input-hash=|"input_hash": )"[0-9a-f]{64}"', r'\1"<input-hash>"',
                  dockerfile)
    text = re.sub(r"(# inputs )[0-9a-f]{64}$", r"\1<input-hash>", text, flags=re.MULTILINE)
    return text.replace(f"pyrlab {__version__} ", "pyrlab <version> ").replace(
        f'org.pyrlab.version="{__version__}"', 'org.pyrlab.version="<version>"').replace(
        f'"pyrlab_version": "{__version__}"', '"pyrlab_version": "<version>"')


def describe(contexts: dict[str, BuildContext]) -> str:
    """Every file of every context with its mode; the generated ones with their content."""
    out = []
    for name, context in contexts.items():
        out.append(f"## {name}")
        for path, (content, mode) in context.files.items():
            out.append(f"{mode:04o} {path}")
            if path != "Dockerfile" and not COPIED.match(path):
                text = normalise(content.decode()) if path == META_FILE else content.decode()
                out += [f"     | {line}" for line in text.splitlines()]
    return "\n".join(out) + "\n"


def check_golden(folder: str, contexts: dict[str, BuildContext]) -> None:
    expected = {f"{name}.Dockerfile": normalise(c.dockerfile) for name, c in contexts.items()}
    expected["context.txt"] = describe(contexts)
    where = GOLDEN / folder
    if UPDATE_GOLDEN:
        where.mkdir(parents=True, exist_ok=True)
        for old in where.iterdir():
            old.unlink()
        for fname, text in expected.items():
            (where / fname).write_text(text, encoding="utf-8")
    assert where.is_dir(), f"no goldens in {where}: run with PYRLAB_UPDATE_GOLDEN=1"
    assert sorted(p.name for p in where.iterdir()) == sorted(expected)
    for fname, text in expected.items():
        assert text == (where / fname).read_text(encoding="utf-8"), (
            f"{folder}/{fname} differs from the golden file; if the change is intended, "
            "run `PYRLAB_UPDATE_GOLDEN=1 pytest tests/unit/test_render.py` and review the diff")


@pytest.fixture
def default_project(tmp_path: Path) -> Project:
    return load_project(init_lab(tmp_path / "lab"), environ={})


@pytest.fixture
def full(full_project: Path) -> Project:
    return load_project(full_project, environ={})


# --------------------------------------------------------------------------- goldens


def test_golden_default_graph(default_project: Project) -> None:
    check_golden("default", render_all(default_project))


def test_golden_proxy_ca_cuda_flavour(full: Project) -> None:
    check_golden("full", render_all(full))


def test_scripts_are_copied_verbatim_with_their_modes(default_project: Project) -> None:
    files = render_context(default_project, "pyrlab-base").files
    copied = [p for p in files if COPIED.match(p)]
    assert len(copied) == 18
    executables = ("pyrlab/runtime/start.sh", "pyrlab/runtime/tensorboard.py")
    for path in copied:
        content, mode = files[path]
        assert content == (CONTAINER / path.rsplit("/", 1)[1]).read_bytes()
        executable = path in executables or not path.endswith((".py", ".R", ".ini"))
        assert mode == (0o755 if executable else 0o644), path


# --------------------------------------------------------------------------- determinism


def test_rendering_is_deterministic(full: Project, tmp_path: Path) -> None:
    first = render_all(full)
    assert render_all(full) == first
    # The same content in another folder renders to the same bytes and hashes.
    again = load_project(make_project(tmp_path / "elsewhere" / "copy", FULL_FILES), environ={})
    assert render_all(again) == first
    assert len({c.input_hash for c in first.values()}) == len(first)


# --------------------------------------------------------------------------- input hash


def test_a_base_list_change_changes_every_hash(full_project: Path) -> None:
    before = hashes(full_project)
    write(full_project, "base_debs.txt", "git\nless\nhtop\n")
    after = hashes(full_project)
    assert [n for n in before if before[n] != after[n]] == list(before)


def test_a_requirements_change_changes_only_pylab_and_its_descendants(full_project: Path) -> None:
    before = hashes(full_project)
    write(full_project, "requirements.txt", "jupyterlab\nipykernel\nnumpy==2.3.2\n")
    after = hashes(full_project)
    assert [n for n in before if before[n] != after[n]] == ["pylab", "pylab-torch"]


def test_a_flavour_list_change_changes_only_the_flavour(full_project: Path) -> None:
    before = hashes(full_project)
    write(full_project, "requirements_torch.txt", "torch>=2.8\ntorchvision\ntorchaudio\n")
    after = hashes(full_project)
    assert [n for n in before if before[n] != after[n]] == ["pylab-torch"]


def test_comments_and_blank_lines_do_not_change_the_hash(full_project: Path) -> None:
    before = hashes(full_project)
    write(full_project, "requirements.txt",
          "# my packages\njupyterlab\n\nipykernel   # kernel\nnumpy==2.3.1\n")
    assert hashes(full_project) == before


def test_the_hash_is_the_dockerfile_label(full: Project) -> None:
    for context in render_all(full).values():
        assert f'org.pyrlab.input-hash="{context.input_hash}"' in context.dockerfile


# --------------------------------------------------------------------------- lists stay files

DISTINCT = {
    "pyrlab.toml": """\
        [base]
        debs = ["base_debs.txt"]
        [images.pyrlab-base]
        [images.pylab]
        from = "pyrlab-base"
        requirements = ["requirements.txt"]
        [images.rlab-base]
        from = "pyrlab-base"
        debs = ["r_debs.txt"]
        r = "debian"
        [images.rlab]
        from = "rlab-base"
        r_packages = ["r_packages.txt"]
        """,
    "base_debs.txt": "zzqdebpackage\n",
    "requirements.txt": "zzqpythonmodule==1.2.3\n",
    "r_debs.txt": "zzqrdebpackage\n",
    "r_packages.txt": "ZZqCranPackage\napt:ZZqAptPackage\n",
}


def test_no_list_entry_appears_in_any_dockerfile(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path, DISTINCT), environ={})
    contexts = render_all(project)
    for context in contexts.values():
        assert "zzq" not in context.dockerfile.lower(), context.image
    files = {name: {p: c.decode() for p, (c, _) in ctx.files.items()}
             for name, ctx in contexts.items()}
    assert files["pyrlab-base"]["pyrlab/apt/debs.txt"] == "zzqdebpackage\n"
    assert files["pylab"]["pyrlab/python/requirements.txt"] == "zzqpythonmodule==1.2.3\n"
    assert files["rlab-base"]["pyrlab/apt/debs.txt"] == "zzqrdebpackage\n"
    assert files["rlab"]["pyrlab/r/cran.txt"] == "ZZqCranPackage\n"
    assert files["rlab"]["pyrlab/r/apt.txt"] == "r-cran-zzqaptpackage\n"
    # pyrlab's own packages come first in their own file, in the image that needs them.
    assert files["pyrlab-base"]["pyrlab/apt/system.txt"] == "ca-certificates\ntini\ncurl\n"
    assert files["rlab-base"]["pyrlab/apt/system.txt"] == "r-base-core\nr-base-dev\n"


def test_an_image_installs_only_its_own_lists(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path, DISTINCT), environ={})
    pylab = render_context(project, "pylab")
    assert "pyrlab/apt/debs.txt" not in pylab.files  # the base's debs are in the base
    assert "apt-install" not in pylab.dockerfile.replace("/bin/apt-install", "")
    assert "/run/pyrlab/bin/uv-install" in pylab.dockerfile
    assert "/run/pyrlab/bin/r-install" not in pylab.dockerfile
    base = render_context(project, "pyrlab-base")
    assert "pyrlab/python/requirements.txt" not in base.files
    assert "/run/pyrlab/bin/uv-install" not in base.dockerfile


def test_the_context_copy_of_a_python_list_keeps_its_lines_and_order(tmp_path: Path) -> None:
    files = dict(DISTINCT)
    files["requirements.txt"] = "dill\nrich\ndill[graph]\nrich\n"
    project = load_project(make_project(tmp_path, files), environ={})
    copy = render_context(project, "pylab").files["pyrlab/python/requirements.txt"][0]
    assert copy == b"dill\nrich\ndill[graph]\nrich\n"
    assert [e.text for e in project.lists["pylab"].of("python")] == ["dill[graph]", "rich"]


def test_r_source_decides_where_plain_r_entries_come_from(tmp_path: Path) -> None:
    files = dict(DISTINCT)
    files["pyrlab.toml"] = str(files["pyrlab.toml"]).replace(
        'r_packages = ["r_packages.txt"]', 'r_packages = ["r_packages.txt"]\nr_source = "apt"')
    files["r_packages.txt"] = "jsonlite\ncran:data.table\nggplot2>=3.5\nDBI==1.2.3\n"
    rlab = render_context(load_project(make_project(tmp_path, files), environ={}), "rlab").files
    assert rlab["pyrlab/r/apt.txt"][0] == b"r-cran-jsonlite\n"
    # A version can only be honoured by CRAN, whatever r_source says.
    assert rlab["pyrlab/r/cran.txt"][0] == b"data.table\nggplot2>=3.5\nDBI==1.2.3\n"


# --------------------------------------------------------------------------- proxy, CA, CUDA


def net(context: BuildContext) -> dict[str, str]:
    prefix = "pyrlab/net/"
    return {p[len(prefix):]: c.decode() for p, (c, _) in context.files.items()
            if p.startswith(prefix)}


PATIENCE = {"timeout": "120\n", "retries": "3\n"}
PIP_PATIENCE = "[global]\ntimeout = 120\nretries = 3\n"


def test_proxy_files(full: Project) -> None:
    apt = {
        "apt-proxy.conf": 'Acquire::http::Proxy "http://apt-cache.internal:3142";\n',
        "https-via-proxy": "rewrite https:// sources as http://HTTPS/// for the proxy\n",
        **PATIENCE,
    }
    for name, context in render_all(full).items():
        assert net(context) == {
            **{f"apt/{k}": v for k, v in apt.items()},
            **{f"r/{k}": v for k, v in apt.items()},
            **{f"python/{k}": v for k, v in PATIENCE.items()},
            "python/uv.toml": '[pip]\nindex-url = "http://devpi.internal:3141/root/pypi/+simple/"\n',
            "python/pip.conf": PIP_PATIENCE
            + "index-url = http://devpi.internal:3141/root/pypi/+simple/\n"
              "trusted-host = devpi.internal\n",
        }, name
        # The URLs reach the build only through those files.
        assert "apt-cache.internal" not in context.dockerfile
        assert "devpi.internal" not in context.dockerfile


def test_each_installer_mounts_only_its_own_network_settings(full: Project) -> None:
    steps = {}
    for context in render_all(full).values():
        for line in context.dockerfile.replace("\\\n", "").splitlines():
            if "/run/pyrlab/bin/" in line:
                steps[line.split("/run/pyrlab/bin/")[1].split()[0]] = line
    assert set(steps) == {"apt-install", "setup-base", "uv-install", "r-install"}
    assert "source=pyrlab/net/apt,target=/run/pyrlab/net" in steps["apt-install"]
    assert "source=pyrlab/net/python,target=/run/pyrlab/net" in steps["uv-install"]
    assert "source=pyrlab/net/r,target=/run/pyrlab/net" in steps["r-install"]
    assert "net/python" not in steps["apt-install"]


def test_a_new_pip_index_keeps_the_apt_step_cached(tmp_path: Path) -> None:
    files = dict(FULL_FILES)
    first = load_project(make_project(tmp_path / "a", files), environ={})
    files["pyrlab.toml"] = str(files["pyrlab.toml"]).replace(
        "http://devpi.internal:3141/", "http://devpi.internal:3999/")
    second = load_project(make_project(tmp_path / "b", files), environ={})

    def step_line(project: Project, image: str, script: str) -> str:
        context = render_context(project, image, RenderOptions(run_input_keys=True))
        return next(line for line in context.dockerfile.splitlines()
                    if f"/run/pyrlab/bin/{script}" in line)

    for image, script in (("pyrlab-base", "apt-install"), ("pyrlab-base", "setup-base")):
        assert step_line(first, image, script) == step_line(second, image, script)
    assert step_line(first, "pylab", "uv-install") != step_line(second, "pylab", "uv-install")


def test_the_index_timeout_and_retries_are_configurable(tmp_path: Path) -> None:
    files = dict(FULL_FILES)
    files["pyrlab.toml"] = str(files["pyrlab.toml"]).replace(
        "[proxy]", "[proxy]\ntimeout = 300\nretries = 7")
    context = render_context(load_project(make_project(tmp_path, files), environ={}), "pylab")
    files_ = net(context)
    for kind in ("apt", "python", "r"):
        assert files_[f"{kind}/timeout"] == "300\n"
        assert files_[f"{kind}/retries"] == "7\n"
    assert files_["python/pip.conf"].startswith("[global]\ntimeout = 300\nretries = 7\n")


def test_proxy_over_https_without_rewriting(tmp_path: Path) -> None:
    files = dict(FULL_FILES)
    files["pyrlab.toml"] = str(files["pyrlab.toml"]).replace("apt_https = true", "").replace(
        '"http://devpi.internal:3141/root/pypi/+simple/"',
        '"https://pypi.internal/simple"\npip_extra_index = ["https://download.pytorch.org/whl/cu128"]')
    context = render_context(load_project(make_project(tmp_path, files), environ={}), "pylab")
    files_ = net(context)
    assert files_["apt/apt-proxy.conf"] == (
        'Acquire::http::Proxy "http://apt-cache.internal:3142";\n'
        'Acquire::https::Proxy "http://apt-cache.internal:3142";\n')
    assert "apt/https-via-proxy" not in files_
    assert files_["python/uv.toml"] == (
        '[pip]\nindex-url = "https://pypi.internal/simple"\n'
        'extra-index-url = ["https://download.pytorch.org/whl/cu128"]\n')
    assert files_["python/pip.conf"] == (
        PIP_PATIENCE + "index-url = https://pypi.internal/simple\n"
        "extra-index-url = https://download.pytorch.org/whl/cu128\n")


def test_without_a_proxy_only_the_default_patience_is_set(default_project: Project) -> None:
    for context in render_all(default_project).values():
        files_ = net(context)
        assert files_["python/pip.conf"] == PIP_PATIENCE
        assert not any(k.endswith(("apt-proxy.conf", "uv.toml")) for k in files_)


def test_ca_files_are_copied_and_trusted(full: Project) -> None:
    contexts = render_all(full)
    base = contexts["pyrlab-base"]
    assert base.files["pyrlab/ca/00-corp-root.crt"] == (PEM, 0o644)
    dockerfile = base.dockerfile
    copy = dockerfile.index("COPY pyrlab/ca/ /usr/local/share/ca-certificates/pyrlab/\n")
    # Copied before the steps that download anything, then registered by setup-base.
    assert copy < dockerfile.index("/run/pyrlab/bin/apt-install")
    assert copy < dockerfile.index("/run/pyrlab/bin/setup-base")
    assert b"update-ca-certificates" in base.files["pyrlab/bin/setup-base"][0]
    assert "ca-certificates" in base.files["pyrlab/apt/system.txt"][0].decode().split()
    # Later images inherit the trust store; they do not copy the files again.
    for name, context in contexts.items():
        if name != "pyrlab-base":
            assert not any(p.startswith("pyrlab/ca/") for p in context.files), name
            assert "pyrlab/ca" not in context.dockerfile


def test_cuda(full: Project, default_project: Project) -> None:
    contexts = render_all(full)
    assert ("ENV NVIDIA_VISIBLE_DEVICES=all \\\n    NVIDIA_DRIVER_CAPABILITIES=compute,utility\n"
            in contexts["pyrlab-base"].dockerfile)
    for context in contexts.values():
        assert 'org.pyrlab.cuda="true"' in context.dockerfile
    for context in render_all(default_project).values():
        assert "NVIDIA_" not in context.dockerfile
        assert 'org.pyrlab.cuda="false"' in context.dockerfile


def test_cuda_toolkit_is_a_system_package(tmp_path: Path) -> None:
    files = dict(FULL_FILES)
    files["pyrlab.toml"] = str(files["pyrlab.toml"]).replace("cuda = true",
                                                             "cuda = true\ncuda_toolkit = true")
    base = render_context(load_project(make_project(tmp_path, files), environ={}), "pyrlab-base")
    assert b"nvidia-cuda-toolkit\n" in base.files["pyrlab/apt/system.txt"][0]


def system_debs(context: BuildContext) -> list[str]:
    return context.files["pyrlab/apt/system.txt"][0].decode().split()


def test_a_locale_is_generated_and_sudo_installed_only_when_asked(
        full: Project, default_project: Project) -> None:
    base = render_all(full)["pyrlab-base"]
    assert {"locales", "sudo"} <= set(system_debs(base))
    # setup-base runs `localedef -i de_DE -f UTF-8 de_DE.utf8` (the name `locale -a` shows).
    assert base.files["pyrlab/base/locale"][0] == b"de_DE UTF-8 de_DE.utf8\n"
    assert b"\nALL ALL=(ALL:ALL) NOPASSWD: ALL\n" in base.files["pyrlab/base/sudoers"][0]
    assert "ENV LANG=de_DE.UTF-8 \\\n    LC_ALL=de_DE.UTF-8 \\\n" in base.dockerfile
    assert "target=/run/pyrlab/base \\\n    /run/pyrlab/bin/setup-base" in base.dockerfile
    for name, context in render_all(full).items():
        if name != "pyrlab-base":  # what the root image holds, its children inherit
            assert not [p for p in context.files if p.startswith("pyrlab/base/")], name
    default = render_all(default_project)["pyrlab-base"]
    assert not {"locales", "sudo"} & set(system_debs(default))
    assert default.files["pyrlab/base/locale"][0] == b""  # C.UTF-8 is built into glibc
    assert "pyrlab/base/sudoers" not in default.files


def test_run_sudo_changes_what_every_image_is_built_from(full_project: Path) -> None:
    with_sudo = hashes(full_project)
    toml = (full_project / "pyrlab.toml").read_text()
    write(full_project, "pyrlab.toml", toml.replace("sudo = true", "sudo = false"))
    without = hashes(full_project)
    assert all(with_sudo[name] != without[name] for name in with_sudo)


def test_every_python_step_turns_the_jupyter_news_off(full: Project,
                                                    default_project: Project) -> None:
    for project in (full, default_project):
        for name, context in render_all(project).items():
            if "pyrlab/python/requirements.txt" not in context.files:
                assert "pyrlab/python/lab-overrides.json" not in context.files
                continue
            overrides = json.loads(context.files["pyrlab/python/lab-overrides.json"][0])
            # The schema's type: the strings "true" (always), "false" (never), "none" (ask).
            assert overrides["@jupyterlab/apputils-extension:notification"] == {
                "fetchNews": "false"}, name


def test_slim_strips_with_a_build_only_tools_stage_only_where_python_is_installed(
        full: Project, tmp_path: Path) -> None:
    for name, context in render_all(full).items():
        dockerfile = context.dockerfile
        if "pyrlab/python/requirements.txt" in context.files:
            assert context.files["pyrlab/python/slim"]
            assert context.files["pyrlab/tools/system.txt"][0] == b"binutils\n"
            # The tools stage starts from the base image, not from the image's parent, so
            # that it stays cached whatever the parent becomes; the Python step mounts it.
            assert f"FROM {full.config.base.image} AS pyrlab-tools\n" in dockerfile, name
            assert "--mount=type=bind,from=pyrlab-tools,source=/,target=/run/pyrlab/tools" \
                in dockerfile
        else:
            assert "pyrlab-tools" not in dockerfile, name
            assert not any(p.startswith("pyrlab/tools/") for p in context.files)
    # slim = false: nothing of it; another input hash.
    root = init_lab(tmp_path / "lab")
    config = root / "pyrlab.toml"
    slim = load_project(root, environ={})
    config.write_text(config.read_text().replace("[base]\n", "[base]\nslim = false\n", 1))
    kept = load_project(root, environ={})
    assert kept.config.base.slim is False
    for name, context in render_all(kept).items():
        assert "pyrlab-tools" not in context.dockerfile
        assert "pyrlab/python/slim" not in context.files
        if "pyrlab/python/requirements.txt" in context.files:
            assert context.input_hash != render_context(slim, name).input_hash
    # An engine without build stages to mount: test suites still go, no tools stage.
    no_tools = render_context(slim, "pylab", RenderOptions(tools_stage=False))
    assert "pyrlab/python/slim" in no_tools.files
    assert "pyrlab-tools" not in no_tools.dockerfile


# --------------------------------------------------------------------------- engines, disk


def test_podman_rendering_has_no_locked_cache_mounts(full: Project) -> None:
    docker = render_all(full)
    podman = render_all(full, RenderOptions(cache_sharing_locked=False))
    assert "sharing=locked" in docker["pyrlab-base"].dockerfile
    for name, context in podman.items():
        assert "sharing=locked" not in context.dockerfile, name
        # Otherwise the same steps, with the same cache ids.
        assert context.dockerfile.count("--mount=type=cache") == \
            docker[name].dockerfile.count("--mount=type=cache")


@pytest.mark.project_names  # compared with a project loaded with no environment
def test_render_command_writes_contexts_with_content_mtimes_and_fixed_modes(
        full_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    # Docker named: `expected` is rendered with Docker's options, whichever daemon answers.
    docker = ["--engine", "docker"]
    assert main(["render", "-C", str(full_project), "-o", str(out), "pylab", *docker]) == 0
    capsys.readouterr()
    # A folder pyrlab made is pyrlab's: what is left in it is replaced.
    write(out, "pylab/stale.txt", "left over from an earlier render\n")
    assert main(["render", "-C", str(full_project), "-o", str(out), *docker]) == 0
    assert capsys.readouterr().out.split() == [
        "pyrlab-base", str(out / "pyrlab-base"), "pylab", str(out / "pylab"),
        "pylab-torch", str(out / "pylab-torch"), "rlab-base", str(out / "rlab-base"),
        "rlab", str(out / "rlab")]
    expected = render_all(load_project(full_project, environ={}))
    for name, context in expected.items():
        folder = out / name
        on_disk = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
        assert sorted(on_disk) == sorted(context.files), name  # stale.txt is gone
        for rel, (content, mode) in context.files.items():
            st = on_disk[rel].stat()
            assert on_disk[rel].read_bytes() == content
            assert stat.S_IMODE(st.st_mode) == mode, rel
            assert st.st_mtime == content_mtime(content), rel
        for directory in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            assert directory.stat().st_mtime == FIXED_MTIME, directory
            assert stat.S_IMODE(directory.stat().st_mode) == 0o755, directory
    assert os.access(out / "pylab" / "pyrlab" / "bin" / "uv-install", os.X_OK)


def test_files_of_equal_size_but_different_content_get_different_mtimes() -> None:
    # BuildKit reuses a synced file when path, size and mtime match: content must show.
    assert content_mtime(b"numpy==2.3.1\n") != content_mtime(b"numpy==2.3.2\n")
    assert content_mtime(b"same\n") == content_mtime(b"same\n")


# --------------------------------------------------------------------------- inventory step


def test_every_image_records_its_inventory_last_with_the_facts_it_was_built_from(
        full: Project) -> None:
    for name, context in render_all(full).items():
        dockerfile = context.dockerfile
        step = dockerfile.index("RUN --mount=type=bind,source=pyrlab/inventory,")
        assert step > max(dockerfile.rfind(f"/run/pyrlab/bin/{s}") for s in
                          ("apt-install", "setup-base", "uv-install", "r-install"))
        assert dockerfile.index('ARG PYRLAB_BASE_ID=""') < step < dockerfile.index("LABEL ")
        assert dockerfile[step:].count("RUN ") == 1  # the last RUN: nothing installs after it
        meta = json.loads(context.files[META_FILE][0])
        assert meta == {"image": name, "input_hash": context.input_hash,
                        "pyrlab_version": __version__,
                        "pinned_r": ["jsonlite"] if name == "rlab" else []}
        assert context.files["pyrlab/inventory/inventory.py"][0] == \
            (CONTAINER / "inventory.py").read_bytes()


def test_the_inventory_step_reruns_with_any_input_and_podman_sees_it(full: Project) -> None:
    """meta.json names the input hash; buildah ignores what a step mounts, so on Podman the
    step's RUN line carries the input hash itself."""
    for context in render_all(full, RenderOptions(run_input_keys=True)).values():
        line = next(line for line in context.dockerfile.splitlines()
                    if "/run/pyrlab/inventory/meta.json" in line)
        assert line.endswith(f'"$PYRLAB_BASE_ID" # inputs {context.input_hash}')


def test_pins_of_ancestors_count_and_only_exact_pins(tmp_path: Path) -> None:
    root = make_project(tmp_path / "lab", {
        "pyrlab.toml": """\
            [base]
            debs = []
            [images.rlab-base]
            r = "debian"
            r_packages = ["base_r.txt"]
            [images.rlab]
            from = "rlab-base"
            r_packages = ["r.txt"]
            """,
        "base_r.txt": "jsonlite==1.8.9\n",
        "r.txt": "cli>=3.6.0\nRcpp==1.0.14\nggplot2\n",
    })
    project = load_project(root, environ={})
    meta = json.loads(render_context(project, "rlab").files[META_FILE][0])
    assert meta["pinned_r"] == ["Rcpp", "jsonlite"]


def test_the_compiled_template_is_kept_between_runs_and_a_bad_cache_is_no_error(
        default_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrlab.dockerfile import render

    expected = render_context(default_project, "pylab")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    render._environment.cache_clear()
    try:
        assert render_context(default_project, "pylab") == expected
        kept = list((tmp_path / "cache" / "pyrlab" / "templates").iterdir())
        assert len(kept) == 1 and kept[0].stat().st_size > 0
        # A new process (a new environment) loads it and renders the same.
        render._environment.cache_clear()
        assert render_context(default_project, "pylab") == expected
        # A corrupt cache file, or a cache folder that cannot be made: rendered all the same.
        kept[0].write_bytes(b"not a cache")
        render._environment.cache_clear()
        assert render_context(default_project, "pylab") == expected
        (tmp_path / "blocked").write_text("a file where the cache folder would be")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
        render._environment.cache_clear()
        assert render_context(default_project, "pylab") == expected
    finally:
        render._environment.cache_clear()


@pytest.mark.parametrize(("proxy", "expected"), [
    (('pip_index = "https://pypi.example/simple/"\n'
     'pip_extra_index = ["http://wheels.example/simple/", "https://u:p@private.example/s/"]'),
     ("# pyrlab: the build's package index ([proxy] in pyrlab.toml), for pip in the lab\n"
     "[global]\nindex-url = https://pypi.example/simple/\n"
     "extra-index-url = http://wheels.example/simple/\ntrusted-host = wheels.example\n")),
    ('pip_index = "https://user:secret@pypi.example/simple/"', None),  # build time only
    ('pip_index = "http://127.0.0.1:3141/root/pypi/+simple/"', None),  # the build host's
    ("", None),
])
def test_pip_in_the_lab_uses_the_build_index_where_it_can(
        tmp_path: Path, proxy: str, expected: str | None) -> None:
    root = init_lab(tmp_path / "lab")
    config = root / "pyrlab.toml"
    config.write_text(config.read_text().replace("[proxy]  ", f"[proxy]\n{proxy}\n#", 1))
    project = load_project(root, environ={})
    base = render_context(project, "pyrlab-base").files
    pip_conf = base.get("pyrlab/runtime/pip.conf")
    assert (pip_conf[0].decode() if pip_conf else None) == expected
    dockerfile = base["Dockerfile"][0].decode()
    assert ("COPY pyrlab/runtime/pip.conf /etc/pip.conf" in dockerfile) == (expected is not None)
    for name, context in render_all(project).items():
        # Credentials nowhere in the context: they are build secrets (see test_secrets.py).
        assert [path for path, (content, _) in context.files.items()
                if b":secret@" in content or b":p@" in content] == [], name


def test_each_lab_image_names_its_own_run_time_install_places(default_project: Project) -> None:
    for name in ("pylab", "rlab"):
        dockerfile = render_context(default_project, name).dockerfile
        # Per project too (the project is `lab`): a shared home keeps them apart.
        assert f"PYRLAB_IMAGE=lab/{name} " in dockerfile
        assert f"R_LIBS_USER=~/.local/share/pyrlab/lab/{name}/R/%v" in dockerfile
    assert "PYRLAB_IMAGE" not in render_context(default_project, "pyrlab-base").dockerfile


def test_a_delta_records_its_inventory_at_the_end_of_its_last_step(tmp_path: Path) -> None:
    """One RUN less on the way to a one-package layer, and the manifest still written."""
    from pyrlab.dockerfile.render import INVENTORY_COMMAND, Delta

    project = load_project(make_project(tmp_path / "lab", FULL_FILES))
    full = render_context(project, "pylab").files["Dockerfile"][0].decode()
    assert full.count("inventory.py") == 1
    for steps, last in ((("python",), "uv-install"), (("apt", "python"), "uv-install")):
        delta = render_context(project, "pylab", delta=Delta(steps, 1, "h", {"python": ("six",)}))
        dockerfile = delta.files["Dockerfile"][0].decode()
        runs = [r for r in re.split(r"\n(?=RUN )", dockerfile) if r.startswith("RUN ")]
        assert runs[-1].split("\n\n")[0].endswith(f"/run/pyrlab/bin/{last} && \\\n    "
                                                  f"{INVENTORY_COMMAND}"), steps
        assert dockerfile.count("inventory.py") == 1
        final = dockerfile[dockerfile.rindex("\nFROM "):]  # after the tools stage
        assert final.index('ARG PYRLAB_BASE_ID=""') < final.index("\nRUN ")
    added = render_context(project, "pylab", delta=Delta(("python",), 1, "h", {"python": ("six",)}))
    assert added.files["pyrlab/python/added.txt"][0] == b"six\n"
