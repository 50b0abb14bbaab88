"""`pyrlab export jupyterhub`: the DockerSpawner configuration and the Zero to JupyterHub
values, from the default and the full (CUDA, flavour, sudo) projects; and the images'
side of it (jupyterhub-singleuser in the first lab-port image of each chain)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from labfiles import CONTAINER, FULL_FILES, REPO, init_lab, make_project, write

from pyrlab.cli import main
from pyrlab.config.model import Config
from pyrlab.config.project import load_project
from pyrlab.config.readers import load_config
from pyrlab.contents.pushed import pushed_refs
from pyrlab.dockerfile.render import render_context
from pyrlab.ecosystems.python import JUPYTERHUB_SERIES
from pyrlab.exports.jupyterhub import (
    docker_config,
    hub_images,
    kubernetes_values,
)

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra (pip install -e '.[test]')")

SCHEMA = REPO.parent / "shared" / "data" / "z2jh" / "values.schema.yaml"


def _config(root: Path) -> Config:
    return load_config(root, environ={})


def _docker_settings(text: str) -> dict[str, Any]:
    """What the generated jupyterhub_config.py sets, by running it against a recording `c`
    (it must be plain, valid Python whose values are literals)."""
    ast.parse(text)

    class Section(dict[str, Any]):
        def __getattr__(self, name: str) -> Any:
            return self.setdefault(name, Section())

        def __setattr__(self, name: str, value: Any) -> None:
            self[name] = value

    c = Section()
    namespace: dict[str, Any] = {"get_config": lambda: c}
    exec(compile(text, "jupyterhub_config.py", "exec"), namespace)  # noqa: S102
    return {"c": c, "namespace": namespace}


@pytest.fixture
def default_root(tmp_path: Path) -> Path:
    return init_lab(tmp_path / "lab")


@pytest.fixture
def full_root(tmp_path: Path) -> Path:
    return make_project(tmp_path / "full", FULL_FILES)


# --------------------------------------------------------------------------- the images


def test_jupyterhub_is_installed_once_per_chain_pinned_to_the_export_series(
        full_root: Path) -> None:
    project = load_project(full_root, environ={})
    installs = {name: render_context(project, name).files.get("pyrlab/python/system.txt")
                for name in project.config.images}
    pin = f"jupyterhub=={JUPYTERHUB_SERIES}.*\n".encode()
    # pylab and rlab serve labs first in their chains; pylab-torch inherits pylab's venv.
    assert {name: content for name, content in installs.items() if content} == {
        "pylab": (pin, 0o644), "rlab": (pin, 0o644)}
    write(full_root, "pyrlab.toml",
          FULL_FILES["pyrlab.toml"].replace("[base]\n", "[base]\njupyterhub = false\n", 1))
    off = load_project(full_root, environ={})
    assert off.config.base.jupyterhub is False
    changed = set()
    for name in off.config.images:
        context = render_context(off, name)
        assert "pyrlab/python/system.txt" not in context.files
        if context.input_hash != render_context(project, name).input_hash:
            changed.add(name)
    # The images without it (the bases) stay as they are; pylab-torch is built on pylab.
    assert changed == {"pylab", "pylab-torch", "rlab"}


def test_test_extra_pins_the_hub_of_the_same_series() -> None:
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    assert f"jupyterhub=={JUPYTERHUB_SERIES}.*" in extra


def test_start_script_execs_the_single_user_server_under_a_hub() -> None:
    script = (REPO / "src/pyrlab/container/start.sh").read_text()
    hub = script.index("JUPYTERHUB_API_TOKEN")
    assert script.index(". \"$envfile\"") < hub and script.index('. "$rc"') < hub
    assert script.index('cd "${PYRLAB_NOTEBOOKS') < hub
    assert 'exec jupyterhub-singleuser "$@"' in script[hub:]


class _HubServer(BaseHTTPRequestHandler):
    """A single-user server under a hub: its API at the user's prefix, the hub's token."""

    def do_GET(self) -> None:
        ok = (self.headers.get("Authorization") == "token hub-token"
              and self.path == "/user/alice/api/status")
        self.send_response(200 if ok else 403)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hub_server_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _HubServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_health_check_asks_the_server_where_the_hub_put_it(hub_server_port: int) -> None:
    def check(prefix: str) -> subprocess.CompletedProcess[str]:
        env = {"PYRLAB_LAB_PORT": "1", "JUPYTERHUB_API_TOKEN": "hub-token",
               "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{hub_server_port}{prefix}",
               "JUPYTERHUB_SERVICE_PREFIX": prefix}
        return subprocess.run([sys.executable, str(CONTAINER / "healthcheck.py")], env=env,
                              capture_output=True, text=True, timeout=30, check=False)

    assert check("/user/alice/").returncode == 0
    assert check("/user/bob/").returncode == 1


# --------------------------------------------------------------------------- docker


def test_docker_config_offers_every_runnable_image_with_a_volume_per_user(
        default_root: Path) -> None:
    config = _config(default_root)
    c = _docker_settings(docker_config(config, hub_images(config)))["c"]
    spawner = c["DockerSpawner"]
    assert c["JupyterHub"]["spawner_class"] == "dockerspawner.DockerSpawner"
    # Without a prefix, the images as this host names them: PROJECT/IMAGE.
    assert spawner["allowed_images"] == {"pylab": "lab/pylab:latest", "rlab": "lab/rlab:latest"}
    assert spawner["image"] == "lab/pylab:latest"
    assert spawner["volumes"] == {"pyrlab-home-{username}": "/home/notebook"}
    assert spawner["notebook_dir"] == "/home/notebook/work"
    assert spawner["remove"] is True
    assert spawner["cmd"] == ["/opt/pyrlab/start.sh"]  # not a hub's jupyterhub-singleuser
    uid, gid = config.run.uid, config.run.gid
    assert spawner["extra_create_kwargs"] == {"user": f"{uid}:{gid}"}
    assert spawner["extra_host_config"] == {"security_opt": ["no-new-privileges"],
                                            "cap_drop": ["ALL"]}
    assert "read_only_volumes" not in spawner  # no env file, no rc script in the project


def test_docker_config_of_a_cuda_flavour_project_with_scripts(full_root: Path) -> None:
    write(full_root, ".env", "A=1\n")
    write(full_root, "pylab.sh", "export B=2\n")
    write(full_root, "pyrlab.toml", FULL_FILES["pyrlab.toml"].replace(
        "[run]\n", '[run]\nrc = { pylab = "pylab.sh" }\nuid = 1234\ngid = 100\n', 1))
    config = _config(full_root)
    settings = _docker_settings(docker_config(config, hub_images(config)))
    spawner = settings["c"]["DockerSpawner"]
    assert spawner["allowed_images"] == {"pylab": "full/pylab:latest",
                                         "pylab-torch": "full/pylab-torch:latest",
                                         "rlab": "full/rlab:latest"}
    assert spawner["extra_create_kwargs"] == {"user": "1234:100"}
    # run.sudo = true: no security options (sudo needs them off); CUDA: every GPU.
    assert spawner["extra_host_config"] == {
        "device_requests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]}
    assert spawner["read_only_volumes"] == {str(full_root.resolve() / ".env"): "/etc/pyrlab/env"}
    assert settings["namespace"]["PYRLAB_RC"] == {
        "full/pylab:latest": str(full_root.resolve() / "pylab.sh")}
    assert settings["c"]["Spawner"]["pre_spawn_hook"] is settings["namespace"]["pyrlab_rc"]


def test_project_text_is_never_code_in_the_docker_config(tmp_path: Path) -> None:
    odd = tmp_path / "it's {x} \"odd\"\n#"
    root = init_lab(odd)
    write(root, ".env", "A=1\n")
    config = _config(root)
    text = docker_config(config, hub_images(config))
    spawner = _docker_settings(text)["c"]["DockerSpawner"]
    # Braces doubled: DockerSpawner formats volume names ({username}).
    expected = str(root.resolve() / ".env").replace("{", "{{").replace("}", "}}")
    assert spawner["read_only_volumes"] == {expected: "/etc/pyrlab/env"}


def test_registry_and_pushed_digests_name_the_images(default_root: Path) -> None:
    config = _config(default_root)
    refs = {i.name: i.ref for i in hub_images(config, registry="reg.example:5000/team")}
    assert refs == {"pylab": "reg.example:5000/team/pylab:latest",
                    "rlab": "reg.example:5000/team/rlab:latest"}
    digest = "sha256:" + "a" * 64
    write(default_root, "pyrlab.pushed.toml", f"""\
        [images.pylab]
        ref = "reg.example:5000/team/pylab@{digest}"
        digest = "{digest}"
        image-id = "sha256:{'b' * 64}"
        tags = ["reg.example:5000/team/pylab:latest"]
        """)
    pushed = pushed_refs(default_root)
    assert pushed == {"pylab": f"reg.example:5000/team/pylab@{digest}"}
    refs = {i.name: i.ref for i in hub_images(config, registry="reg.example:5000/team",
                                              pushed=pushed)}
    assert refs["pylab"] == f"reg.example:5000/team/pylab@{digest}"
    assert refs["rlab"] == "reg.example:5000/team/rlab:latest"
    # Pushed elsewhere than the registry asked for: that registry's name.
    other = hub_images(config, registry="other.example/ns", pushed=pushed)
    assert other[0].ref == "other.example/ns/pylab:latest"


# --------------------------------------------------------------------------- kubernetes


def _values(config: Config, registry: str | None = None) -> dict[str, Any]:
    text = kubernetes_values(config, hub_images(config, registry=registry))
    return dict(yaml.safe_load(text))


def test_z2jh_profiles_one_per_runnable_image_with_gpu_limits_for_cuda(full_root: Path) -> None:
    config = _config(full_root)
    values = _values(config, "registry.example/lab")
    singleuser = values["singleuser"]
    assert singleuser["cmd"] == ["/opt/pyrlab/start.sh"]
    assert singleuser["storage"]["homeMountPath"] == "/home/notebook"
    assert singleuser["image"] == {"name": "registry.example/lab/pylab", "tag": "latest"}
    profiles = singleuser["profileList"]
    assert [p["slug"] for p in profiles] == ["pylab", "pylab-torch", "rlab"]
    assert [p.get("default", False) for p in profiles] == [True, False, False]
    for profile in profiles:
        override = profile["kubespawner_override"]
        assert override["image"] == f"registry.example/lab/{profile['slug']}:latest"
        assert (override["uid"], override["gid"], override["fs_gid"]) == (
            config.run.uid, config.run.gid, config.run.gid)
        assert override["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
        assert override["mem_limit"] and override["cpu_limit"]


def test_z2jh_profiles_without_cuda_have_no_gpu(default_root: Path) -> None:
    values = _values(_config(default_root))
    for profile in values["singleuser"]["profileList"]:
        assert "extra_resource_limits" not in profile["kubespawner_override"]
        assert profile["kubespawner_override"]["image"] in ("lab/pylab:latest",
                                                            "lab/rlab:latest")


def _without_top_level_required(schema: dict[str, Any]) -> dict[str, Any]:
    # A values file is merged over the chart's own defaults; the schema's top-level
    # `required` holds for that merge, every other rule for the file's own keys.
    return {k: v for k, v in schema.items() if k != "required"}


@pytest.mark.parametrize("project", ["default_root", "full_root"])
def test_z2jh_values_validate_against_the_charts_schema(
        project: str, request: pytest.FixtureRequest) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the Zero to JupyterHub values schema is not at {SCHEMA}")
    jsonschema = pytest.importorskip("jsonschema")
    schema = _without_top_level_required(yaml.safe_load(SCHEMA.read_text()))
    values = _values(_config(request.getfixturevalue(project)), "reg.example:5000/team")
    jsonschema.validate(values, schema)
    broken = {"singleuser": {**values["singleuser"], "uid": "1000"}}
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        jsonschema.validate(broken, schema)


def test_yaml_strings_are_quoted_whatever_they_hold(tmp_path: Path) -> None:
    root = init_lab(tmp_path / "lab: #1 {x}")
    config = _config(root)
    values = _values(config)
    assert values["singleuser"]["profileList"][0]["display_name"] == "pylab"
    text = kubernetes_values(config, hub_images(config))
    assert str(root) in text  # the header names the project, as a comment line
    assert all(line.startswith("#") for line in text.splitlines() if str(root) in line)


# --------------------------------------------------------------------------- the command


def test_export_command_writes_the_file_and_reports_it(
        default_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "values.yaml"
    assert main(["export", "jupyterhub", "-C", str(default_root), "--kind", "kubernetes",
                 "-o", str(out)]) == 0
    assert re.match(rf"wrote {re.escape(str(out))}: Zero to JupyterHub Helm values "
                    r"\(pylab, rlab\)", capsys.readouterr().out)
    assert yaml.safe_load(out.read_text())["singleuser"]["profileList"]
    assert main(["export", "jupyterhub", "-C", str(default_root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["images"] == ["pylab:latest", "rlab:latest"]
    ast.parse(data["text"])


def test_export_errors_are_one_clear_message(
        default_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "jupyterhub", "-C", str(default_root), "--registry", "bad host/x"]) == 2
    err = capsys.readouterr().err
    assert "--registry: expected HOST[:PORT]/NAMESPACE, got 'bad host/x'" in err
    assert "Traceback" not in err
    # -o's parent folders are made; a parent that is a file cannot be.
    assert main(["export", "jupyterhub", "-C", str(default_root),
                 "-o", str(default_root / "pyrlab.toml" / "x.py")]) == 3
    assert "cannot write" in capsys.readouterr().err
    assert main(["export", "jupyterhub", "-C", str(default_root), "--set",
                 "images.pylab.ports={}", "--set", "images.rlab.ports={}"]) == 3
    assert "no image has a lab port" in capsys.readouterr().err


def test_root_servers_need_allow_unsafe(default_root: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = default_root / "hub.py"
    args = ["export", "jupyterhub", "-C", str(default_root), "--set", "run.uid=0",
            "-o", str(out)]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "run.uid: '0' runs the lab as root" in err
    assert "pyrlab export jupyterhub --allow-unsafe allows it" in err
    assert not out.exists()
    assert main([*args, "--allow-unsafe"]) == 0
    assert "allowed by --allow-unsafe" in capsys.readouterr().err
    assert "{'user': '0:1000'}" in out.read_text()
