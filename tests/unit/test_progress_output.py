"""What a user sees of a bootstrap and of a build's steps, from recorded output
(tests/unit/samples/README.md says where each sample comes from): one line per bootstrap
phase where stderr is not a terminal, a package count on the terminal's status line, the
full output in the log only; build steps numbered per stage, never as one interleaved
count."""

from __future__ import annotations

import io
from pathlib import Path

from pyrlab.baseimage import BootstrapOutput, phases
from pyrlab.engines.base import BuildOutput
from pyrlab.engines.docker import BuildKitOutput
from pyrlab.engines.podman import PodmanOutput
from pyrlab.imagebuild.progress import Progress

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> list[str]:
    return (SAMPLES / name).read_text().splitlines()


def shown_without_a_terminal(lines: list[str]) -> str:
    """What `pyrlab bootstrap` prints on stderr when it is a pipe or a CI log."""
    stream = io.StringIO()
    progress = Progress(stream, tty=False)
    on_line = phases(lambda text: progress.step("base", text),
                     lambda text: progress.status("base", text))
    for line in lines:
        on_line(line)
    progress.close()
    return stream.getvalue()


def last_count_of_each_phase(lines: list[str]) -> list[str]:
    """The status line on a terminal as each phase ends."""
    parser = BootstrapOutput()
    ends: list[str] = []
    for line in lines:
        shown = parser.feed(line)
        if shown is None:
            continue
        text, new_phase = shown
        if new_phase:
            ends.append(text)
        else:
            ends[-1] = text
    return ends


# --------------------------------------------------------------------------- bootstrap

def test_mmdebstrap_shows_one_line_per_phase_without_a_terminal() -> None:
    lines = sample("mmdebstrap-trixie-verbose.log")
    assert len(lines) > 900  # apt's and dpkg's lines: for the log, not the screen
    assert shown_without_a_terminal(lines) == """\
base: automatically chosen mode: root
base: chroot architecture amd64 is equal to the host's architecture
base: finding correct signed-by value...
base: using /tmp/mmdebstrap.zaoJiUkbgZ as tempdir
base: running apt-get update...
base: downloading packages with apt...
base: extracting archives...
base: installing essential packages...
base: installing remaining packages inside the chroot...
base: skipping cleanup/apt/lists as requested
base: cleaning apt cache...
base: creating tarball...
base: done
base: removing tempdir /tmp/mmdebstrap.zaoJiUkbgZ...
base: success in 25.1599 seconds
"""


def test_mmdebstrap_counts_packages_out_of_apts_total_on_a_terminal() -> None:
    assert last_count_of_each_phase(sample("mmdebstrap-trixie-verbose.log")) == [
        "automatically chosen mode: root",
        "chroot architecture amd64 is equal to the host's architecture",
        "finding correct signed-by value...",
        "using /tmp/mmdebstrap.zaoJiUkbgZ as tempdir",
        "running apt-get update: 2 retrieved",  # the index files, before apt names a total
        "downloading packages with apt: 59/59 retrieved",
        "extracting archives...",
        "installing essential packages: 59/59 unpacked, 59/59 set up",
        ("installing remaining packages inside the chroot: 19/19 retrieved, 19/19 unpacked, "
         "19/19 set up"),
        "skipping cleanup/apt/lists as requested",
        "cleaning apt cache...",
        "creating tarball...",
        "done",
        "removing tempdir /tmp/mmdebstrap.zaoJiUkbgZ...",
        "success in 25.1599 seconds",
    ]


def test_mmdebstrap_counts_grow_one_package_at_a_time() -> None:
    parser = BootstrapOutput()
    counts = [shown[0] for line in sample("mmdebstrap-trixie-verbose.log")
              if (shown := parser.feed(line)) and not shown[1]
              and shown[0].startswith("downloading")]
    assert counts == [f"downloading packages with apt: {n}/59 retrieved" for n in range(1, 60)]


def test_debootstrap_shows_one_line_per_phase_not_two_per_package() -> None:
    lines = sample("debootstrap-trixie.log")
    assert sum(line.startswith(("I: Retrieving lib", "I: Validating lib")) for line in lines) == 4
    assert shown_without_a_terminal(lines) == """\
base: Target architecture can be executed
base: Retrieving InRelease
base: Checking Release signature
base: Valid Release signature (key id 4CB50190207B4758A3F73A796ED0E7B82643E131)
base: Retrieving Packages
base: Validating Packages
base: Resolving dependencies of required packages...
base: Resolving dependencies of base packages...
base: Checking component main on http://deb.debian.org/debian...
base: Retrieving packages
base: Chosen extractor for .deb packages: dpkg-deb
base: Extracting packages
base: Installing core packages...
base: Unpacking required packages...
base: Configuring required packages...
base: Unpacking the base system...
base: Configuring the base system...
base: Base system installed successfully.
"""


def test_debootstrap_counts_packages_on_a_terminal() -> None:
    ends = last_count_of_each_phase(sample("debootstrap-trixie.log"))
    assert ends[9:] == [
        "Retrieving packages: 6 retrieved",  # Validating lines are not counted twice
        "Chosen extractor for .deb packages: dpkg-deb",
        "Extracting packages: 6 extracted",
        "Installing core packages...",
        "Unpacking required packages: 6 unpacked",
        "Configuring required packages: 6 configured",
        "Unpacking the base system...",
        "Configuring the base system...",
        "Base system installed successfully.",
    ]


def test_a_count_draws_the_status_line_on_a_terminal_only() -> None:
    piped = io.StringIO()
    progress = Progress(piped, tty=False)
    progress.status("base", "downloading packages with apt: 3/59 retrieved")
    progress.close()
    assert piped.getvalue() == ""

    terminal = io.StringIO()
    progress = Progress(terminal, tty=True)
    progress.start("base", "bootstrapping")
    progress.status("base", "downloading packages with apt: 3/59 retrieved")
    progress.close()
    assert "building: base downloading packages with apt: 3/59 retrieved 0:0" in \
        terminal.getvalue()


# --------------------------------------------------------------------------- build steps

def steps(parser: BuildOutput, lines: list[str]) -> list[str]:
    return [title for line in lines if (title := parser.feed(line))]


def test_buildkit_numbers_steps_per_stage_naming_the_build_only_stage() -> None:
    assert steps(BuildKitOutput(), sample("buildx-two-stages.log")) == [
        "[pyrlab-tools 1/2] FROM docker.io/library/pyrlab-test-debian:trixie",
        "[1/4] FROM docker.io/pyrlab-gatebench/pyrlab-base:latest",
        "[pyrlab-tools 2/2] RUN apt-install",
        "[2/4] RUN uv-install",
        "[3/4] RUN inventory.py",
    ]


def test_podman_reads_the_steps_of_a_build_with_two_stages() -> None:
    assert steps(PodmanOutput(), sample("podman-two-stages.log")) == [
        "[pyrlab-tools 1/3] FROM pyrlab-test-90d2c4/debian:trixie AS pyrlab-tools",
        "[pyrlab-tools 3/3] RUN apt-install",
        "[1/27] FROM pyrlab-test-90d2c4/debian:trixie",
        "[5/27] COPY pyrlab/ca/ /usr/local/share/ca-certificates/pyrlab/",
        "[6/27] RUN apt-install",
        "[7/27] RUN setup-base",
        "[8/27] RUN uv-install",
        "[9/27] COPY pyrlab/runtime/start.sh pyrlab/runtime/healthcheck.py …",
        "[10/27] COPY pyrlab/runtime/tensorboard.py /opt/pyrlab/bin/tensorbo…",
        "[11/27] COPY pyrlab/runtime/jupyter_server_config.py /etc/jupyter/",
        "[18/27] RUN inventory.py",
    ]


def test_podman_names_the_failing_step_of_a_build_with_two_stages() -> None:
    lines = sample("podman-two-stages.log")
    cut = next(i for i, line in enumerate(lines) if line.startswith("[2/2] STEP 8/27: RUN"))
    parser = PodmanOutput()
    steps(parser, [*lines[:cut + 1], "error: No solution found when resolving dependencies",
                   'Error: building at STEP "RUN --mount=...": exit status 1'])
    failure = parser.failure()
    assert failure.step == "[8/27] RUN uv-install"
    assert failure.tail == ["error: No solution found when resolving dependencies"]
