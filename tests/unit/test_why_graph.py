"""`pyrlab why`'s graph logic on fixture metadata: markers, extras along each path, cycles,
several paths, a package listed and also pulled in; and the container script's marker
environment, which must be what `packaging` would compute in the image itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources

import pytest
from packaging.markers import default_environment

from pyrlab.commands.why import ImageWhy, close_names
from pyrlab.contents.dependencies import (
    Bound,
    DumpError,
    Installed,
    InstalledDist,
    ListLine,
    PythonGraph,
    RGraph,
    RPackage,
    Why,
    parse_dump,
    parse_r_dump,
)
from pyrlab.contents.dependencies import why as why_in

LINUX_311: dict[str, str] = {
    "implementation_name": "cpython", "implementation_version": "3.11.7", "os_name": "posix",
    "platform_machine": "x86_64", "platform_release": "6.12.0", "platform_system": "Linux",
    "platform_version": "#1 SMP", "python_full_version": "3.11.7",
    "platform_python_implementation": "CPython", "python_version": "3.11",
    "sys_platform": "linux"}


def image(*dists: tuple[str, str, list[str]], url: dict[str, str] | None = None) -> Installed:
    return Installed.of(LINUX_311, [InstalledDist(n, v, tuple(r), (url or {}).get(n, ""))
                                    for n, v, r in dists])


def why(installed: Installed, package: str, listed: list[ListLine]) -> Why:
    return why_in(PythonGraph(installed), package, listed)


def lines(*texts: str, file: str = "requirements.txt") -> list[ListLine]:
    return [ListLine(f"{file}:{n}", text) for n, text in enumerate(texts, 1)]


def chains(found: Why) -> dict[str, list[str]]:
    return {p.where: [str(s) for s in p.chain] for p in found.pulls}


def bounds(found: Why) -> list[tuple[str, str, str]]:
    return [(b.by, b.requirement, b.extra) for b in found.bounds]


# mlflow → alembic → SQLAlchemy, and mlflow → SQLAlchemy directly: two paths, two bounds.
MLFLOW = image(
    ("mlflow", "3.17.2", ["alembic!=1.10.0,<2", "sqlalchemy<3,>=1.4.0",
                          "pywin32; sys_platform == 'win32'",
                          "azure-storage-blob>=12; extra == 'databricks'"]),
    ("alembic", "1.16.5", ["SQLAlchemy>=1.4.0", "Mako", "typing-extensions>=4.12"]),
    ("SQLAlchemy", "2.0.43", ["greenlet>=1; platform_machine == 'x86_64'",
                              "typing-extensions>=4.6.0"]),
    ("greenlet", "3.2.4", []),
    ("Mako", "1.3.10", ["MarkupSafe>=0.9.2"]),
    ("MarkupSafe", "3.0.2", []),
    ("typing_extensions", "4.15.0", []),
    ("pywin32", "311", []),  # installed, but its marker does not hold: no edge
    ("azure-storage-blob", "12.26.0", []),
)


def test_a_dependency_shows_the_line_the_shortest_chain_and_every_bound() -> None:
    found = why(MLFLOW, "sqlalchemy", lines("six", "mlflow==3.17.2"))
    assert (found.name, found.version, found.from_lists) == ("SQLAlchemy", "2.0.43", True)
    # The direct edge is shorter than the way through alembic.
    assert chains(found) == {"requirements.txt:2": ["mlflow 3.17.2", "SQLAlchemy 2.0.43"]}
    assert bounds(found) == [("alembic 1.16.5", "SQLAlchemy>=1.4.0", ""),
                             ("mlflow 3.17.2", "sqlalchemy<3,>=1.4.0", "")]
    assert all(b.satisfied for b in found.bounds)


def test_a_chain_goes_through_the_distributions_between() -> None:
    found = why(MLFLOW, "markupsafe", lines("mlflow"))
    assert chains(found) == {"requirements.txt:1": [
        "mlflow 3.17.2", "alembic 1.16.5", "Mako 1.3.10", "MarkupSafe 3.0.2"]}
    assert bounds(found) == [("Mako 1.3.10", "MarkupSafe>=0.9.2", "")]


def test_markers_are_evaluated_in_the_image_environment() -> None:
    # greenlet's marker holds on x86_64 only; pywin32's never on Linux.
    assert chains(why(MLFLOW, "greenlet", lines("mlflow")))["requirements.txt:1"][-1] \
        == "greenlet 3.2.4"
    arm = Installed.of({**LINUX_311, "platform_machine": "aarch64"}, MLFLOW.dists.values())
    on_arm = why(arm, "greenlet", lines("mlflow"))
    assert (on_arm.from_lists, on_arm.pulls, on_arm.bounds) == (False, (), ())
    pywin32 = why(MLFLOW, "pywin32", lines("mlflow"))
    assert not pywin32.from_lists and pywin32.pulls == () and pywin32.bounds == ()
    # A list line whose own marker does not hold in the image pulls nothing in.
    assert not why(MLFLOW, "alembic", lines("mlflow; python_version < '3'")).from_lists


def test_an_extra_counts_only_along_the_paths_that_ask_for_it() -> None:
    plain = why(MLFLOW, "azure-storage-blob", lines("mlflow"))
    assert not plain.from_lists and plain.bounds == ()
    asked = why(MLFLOW, "azure-storage-blob", lines("mlflow", "mlflow[Databricks]>=3"))
    assert chains(asked) == {"requirements.txt:2": ["mlflow[databricks] 3.17.2",
                                                    "azure-storage-blob 12.26.0"]}
    assert bounds(asked) == [("mlflow 3.17.2", "azure-storage-blob>=12", "databricks")]


def test_extras_asked_on_an_edge_carry_on_down_the_chain() -> None:
    # dvc[s3] → dvc-s3 → s3fs[boto] → aiobotocore[boto3] → boto3: each extra asked by the
    # step before; a plain `s3fs` line reaches no boto3.
    installed = image(
        ("dvc", "3.63.0", ["dvc-s3>=3; extra == 's3'"]),
        ("dvc-s3", "3.2.2", ["s3fs[boto]>=2024"]),
        ("s3fs", "2025.9.0", ["aiobotocore[boto3]>=2.5; extra == 'boto'"]),
        ("aiobotocore", "2.24.2", ["boto3<1.40.50,>=1.40.46; extra == 'boto3'"]),
        ("boto3", "1.40.49", []),
    )
    found = why(installed, "boto3", lines("s3fs", "dvc[s3]"))
    assert chains(found) == {"requirements.txt:2": [
        "dvc[s3] 3.63.0", "dvc-s3 3.2.2", "s3fs[boto] 2025.9.0",
        "aiobotocore[boto3] 2.24.2", "boto3 1.40.49"]}
    assert bounds(found) == [("aiobotocore 2.24.2", "boto3<1.40.50,>=1.40.46", "boto3")]


def test_a_cycle_ends() -> None:
    installed = image(("a", "1", ["b"]), ("b", "1", ["c", "a"]), ("c", "1", ["a>=1"]))
    found = why(installed, "c", lines("a"))
    assert chains(found) == {"requirements.txt:1": ["a 1", "b 1", "c 1"]}
    assert PythonGraph(installed).chain("a", frozenset(), "d") is None
    circular = why(image(("a", "1", ["b"]), ("b", "1", ["a"])), "a", [])
    assert circular.pulls == ()  # both are required by the other: no root to show


def test_a_package_listed_and_also_pulled_in_shows_both_lines_and_the_list_bound() -> None:
    listed = lines("idna>=3.7", file="base.txt") + lines("requests")
    installed = image(("requests", "2.32.5", ["idna<4,>=2.5", "urllib3<3,>=1.21.1"]),
                      ("idna", "3.10", []), ("urllib3", "2.5.0", []))
    found = why(installed, "idna", listed)
    assert chains(found) == {"base.txt:1": ["idna 3.10"],
                             "requirements.txt:1": ["requests 2.32.5", "idna 3.10"]}
    assert found.pulls[0].direct and not found.pulls[1].direct
    assert bounds(found) == [("base.txt:1", "idna>=3.7", ""),
                             ("requests 2.32.5", "idna<4,>=2.5", "")]


def test_a_bound_the_installed_version_breaks_is_flagged() -> None:
    installed = image(("a", "1", ["b<2"]), ("b", "2.1", []))
    found = why(installed, "b", lines("a", "b==2.1"))
    assert [(b.by, b.satisfied) for b in found.bounds] == [("requirements.txt:2", True),
                                                           ("a 1", False)]
    text = "\n".join(ImageWhy("pylab", "x/pylab:latest", "f" * 64, found, None).lines())
    assert "a 1                 requires b<2  (NOT met by 2.1)" in text


def test_a_bare_url_line_is_the_distribution_installed_from_it() -> None:
    url = "https://example.org/pkg-1.0.tar.gz#egg=pkg"
    installed = image(("pkg", "1.0", ["six"]), ("six", "1.17.0", []), url={"pkg": url})
    assert chains(why(installed, "six", lines(url))) == {
        "requirements.txt:1": ["pkg 1.0", "six 1.17.0"]}


def test_without_a_list_line_the_unrequired_distributions_that_bring_it_are_shown() -> None:
    installed = image(("jupyterlab", "4.4.9", ["jupyter-server<3,>=2.4"]),
                      ("jupyter-server", "2.17.0", ["tornado>=6.2"]), ("tornado", "6.5.2", []),
                      ("six", "1.17.0", []))
    found = why(installed, "tornado", lines("six"))
    assert not found.from_lists
    assert chains(found) == {"": ["jupyterlab 4.4.9", "jupyter-server 2.17.0", "tornado 6.5.2"]}
    text = "\n".join(ImageWhy("pylab", "x/pylab:latest", "f" * 64, found, None).lines())
    assert "no list line pulls it in" in text
    assert "jupyterlab 4.4.9 → jupyter-server 2.17.0 → tornado 6.5.2" in text


def test_the_text_names_lines_chains_and_bounds() -> None:
    found = why(MLFLOW, "sqlalchemy", lines("mlflow", "SQLAlchemy"))
    text = "\n".join(ImageWhy("pylab", "x/pylab:latest", "a" * 64, found, None).lines())
    assert text.splitlines() == [
        "SQLAlchemy 2.0.43 in pylab (x/pylab:latest, aaaaaaaaaaaa)",
        "  pulled in by:",
        "    requirements.txt:1  mlflow 3.17.2 → SQLAlchemy 2.0.43",
        "    requirements.txt:2  SQLAlchemy (listed)",
        "  version bounds:",
        "    alembic 1.16.5  requires SQLAlchemy>=1.4.0",
        "    mlflow 3.17.2   requires sqlalchemy<3,>=1.4.0",
        "  required without a bound by: requirements.txt:2",
    ]


def test_a_package_not_installed_is_a_key_error_and_close_names_are_offered() -> None:
    with pytest.raises(KeyError):
        why(MLFLOW, "sqlalchemy2", [])
    names = [d.name for d in MLFLOW.dists.values()]
    assert close_names("sqlalchmy", names) == ["SQLAlchemy"]
    assert close_names("typing", names) == ["typing_extensions"]


def test_the_container_script_reports_the_environment_packaging_computes() -> None:
    script = resources.files("pyrlab.container").joinpath("requires.py").read_text()
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          check=True)
    installed = parse_dump(done.stdout)
    assert dict(installed.environment) == default_environment()
    assert installed.has_r == bool(shutil.which("Rscript"))
    assert installed.dists["packaging"].requires == ()
    jinja = installed.dists["jinja2"]
    assert jinja.name == "Jinja2" and any(r.startswith("MarkupSafe") for r in jinja.requires)


@pytest.mark.parametrize("output", ["", "not json", json.dumps({"environment": {}}),
                                    json.dumps({"environment": {}, "dists": [{"name": "x"}]})])
def test_unreadable_script_output_is_a_dump_error(output: str) -> None:
    with pytest.raises(DumpError):
        parse_dump(output)


# What R_PACKAGES prints: NAME, VERSION, Depends, Imports, LinkingTo (a row R's messages
# would not look like; "R" itself is no package).
R_ROWS = [
    ("IRkernel\t1.3.2\tR (>= 3.2.0)\trepr (>= 0.4.99), methods, evaluate (>= 0.10), "
     "IRdisplay (>= 0.3.0.9999), pbdZMQ (>= 0.2-1), crayon, jsonlite (>= 0.9.6), uuid, "
     "digest\t"),
    "jsonlite\t1.8.9\t\tmethods\t",
    "repr\t1.1.7\tR (>= 3.0.1)\tutils, grDevices, htmltools, jsonlite, pillar (>= 1.4.0)\t",
    "pbdZMQ\t0.3-13\tR (>= 3.5.0)\t\t",
    "cpp11user\t0.2\t\t\tcpp11 (>= 0.4.0)",
    "cpp11\t0.5.2\t\t\t",
    "methods\t4.5.0\t\t\t",
    "Loading required package: nothing",
]
R_DUMP = "\n".join(R_ROWS)


def test_r_packages_follow_depends_imports_and_linking_to() -> None:
    graph = RGraph(parse_r_dump(R_DUMP))
    assert "R" not in graph.nodes and "Loading" not in graph.nodes
    found = why_in(graph, "jsonlite", lines("IRkernel", "jsonlite", file="r_packages.txt"))
    assert found.ecosystem == "r"
    assert chains(found) == {"r_packages.txt:1": ["IRkernel 1.3.2", "jsonlite 1.8.9"],
                             "r_packages.txt:2": ["jsonlite 1.8.9"]}
    assert [(b.by, b.verb, b.requirement) for b in found.bounds] == [
        ("r_packages.txt:2", "", "jsonlite"),
        ("IRkernel 1.3.2", "imports", "jsonlite (>= 0.9.6)"),
        ("repr 1.1.7", "imports", "jsonlite")]
    linked = why_in(graph, "cpp11", lines("cpp11user", file="r_packages.txt"))
    assert [(b.verb, b.specifier) for b in linked.bounds] == [("links to", ">= 0.4.0")]


def test_r_versions_are_compared_as_r_orders_them() -> None:
    graph = RGraph(parse_r_dump(R_DUMP))
    # pbdZMQ 0.3-13 is 0.3.13 to R: it meets ">= 0.2-1" (and "0.3-9" is older).
    assert why_in(graph, "pbdZMQ", lines("IRkernel")).bounds[0].satisfied
    assert graph.satisfies(">= 0.3-9", "0.3-13") and not graph.satisfies("< 0.3-9", "0.3-13")
    pinned = why_in(graph, "jsonlite", lines("jsonlite==1.8.8", file="r_packages.txt"))
    assert [(b.specifier, b.satisfied) for b in pinned.bounds if b.kind == "list"] == [
        ("== 1.8.8", False)]
    assert graph.key("JSONLITE") == "jsonlite"  # R names: exact first, else one casefold


def test_an_r_dump_without_packages_is_a_dump_error() -> None:
    with pytest.raises(DumpError):
        parse_r_dump("Error in installed.packages(): something")
    assert parse_r_dump("x1\t1.0\t\t\t")["x1"] == RPackage("x1", "1.0")


def test_the_lock_line_says_what_a_plain_build_does_with_it_per_ecosystem() -> None:
    lock = Bound("lock", "pyrlab.lock [pylab]", "idna==3.10", "==3.10", satisfied=False)
    python = why(image(("idna", "3.11", [])), "idna", [])
    text = ImageWhy("pylab", "x/pylab:latest", "a" * 64, python, lock).lines()
    assert text[-1] == ("  pyrlab.lock [pylab]: idna==3.10 (a plain build keeps it while the "
                        "lists allow it, `build --locked` requires it; the image holds 3.11)")
    r = why_in(RGraph(parse_r_dump(R_DUMP)), "jsonlite", [])
    lock = Bound("lock", "pyrlab.lock [rlab]", "jsonlite==1.8.9", "==1.8.9")
    text = ImageWhy("rlab", "x/rlab:latest", "a" * 64, r, lock).lines()
    assert text[0].startswith("R package jsonlite 1.8.9 in rlab")
    assert text[-1] == "  pyrlab.lock [rlab]: jsonlite==1.8.9 (`build --locked` requires it)"
