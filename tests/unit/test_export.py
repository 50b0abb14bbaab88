"""`pyrlab export compose` and `pyrlab export ci --kind github`, without an engine: what the
files say, read back with a YAML parser and checked against the Compose Specification and
GitHub's workflow schema (from ../shared/data beside the project, skipped where absent)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from labfiles import REPO, init_lab

from pyrlab import __version__
from pyrlab.cli import main
from pyrlab.exports.yamltext import dump, quote

SHARED_DATA = REPO.parent / "shared" / "data"
COMPOSE_SCHEMA = SHARED_DATA / "compose-spec" / "compose-spec.json"
WORKFLOW_SCHEMA = SHARED_DATA / "schemastore" / "github-workflow.json"
ON_DEFAULT_BRANCH = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"


class StringOnLoader(yaml.SafeLoader):
    """YAML 1.2's booleans only: PyYAML (YAML 1.1) reads a plain `on:` key as True."""


StringOnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StringOnLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def load(text: str) -> Any:
    return yaml.load(text, Loader=StringOnLoader)  # a SafeLoader subclass


def validate(document: Any, schema_path: Path) -> None:
    if not schema_path.is_file():
        pytest.skip(f"{schema_path} is absent (the schema comes from ../shared/data beside "
                    "the project)")
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith(("http://json-schema.org/draft-07/",
                                         "https://json-schema.org/draft-07/"))
    jsonschema.Draft7Validator(schema).validate(document)


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    return init_lab(tmp_path / "lab")


def sets(root: Path, *more: str) -> list[str]:
    args = ["--set", f"run.notebooks={root / 'nb'}", "--set", f"run.home={root / 'home'}",
            "--set", "run.uid=1234", "--set", "run.gid=2345"]
    for value in more:
        args += ["--set", value]
    return args


def export(root: Path, kind: str, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    out = root / f"{kind}.yml"
    capsys.readouterr()
    assert main(["export", kind, "-C", str(root), *args, "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    return out.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- YAML writer


ODD = ['say "hi"', "a: b", "# not a comment", "line\nbreak", "tab\there", "back\\slash",
       "on", "yes", "No", "null", "~", "0x1F", "1e3", "", " lead", "trail ", "ünï", "emoji 😀",
       "nel\x85ls\u2028ps\u2029", "nul\x00bell\x07", "bom\ufeff", "{[&*!|>'%@`]}", "- dash"]


@pytest.mark.parametrize("text", ODD)
def test_any_string_reads_back_as_itself(text: str) -> None:
    document = dump({"k": text, text or "empty": [text], "n": {"v": text}})
    assert yaml.safe_load(document) == {"k": text, text or "empty": [text], "n": {"v": text}}
    assert load(document) == yaml.safe_load(document)


def test_quote_is_one_line() -> None:
    assert "\n" not in quote("a\nb\u2028c")


# --------------------------------------------------------------------------- compose


def test_compose_starts_labs_as_up_does(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (lab / ".env").write_text("GREETING=hello\n")  # run.envfile: mounted read-only
    text = export(lab, "compose", *sets(lab, "run.bind=0.0.0.0"), capsys=capsys)
    document = load(text)
    validate(document, COMPOSE_SCHEMA)
    services = document["services"]
    assert list(services) == ["pylab", "rlab"]  # every image with a lab port, none of the bases
    pylab = services["pylab"]
    assert pylab["image"] == "pylab:latest"
    assert pylab["container_name"] == "pyrlab-pylab-8888"  # so `pyrlab ps/url/down` find it
    assert pylab["user"] == "1234:2345"
    assert pylab["ports"] == ["0.0.0.0:8888:8888", "0.0.0.0:40000:40000", "0.0.0.0:6006:6006"]
    assert pylab["volumes"] == [
        {"type": "bind", "source": str(lab / "home"), "target": "/home/notebook",
         "read_only": False},
        {"type": "bind", "source": str(lab / "nb"), "target": "/home/notebook/work",
         "read_only": False},
        {"type": "bind", "source": str(lab / ".env"), "target": "/etc/pyrlab/env",
         "read_only": True},
    ]
    assert pylab["security_opt"] == ["no-new-privileges"]
    assert pylab["cap_drop"] == ["ALL"]
    assert pylab["healthcheck"] == {"interval": "10s"}  # the image's check, checked often
    assert pylab["environment"]["PYRLAB_LAB_PORT"] == "8888"
    assert pylab["labels"]["org.pyrlab.lab"] == "pylab"
    assert "deploy" not in pylab and "privileged" not in pylab
    # The folders exist, as `up` makes them (the engine would make them as root).
    assert (lab / "nb").is_dir() and (lab / "home" / "work").is_dir()


def test_compose_never_holds_the_token(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = export(lab, "compose", "pylab", *sets(lab), capsys=capsys)
    token_file = lab / ".pyrlab" / "tokens" / "pyrlab-pylab-8888.token"
    token = token_file.read_text().strip()
    assert len(token) == 48
    assert token not in text and "JUPYTER_TOKEN" not in text
    pylab = load(text)["services"]["pylab"]
    env_file = Path(pylab["env_file"][0])
    assert env_file.read_text() == f"JUPYTER_TOKEN={token}\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    # The same token `pyrlab up` and `pyrlab url` use, again on a second export.
    export(lab, "compose", "pylab", *sets(lab), capsys=capsys)
    assert env_file.read_text() == f"JUPYTER_TOKEN={token}\n"


def test_compose_reserves_gpus_for_cuda(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = load(export(lab, "compose", "pylab", *sets(lab, "base.cuda=true"),
                           capsys=capsys))
    validate(document, COMPOSE_SCHEMA)
    devices = document["services"]["pylab"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_compose_translates_allowed_run_args(lab: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    docker_args = json.dumps(["--shm-size", "1g", "-e", "GREETING=costs $5", "--label=team=ds",
                              "--memory=2g", "--cpus", "1.5", "--pids-limit", "200",
                              "--ulimit", "nofile=1024:2048", "--init"])
    text = export(lab, "compose", "pylab",
                  *sets(lab, f"run.docker_args={docker_args}",
                        'images.pylab.run_args=["--env", "EXTRA=1", "--ulimit", "nproc=512"]'),
                  capsys=capsys)
    document = load(text)
    validate(document, COMPOSE_SCHEMA)
    pylab = document["services"]["pylab"]
    assert pylab["shm_size"] == "1g"
    assert pylab["mem_limit"] == "2g"
    assert pylab["cpus"] == 1.5
    assert pylab["pids_limit"] == 200
    assert pylab["ulimits"] == {"nofile": {"soft": 1024, "hard": 2048}, "nproc": 512}
    assert pylab["init"] is True
    # `$` doubled: compose must not read `$5` as a variable.
    assert pylab["environment"]["GREETING"] == "costs $$5"
    assert pylab["environment"]["EXTRA"] == "1"
    assert pylab["labels"]["team"] == "ds"
    assert pylab["labels"]["org.pyrlab.lab"] == "pylab"


@pytest.mark.parametrize(("setting", "where", "named", "unsafe"), [
    ('images.pylab.run_args=["--shm-size", "1g", "--cap-add", "SYS_ADMIN"]',
     "images.pylab.run_args[2]", "--cap-add", "'--cap-add SYS_ADMIN'"),
    ('run.docker_args=["--privileged"]', "run.docker_args[0]", "--privileged", "'--privileged'"),
    ('run.docker_args=["-v", "/:/host"]', "run.docker_args[0]", "-v", "'-v /:/host'"),
    ('run.docker_args=["--memory", "lots"]', "run.docker_args[0]", "--memory lots", None),
    ('run.docker_args=["-e", "JUPYTER_TOKEN=x"]', "run.docker_args[0]", "-e JUPYTER_TOKEN=x",
     "'-e JUPYTER_TOKEN=x'"),
])
def test_compose_refuses_what_it_cannot_translate(
        lab: Path, capsys: pytest.CaptureFixture[str], setting: str, where: str,
        named: str, unsafe: str | None) -> None:
    """What widens the lab's power is refused as `up` refuses it, unless --allow-unsafe;
    what has no compose key is refused even then, by name."""
    out = lab / "compose.yaml"
    if unsafe is not None:
        code = main(["export", "compose", "-C", str(lab), *sets(lab, setting), "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 3
        assert unsafe in err and "pyrlab export compose --allow-unsafe allows it" in err
        assert "Traceback" not in err
        assert not out.exists()
    code = main(["export", "compose", "-C", str(lab), *sets(lab, setting), "-o", str(out),
                 *(["--allow-unsafe"] if unsafe is not None else [])])
    err = capsys.readouterr().err
    assert code == 3
    assert f"pyrlab.toml: {where}: `{named}" in err
    assert "Traceback" not in err and "hint:" in err
    assert not out.exists()


def test_compose_allow_unsafe_grants_what_compose_can_express(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setting = 'run.docker_args=["--network", "host"]'
    out = lab / "compose.yaml"
    assert main(["export", "compose", "-C", str(lab), *sets(lab, setting), "-o", str(out)]) == 3
    assert "'--network host'" in capsys.readouterr().err
    assert not out.exists()
    text = export(lab, "compose", "pylab", "--allow-unsafe", *sets(lab, setting), capsys=capsys)
    assert load(text)["services"]["pylab"]["network_mode"] == "host"


def test_compose_names_unknown_and_base_images(lab: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "compose", "-C", str(lab), *sets(lab), "nosuch"]) == 6
    assert "unknown image 'nosuch'" in capsys.readouterr().err
    assert main(["export", "compose", "-C", str(lab), *sets(lab), "pyrlab-base"]) == 6
    assert "has no lab port" in capsys.readouterr().err


def test_compose_to_stdout_and_global_options_anywhere(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "-C", str(lab), *sets(lab), "compose", "rlab"]) == 0
    captured = capsys.readouterr()
    assert list(load(captured.out)["services"]) == ["rlab"]
    assert "rlab: its token is in" in captured.err  # notes on stderr, the file on stdout
    assert main(["export", *sets(lab), "compose", "-C", str(lab), "rlab", "--json",
                 "--set", "run.bind=127.0.0.2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "compose"
    assert data["labs"][0]["url"] == "http://127.0.0.2:9999/lab"
    assert "127.0.0.2:9999:9999" in data["text"]


# --------------------------------------------------------------------------- ci


def workflow_of(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    document = load(export(root, "ci", "--kind", "github", *args, capsys=capsys))
    validate(document, WORKFLOW_SCHEMA)
    assert isinstance(document, dict)
    return document


def steps_by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s.get("name", s.get("uses")): s for s in document["jobs"]["images"]["steps"]}


def test_workflow_builds_with_cache_and_pushes_on_default_branch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    lab = init_lab(repo / "labs" / "mylab")
    document = workflow_of(lab, capsys, "--registry", "registry.example.com:5000/team")
    assert set(document["on"]) == {"push", "pull_request", "workflow_dispatch"}
    job = document["jobs"]["images"]
    env = job["env"]
    assert env["LAB_PYRLAB"] == f"pyrlab=={__version__}"  # the pyrlab this project uses
    assert env["LAB_PROJECT"] == "labs/mylab"  # relative to the repository
    assert env["LAB_REGISTRY"] == env["LAB_CACHE_FROM"] == "registry.example.com:5000/team"
    steps = steps_by_name(document)
    assert steps["Install pyrlab"]["run"].strip() == 'pipx install "$LAB_PYRLAB"'
    build = steps["Build the images"]
    assert build["run"].strip() == 'pyrlab -C "$LAB_PROJECT" build --cache-from "$LAB_CACHE_FROM"'
    assert "if" not in build  # every push and pull request builds
    push = steps["Push the images"]
    assert push["if"] == ON_DEFAULT_BRANCH
    assert push["run"].strip() == 'pyrlab -C "$LAB_PROJECT" push --registry "$LAB_REGISTRY"'
    login = steps["Log in to the registry"]
    assert login["with"] == {"registry": "registry.example.com:5000",
                             "username": "${{ secrets.REGISTRY_USERNAME }}",
                             "password": "${{ secrets.REGISTRY_PASSWORD }}"}
    order = list(steps)
    assert order.index("Log in to the registry") < order.index("Build the images") \
        < order.index("Push the images")
    # The base is bootstrapped from Debian (`init --base debian`): the runner gets the tool.
    assert any("mmdebstrap" in name for name in steps)
    # No PYRLAB_* but the engine: pyrlab would read them as configuration keys.
    assert [k for k in env if k.startswith("PYRLAB_")] == ["PYRLAB_ENGINE"]


def test_workflow_installs_emulation_for_another_platform_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """[build] platforms with linux/arm64: the amd64 runner gets qemu-user-static (and
    arch-test for the arm64 bootstrap) before anything builds; without it, no such step."""
    plain = steps_by_name(workflow_of(init_lab(tmp_path / "plain"), capsys,
                                      "--registry", "ghcr.io/org"))
    assert not any("emulation" in name.lower() for name in plain)
    assert "arch-test" not in plain["Install mmdebstrap (the Debian base is bootstrapped)"]["run"]
    lab = init_lab(tmp_path / "both")
    with (lab / "pyrlab.toml").open("a") as file:
        file.write('\n[build]\nplatforms = ["linux/amd64", "linux/arm64"]\n')
    steps = steps_by_name(workflow_of(lab, capsys, "--registry", "ghcr.io/org"))
    order = list(steps)
    emulation = next(name for name in order if name.startswith("Install emulation"))
    assert "linux/arm64" in emulation
    run = steps[emulation]["run"]
    assert "sudo apt-get install -y --no-install-recommends qemu-user-static\n" in run
    assert "/proc/sys/fs/binfmt_misc/qemu-aarch64" in run  # checked: the job stops here
    bootstrap = "Install mmdebstrap (the Debian base is bootstrapped)"
    assert order.index(emulation) < order.index(bootstrap) < order.index("Build the images")
    assert "arch-test" in steps[bootstrap]["run"]
    # The build and the push take the platforms from the config: their lines are the same.
    assert steps["Push the images"]["run"] == plain["Push the images"]["run"]


def test_workflow_installs_the_pyrlab_it_is_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pyrlab that is not on PyPI: the workflow installs what --pyrlab names, through the
    job's env, never inside the run line."""
    lab = init_lab(tmp_path / "lab")
    spec = "git+https://git.example.org/tools/pyrlab.git@v0.1.0"
    document = workflow_of(lab, capsys, "--registry", "ghcr.io/org", "--pyrlab", spec)
    assert document["jobs"]["images"]["env"]["LAB_PYRLAB"] == spec
    assert steps_by_name(document)["Install pyrlab"]["run"].strip() == 'pipx install "$LAB_PYRLAB"'


def test_workflow_ghcr_uses_the_repository_token_and_the_prefix(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = workflow_of(lab, capsys, "--set", 'prefix="ghcr.io/acme/"',
                           "--cache-from", "ghcr.io/acme/cache:main")
    env = document["jobs"]["images"]["env"]
    assert env["LAB_REGISTRY"] == "ghcr.io/acme"
    assert env["LAB_CACHE_FROM"] == "ghcr.io/acme/cache:main"
    login = steps_by_name(document)["Log in to the registry"]["with"]
    assert login["password"] == "${{ secrets.GITHUB_TOKEN }}"


@pytest.mark.parametrize("name", ['my "lab": #1', "on", "lab\ttab", "ü lab - x: [y]"])
def test_workflow_quotes_odd_project_names(tmp_path: Path, name: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    lab = init_lab(repo / name)
    text = export(lab, "ci", "--registry", "ghcr.io/acme", capsys=capsys)
    document = load(text)
    validate(document, WORKFLOW_SCHEMA)
    assert document["name"] == f"pyrlab images: {name}"
    assert document["jobs"]["images"]["env"]["LAB_PROJECT"] == name
    # The folder's name reaches the scripts through env only.
    for step in document["jobs"]["images"]["steps"]:
        assert name not in step.get("run", "")


def test_workflow_refuses_expressions_and_bad_registries(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = init_lab(tmp_path / "${{ secrets.X }}")
    assert main(["export", "ci", "-C", str(lab), "--registry", "ghcr.io/acme"]) == 2
    assert "GitHub Actions would evaluate" in capsys.readouterr().err
    plain = init_lab(tmp_path / "plain")
    assert main(["export", "ci", "-C", str(plain), "--registry", "ghcr.io/a b"]) == 2
    assert "--registry: expected a registry" in capsys.readouterr().err
    assert main(["export", "ci", "-C", str(plain)]) == 2  # no registry in the prefix either
    assert "--registry" in capsys.readouterr().err


def test_export_without_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export"])
    assert exc.value.code == 2
    assert "compose" in capsys.readouterr().err


def test_output_folder_is_created(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = lab / ".github" / "workflows" / "pyrlab.yml"
    assert main(["export", "ci", "-C", str(lab), "--registry", "ghcr.io/acme",
                 "-o", str(out)]) == 0
    assert out.is_file() and not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    assert os.access(out, os.R_OK)
