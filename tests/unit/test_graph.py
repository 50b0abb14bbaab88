"""The image graph: build order, flavours added in a few lines, and broken graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
from labfiles import init_lab, write

from pyrlab.cli import main
from pyrlab.config.project import build_order, descendants, load_project
from pyrlab.config.readers import load_config
from pyrlab.dockerfile.render import render_context
from pyrlab.errors import ConfigError

TORCH = """
[images.pylab-torch]
from = "pylab"
requirements = ["requirements_torch.txt"]
ports = { lab = 8890 }
"""


def graph_problems(root: Path, toml: str) -> list[str]:
    write(root, "pyrlab.toml", toml)
    with pytest.raises(ConfigError) as caught:
        load_config(root, environ={})
    return [str(p) for p in caught.value.problems]


def add_torch(lab: Path) -> None:
    with (lab / "pyrlab.toml").open("a", encoding="utf-8") as f:
        f.write(TORCH)
    write(lab, "requirements_torch.txt", "torch\ntorchvision\n")


def test_default_order_parents_first(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert build_order(config) == ["pyrlab-base", "pylab", "rlab-base", "rlab"]
    # Asking for one image brings its ancestors, and nothing else.
    assert build_order(config, ["rlab"]) == ["pyrlab-base", "rlab-base", "rlab"]
    assert build_order(config, ["pylab"]) == ["pyrlab-base", "pylab"]


def test_order_puts_a_parent_first_even_when_the_file_lists_it_last(tmp_path: Path) -> None:
    write(tmp_path, "pyrlab.toml", """\
        [images.child]
        from = "mid"
        [images.mid]
        from = "root"
        [images.root]
        """)
    assert build_order(load_config(tmp_path, environ={})) == ["root", "mid", "child"]


def test_unknown_image_asked_for(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    with pytest.raises(ConfigError) as caught:
        build_order(config, ["pylba"])
    assert caught.value.message == ("command line: unknown image 'pylba' "
                                    "(known: pyrlab-base, pylab, rlab-base, rlab)")


def test_a_flavour_is_a_few_lines_of_toml(tmp_path: Path) -> None:
    lab = init_lab(tmp_path / "lab")
    add_torch(lab)
    project = load_project(lab, environ={})
    assert project.order() == ["pyrlab-base", "pylab", "rlab-base", "rlab", "pylab-torch"]
    assert project.order(["pylab-torch"]) == ["pyrlab-base", "pylab", "pylab-torch"]
    assert [e.name for e in project.lists["pylab-torch"].of("python")] == ["torch", "torchvision"]
    dockerfile = render_context(project, "pylab-torch").dockerfile
    assert "\nFROM lab/pylab:latest\n" in dockerfile  # the project's own pylab
    assert "EXPOSE 8890\n" in dockerfile
    assert "ENV PYRLAB_LAB_PORT=8890 \\\n" in dockerfile
    assert descendants(project.config, "pylab") == ["pylab-torch"]


def test_a_flavour_starts_from_the_parent_under_the_local_name(tmp_path: Path) -> None:
    lab = init_lab(tmp_path / "lab")
    add_torch(lab)
    # The prefix names images in a registry; on this host they are PROJECT/IMAGE …
    project = load_project(lab, environ={}, sets=['prefix="ghcr.io/me/"'])
    assert "\nFROM lab/pylab:latest\n" in render_context(project, "pylab-torch").dockerfile
    # … unless the project asks for bare names: then PREFIXIMAGE, as before names.
    project = load_project(lab, environ={}, sets=['prefix="ghcr.io/me/"', 'name=""'])
    assert "\nFROM ghcr.io/me/pylab:latest\n" in render_context(project, "pylab-torch").dockerfile


def test_descendants(tmp_path: Path) -> None:
    lab = init_lab(tmp_path / "lab")
    add_torch(lab)
    config = load_config(lab, environ={})
    assert descendants(config, "pyrlab-base") == ["pylab", "rlab-base", "rlab", "pylab-torch"]
    assert descendants(config, "rlab-base") == ["rlab"]
    assert descendants(config, "pylab") == ["pylab-torch"]
    assert descendants(config, "rlab") == []


def test_a_two_image_cycle(tmp_path: Path) -> None:
    assert graph_problems(tmp_path, """\
        [images.root]
        [images.a]
        from = "b"
        [images.b]
        from = "a"
        """) == ["pyrlab.toml:3: images.a.from: cycle: a -> b -> a"]


def test_a_graph_with_no_root(tmp_path: Path) -> None:
    assert graph_problems(tmp_path, '[images.a]\nfrom = "b"\n[images.b]\nfrom = "a"\n') == [
        "pyrlab.toml:1: images: no image starts from [base] (every image has a 'from')",
        "pyrlab.toml:2: images.a.from: cycle: a -> b -> a",
    ]


def test_an_image_that_is_its_own_parent(tmp_path: Path) -> None:
    assert graph_problems(tmp_path, '[images.root]\n[images.a]\nfrom = "a"\n') == [
        "pyrlab.toml:3: images.a.from: cycle: a -> a"
    ]


def test_an_unknown_parent(tmp_path: Path) -> None:
    assert graph_problems(tmp_path, '[images.root]\n[images.a]\nfrom = "pylab"\n') == [
        "pyrlab.toml:3: images.a.from: unknown image 'pylab' (known: root, a)"
    ]


def test_an_images_table_replaces_the_default_graph(tmp_path: Path) -> None:
    write(tmp_path, "pyrlab.toml", "[images.solo]\n")
    assert list(load_config(tmp_path, environ={}).images) == ["solo"]


def test_a_duplicate_image_is_a_toml_error_naming_the_file(tmp_path: Path) -> None:
    toml = '[images.pylab]\nfrom = "root"\n[images.root]\n[images.pylab]\nports = { lab = 1 }\n'
    found = graph_problems(tmp_path, toml)
    assert len(found) == 1
    assert found == [("pyrlab.toml:4: not valid TOML: cannot declare ('images', 'pylab') twice "
                     "(column 14)")]


def test_a_duplicate_image_through_the_cli(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "pyrlab.toml", "[images.a]\n[images.a]\n")
    assert main(["check", "-C", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("pyrlab: error: pyrlab.toml:2: not valid TOML: cannot declare "
                          "('images', 'a') twice (column 10)\n")
    assert "Traceback" not in err
