"""Pins of what a user's build depends on byte for byte: every image's input hash and
every file of its build context (Docker, Podman, a delta), the lock text, the build
secrets and the container scripts. The goldens (test_render.py) hide the input hash and
the copied scripts; these pins do not, so a refactor that changes any of them is seen here.
A changed input hash rebuilds every image of every user: update a pin only on purpose."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from inventories import inventory, meta
from labfiles import CONTAINER, FULL_FILES, FULL_TOML, init_lab, make_project

from pyrlab.config.project import Project, load_project
from pyrlab.contents.lockfile import render_lock
from pyrlab.dockerfile.network import build_secrets
from pyrlab.dockerfile.render import BuildContext, Delta, RenderOptions, render_context
from pyrlab.engines.podman import Podman

# pyrlab's version is in every context (its meta file and Dockerfile label): the pins hold
# it fixed, so that a release does not touch them.
PINNED_VERSION = "0.0.0+pins"
# The full project with credentials in its proxy URLs: they become build secrets.
CREDENTIALS = {"pyrlab.toml": FULL_TOML.replace(
    "http://apt-cache", "http://apt:s3cret@apt-cache").replace(
    "http://devpi", "http://pip:s3cret@devpi").replace(
    "https://packagemanager", "https://cran:s3cret@packagemanager")}


def sha(content: bytes | str) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


@pytest.fixture(autouse=True)
def _pinned_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every loaded pyrlab module's __version__ (each imports it by name), set alike."""
    for name, module in list(sys.modules.items()):
        if (name == "pyrlab" or name.startswith("pyrlab.")) and hasattr(module, "__version__"):
            monkeypatch.setattr(module, "__version__", PINNED_VERSION)


def project(tmp_path: Path, which: str) -> Project:
    if which == "default":
        return load_project(init_lab(tmp_path / "lab"), environ={})
    files = FULL_FILES | (CREDENTIALS if which == "credentials" else {})
    return load_project(make_project(tmp_path / "full", files), environ={})


def fingerprint(context: BuildContext) -> dict[str, str]:
    """{"input_hash": the context's, path: "MODE SHA256" of each of its files}."""
    return {"input_hash": context.input_hash} | {
        path: f"{mode:04o} {sha(content)}" for path, (content, mode) in context.files.items()}


def pinned(block: str) -> dict[str, str]:
    """A pin block's lines ("input_hash HASH", "MODE SHA256 PATH", "SHA256 PATH") as a dict."""
    out = {}
    for line in block.strip().splitlines():
        if line.startswith("input_hash "):
            out["input_hash"] = line.split()[1]
        else:
            value, path = line.rsplit(" ", 1)
            out[path] = value
    return out


def compare(what: str, actual: dict[str, dict[str, str]], pins: dict[str, dict[str, str]],
            why: str = "a changed input hash rebuilds the user's image") -> None:
    """One line per image (or group) and file that differs: the failure names them."""
    changes = [f"{name}: {'new' if name in actual else 'gone'}"
               for name in sorted(set(actual) ^ set(pins))]
    for name in sorted(set(actual) & set(pins)):
        for key in sorted(set(actual[name]) | set(pins[name])):
            was, now = pins[name].get(key, "(none)"), actual[name].get(key, "(none)")
            if was != now:
                changes.append(f"{name} {key}: {was} -> {now}")
    assert not changes, (f"{what} changed ({why}); if that is intended, update the pin in "
                         "tests/unit/test_hash_pins.py:\n  " + "\n  ".join(changes))


@pytest.mark.parametrize("which", ["default", "full"])
@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_contexts_and_input_hashes(tmp_path: Path, which: str, engine: str) -> None:
    lab = project(tmp_path, which)
    # As `pyrlab render` and the engines choose them (test_engines.py checks the latter).
    options = RenderOptions.for_builder(Podman) if engine == "podman" else RenderOptions()
    actual = {name: fingerprint(render_context(lab, name, options)) for name in lab.order()}
    pins = {name: pinned(block) for name, block in CONTEXTS[which].items()}
    if engine == "podman":  # the same files but those PODMAN names
        pins = {name: pins[name] | pinned(PODMAN[which].get(name, "")) for name in pins}
    compare(f"the build contexts of the {which} project for {engine}", actual, pins)


def test_delta_context(tmp_path: Path) -> None:
    delta = Delta(("apt", "python"), 2, "d" * 64, {"python": ("six",)})
    context = render_context(project(tmp_path, "full"), "pylab", RenderOptions(), delta=delta)
    compare("a delta build context", {"pylab": fingerprint(context)}, {"pylab": pinned(DELTA)})


@pytest.mark.parametrize("which", ["full", "credentials"])
def test_build_secrets(tmp_path: Path, which: str) -> None:
    actual = {name: sha(content)
              for name, content in build_secrets(project(tmp_path, which)).items()}
    compare(f"the build secrets of the {which} project", {"secrets": actual},
            {"secrets": SECRETS[which]}, why="what the build steps are given")


def test_lock_text() -> None:
    text = render_lock({"pylab": inventory(), "rlab": inventory(
        "rlab", meta=meta("rlab", python="3.12.11", r=""), python=(), r=())})
    assert sha(text) == LOCK, f"the text of pyrlab.lock changed; it is now:\n{text}"


def test_container_files() -> None:
    actual = {str(path.relative_to(CONTAINER)): sha(path.read_bytes())
              for path in sorted(CONTAINER.rglob("*"))
              if path.is_file() and "__pycache__" not in path.parts}
    compare("src/pyrlab/container", {"files": actual}, {"files": pinned(CONTAINER_FILES)},
            why="these bytes feed the input hash of every user's image, so changing one "
                "rebuilds every image: update the pin only on purpose")


# --------------------------------------------------------------------------- the pins
# Blocks of "MODE SHA256 PATH" lines (like sha256sum's), made once by rendering with the
# functions above and printing; the input hashes as "input_hash HASH".

CONTEXTS: dict[str, dict[str, str]] = {
    "default": {
        "pyrlab-base": """
input_hash 7253d4a4927751f812263cd646d1601378f2ff37187ddc449ca85c378fff38aa
0644 64f8d47724212a24d2dd5941eff02defebe8a70f9f676a82f3bea5f11a89262d Dockerfile
0644 084a45b09e46f262450d7526c6d01fd37aecb94861d1163ec12b882df4680ad1 pyrlab/apt/debs.txt
0644 00f7d5350649a5e43d8eb53dc38f15a448448aad80539d34b97ad8727e944d56 pyrlab/apt/system.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/base/locale
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 d067070347672cbc7d650ce57247b56eefdd56ed61ee036657bf94c75b63405e pyrlab/inventory/meta.json
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 b9620d27a4eb26cde8a6db5dfa65c65848fd731bf872a4c13d8f974fbae94026 pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/apt/debs.txt
0644 759c70dc30eac643d0faf8052a9dc2174fd93ef484e4acbcf3381e41940ac1e8 pyrlab/runtime/dtale.ini
0644 dca759fa0eacbe2f64d691b56a37ac2395d2a07e2f1dfa2faef949a99eb9d8ee pyrlab/runtime/healthcheck.py
0644 891186322b719b17a6c243ceab02a46b2be6c513acfe1ccca2962fe5c1a5233b pyrlab/runtime/jupyter_server_config.py
0755 4a69c6a0fea864b63f61ef61654d9a64fa24e6f0453d86fde28085995095538f pyrlab/runtime/start.sh
0755 becda148910a78173957a39d2a247a955502e0547c737eb39f39092635608561 pyrlab/runtime/tensorboard.py
0644 f3dfcd78fe2570a3f9f378b826e6945188845c47af0296a40d0ca2523bf741d5 pyrlab/runtime/user_env.py
""",
        "pylab": """
input_hash 1225567216718e2dedaa75589dd83a9bf9d78b3884509dcd91d6a0c0e74f7231
0644 23c2e7d7bd7c15cd20e6c5bd27e881fc08125cdc88b1a91d2e2f3f1726042a2c Dockerfile
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 391f471fce2064c2f9643079de7692b235ab7a0d220c35031a5b3233f0af696c pyrlab/inventory/meta.json
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 b9620d27a4eb26cde8a6db5dfa65c65848fd731bf872a4c13d8f974fbae94026 pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/python/prefer.txt
0644 56393eb2f75e92006a6667d2dd686b08ebe10d7c46ee72708c0070eb3936767c pyrlab/python/lab-overrides.json
0644 4fac1cbfadc5f9bdf0998c55c4838005c1f93dd5f49b66ad952cca5f74f08b7e pyrlab/python/requirements.txt
0644 906f617c2a44758c256d09c8daecce08ceaccd757864be2d11dbdd3d8f69f26f pyrlab/python/slim
0644 77cc611ebfce768850d8d62e64ac475e1c228a4cc44c8855ad211efbcf035958 pyrlab/python/system.txt
0644 78588ae6cabece738bedefd154d25ab119c5ae335b070bad1f4bb8d878e6ab72 pyrlab/tools/system.txt
""",
        "rlab-base": """
input_hash 09bd0422ffae5ce9ff12c631da40fc2ab7b893a92f1dcf7f83600ad0eb9ace41
0644 dcaf64e304867c603ae716eb068d23b18e1942295aaae6d018b58f1d1c8594ff Dockerfile
0644 8dd1db88ebd53220222158024fbaabcabab9c53a73c4785678b35360c653ac5d pyrlab/apt/debs.txt
0644 592fab63ff902a85d1abd2adfb77177fdbc3fe998716e03b7be66a938507c6a7 pyrlab/apt/system.txt
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 c28faafbe50149e62aa6edd0886684e6fc8e2ebcbb4f182b4313c4b3abb5d0fb pyrlab/inventory/meta.json
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 b9620d27a4eb26cde8a6db5dfa65c65848fd731bf872a4c13d8f974fbae94026 pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/apt/debs.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/cran.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/debs.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/r/apt.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/r/cran.txt
""",
        "rlab": """
input_hash 95b63ccb7d54c7d0331340373a2e2e75bf98f3bf34243ff36c83e6848c48ce8f
0644 0673fc1923582534ba8717b14b0c7b1dfe4a8d5eb3c5d5667fc1328debb704be Dockerfile
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 cabeb1fc708547ccfecfbbb47b26ea2ca7f843ba7b18bddb380fd99b758301e4 pyrlab/inventory/meta.json
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 b9620d27a4eb26cde8a6db5dfa65c65848fd731bf872a4c13d8f974fbae94026 pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/python/prefer.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/cran.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/debs.txt
0644 56393eb2f75e92006a6667d2dd686b08ebe10d7c46ee72708c0070eb3936767c pyrlab/python/lab-overrides.json
0644 2a652e727d6e1e5259e8236011b6d30a7a741b4beb308be4bcd9efbcb6c37f04 pyrlab/python/requirements.txt
0644 906f617c2a44758c256d09c8daecce08ceaccd757864be2d11dbdd3d8f69f26f pyrlab/python/slim
0644 77cc611ebfce768850d8d62e64ac475e1c228a4cc44c8855ad211efbcf035958 pyrlab/python/system.txt
0644 94adea0215c1124b70bdc8792b862827c652c4b47c863a2ff1beeea9a336bb66 pyrlab/r/apt.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/r/cran.txt
0644 78588ae6cabece738bedefd154d25ab119c5ae335b070bad1f4bb8d878e6ab72 pyrlab/tools/system.txt
""",
    },
    "full": {
        "pyrlab-base": """
input_hash 47bd092858a5ef7113c68399ca8a1027bdcc5e4e4cfd0788e8d4de44ab6f3030
0644 b12342a7ea257d3232bde353019d439a0751ac6d311c47d04458d4140509b3a6 Dockerfile
0644 688b7e37758f48752a047878e1ee43a32f8196765383344231b03934a9a80aea pyrlab/apt/debs.txt
0644 4ffa3ffa57c75d47c29096fb0b4cd97e2a28b4767ca8a15784f9569f99ceee9b pyrlab/apt/system.txt
0644 9413d33da9235417e3d16697a89567e0f8fabc0327d5f189da4b3ba00e332254 pyrlab/base/locale
0644 c2ec73da86deb1b5abc6889d2578d696d230e36e2b1ebbfa0a9cccf7c06241c1 pyrlab/base/sudoers
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 3873e7648b72bfa01ed6dd1991c2bc35df033821483e24fc803f502dabc11069 pyrlab/ca/00-corp-root.crt
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 5f05c4af0b3bdcf2c6513de37edf8dd85d7ce715f08a6066dbd33b26eec356b0 pyrlab/inventory/meta.json
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/apt/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/apt/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 98a96bf1c18b9a05fcaf42e717223550e8d2e14c7ee6e0f014f9861ecb0c3dbc pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 30cf3afbf4910b2614ff6c8f406c537bf245a05d0c9424c064273b2c0957b8b8 pyrlab/net/python/uv.toml
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/r/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/r/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/apt/debs.txt
0644 759c70dc30eac643d0faf8052a9dc2174fd93ef484e4acbcf3381e41940ac1e8 pyrlab/runtime/dtale.ini
0644 dca759fa0eacbe2f64d691b56a37ac2395d2a07e2f1dfa2faef949a99eb9d8ee pyrlab/runtime/healthcheck.py
0644 891186322b719b17a6c243ceab02a46b2be6c513acfe1ccca2962fe5c1a5233b pyrlab/runtime/jupyter_server_config.py
0644 65ae513bcd853586d86046855895c7ae4d56c00fc9e95899174c8b4e5e4166ee pyrlab/runtime/pip.conf
0755 4a69c6a0fea864b63f61ef61654d9a64fa24e6f0453d86fde28085995095538f pyrlab/runtime/start.sh
0755 becda148910a78173957a39d2a247a955502e0547c737eb39f39092635608561 pyrlab/runtime/tensorboard.py
0644 f3dfcd78fe2570a3f9f378b826e6945188845c47af0296a40d0ca2523bf741d5 pyrlab/runtime/user_env.py
""",
        "pylab": """
input_hash 7a2585e72719f7e9b39fd1f5e9f3ce9238525b6309a9d94595fda3a8e1e541c4
0644 3a9ab21ec8294d459b5e5ac8bd9546dfa9d069aabafb67000d1f0e634998ce0b Dockerfile
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 65fbcf6790f28d0e892e87b8f9f156f67544058151129d2027bc2161ccadee01 pyrlab/inventory/meta.json
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/apt/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/apt/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 98a96bf1c18b9a05fcaf42e717223550e8d2e14c7ee6e0f014f9861ecb0c3dbc pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 30cf3afbf4910b2614ff6c8f406c537bf245a05d0c9424c064273b2c0957b8b8 pyrlab/net/python/uv.toml
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/r/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/r/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/python/prefer.txt
0644 56393eb2f75e92006a6667d2dd686b08ebe10d7c46ee72708c0070eb3936767c pyrlab/python/lab-overrides.json
0644 5c8ee787fe498bf2526acd4842c09f7b905b4705974f4c4bda7e8690546b4955 pyrlab/python/requirements.txt
0644 906f617c2a44758c256d09c8daecce08ceaccd757864be2d11dbdd3d8f69f26f pyrlab/python/slim
0644 77cc611ebfce768850d8d62e64ac475e1c228a4cc44c8855ad211efbcf035958 pyrlab/python/system.txt
0644 78588ae6cabece738bedefd154d25ab119c5ae335b070bad1f4bb8d878e6ab72 pyrlab/tools/system.txt
""",
        "pylab-torch": """
input_hash d6a091a2dca2ceb2de78a1737c4c8bf6b940b4dbe6d3756dd775dce05e9c175e
0644 f7bd4a61eb1f7794eae23a5a9b2e2c9e1cd48eba1ecfd39077baa426ed7a2073 Dockerfile
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 cc1d55b9bec9c46f8d65c571bf15d2e88a76bc4f0e77a31f8aba3b27c987f67f pyrlab/inventory/meta.json
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/apt/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/apt/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 98a96bf1c18b9a05fcaf42e717223550e8d2e14c7ee6e0f014f9861ecb0c3dbc pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 30cf3afbf4910b2614ff6c8f406c537bf245a05d0c9424c064273b2c0957b8b8 pyrlab/net/python/uv.toml
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/r/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/r/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/python/prefer.txt
0644 56393eb2f75e92006a6667d2dd686b08ebe10d7c46ee72708c0070eb3936767c pyrlab/python/lab-overrides.json
0644 7bc097ebcd32146b947ed2e35e1aeb6bda7ce1f3453d7c7b52d05a69426a04ab pyrlab/python/requirements.txt
0644 906f617c2a44758c256d09c8daecce08ceaccd757864be2d11dbdd3d8f69f26f pyrlab/python/slim
0644 78588ae6cabece738bedefd154d25ab119c5ae335b070bad1f4bb8d878e6ab72 pyrlab/tools/system.txt
""",
        "rlab-base": """
input_hash 10211b370ac239b49932639afde3c76983ade42671bb0d4e36db5ce8b56ba6a5
0644 89f95a5556a3d6824497bad24e69e9d8ac69af1481442fc01c9ba7e6065d4485 Dockerfile
0644 897b12ac3be5a6813af02103e36e3d9e65014f303cd63c14c6742b9754009b5b pyrlab/apt/debs.txt
0644 07282c0d5dd2cb6193375336194cc5b1102fab37b6a9da33db15f17cda318293 pyrlab/apt/sources/pyrlab-cran-debian.missing-key
0644 cc4fcfe50faf1a567499efa7c3014f1863b8a99f2485c5ef45c649cc9b8768bd pyrlab/apt/sources/pyrlab-cran-debian.sources
0644 592fab63ff902a85d1abd2adfb77177fdbc3fe998716e03b7be66a938507c6a7 pyrlab/apt/system.txt
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 d7d83619aaff8615dd5225963b7c38369aeccd02084d2091abb32b24188ba7a7 pyrlab/inventory/meta.json
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/apt/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/apt/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 98a96bf1c18b9a05fcaf42e717223550e8d2e14c7ee6e0f014f9861ecb0c3dbc pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 30cf3afbf4910b2614ff6c8f406c537bf245a05d0c9424c064273b2c0957b8b8 pyrlab/net/python/uv.toml
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/r/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/r/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/apt/debs.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/cran.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/debs.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/r/apt.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/r/cran.txt
0644 79ee2ff12eb882d366ef7b9e80205526b89187d07e84ecaf2e003554cd7c67cf pyrlab/r/repos.txt
0644 79ee2ff12eb882d366ef7b9e80205526b89187d07e84ecaf2e003554cd7c67cf pyrlab/r/site-repos.txt
""",
        "rlab": """
input_hash 396515f9e4a37d09a456d0ea883e7e68b17bf22d1a0f9030e5400aba4390dec6
0644 2b200a4dee60c5a8e208ce102f269b54652dee8efd4ef357d42bc2d5bbbc5fc8 Dockerfile
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 197dbc5bad2b39661ddc1c91e05c5a44320c851b65afb9abdb473aba19297893 pyrlab/inventory/meta.json
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/apt/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/apt/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 98a96bf1c18b9a05fcaf42e717223550e8d2e14c7ee6e0f014f9861ecb0c3dbc pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 30cf3afbf4910b2614ff6c8f406c537bf245a05d0c9424c064273b2c0957b8b8 pyrlab/net/python/uv.toml
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/r/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/r/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/python/prefer.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/cran.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/r/debs.txt
0644 56393eb2f75e92006a6667d2dd686b08ebe10d7c46ee72708c0070eb3936767c pyrlab/python/lab-overrides.json
0644 92e8a05d1c31382a2b9062c045da2432d025a6e0afd807775b31d5dd674aff20 pyrlab/python/requirements.txt
0644 906f617c2a44758c256d09c8daecce08ceaccd757864be2d11dbdd3d8f69f26f pyrlab/python/slim
0644 77cc611ebfce768850d8d62e64ac475e1c228a4cc44c8855ad211efbcf035958 pyrlab/python/system.txt
0644 e2a639bf458adbf336fd158ada6cd008e0d3db369560c06131d7097f9e3dbaac pyrlab/r/apt.txt
0644 f739b8e066358403bb5fffd3fd4ba3748f163a8b3838fa7a2c60c47f291ce4ab pyrlab/r/cran.txt
0644 79ee2ff12eb882d366ef7b9e80205526b89187d07e84ecaf2e003554cd7c67cf pyrlab/r/repos.txt
0644 79ee2ff12eb882d366ef7b9e80205526b89187d07e84ecaf2e003554cd7c67cf pyrlab/r/site-repos.txt
0644 78588ae6cabece738bedefd154d25ab119c5ae335b070bad1f4bb8d878e6ab72 pyrlab/tools/system.txt
""",
    },
}
# What Podman's contexts have otherwise (RUN lines name their inputs' digest).
PODMAN: dict[str, dict[str, str]] = {
    "default": {
        "pyrlab-base": """
input_hash 7f1c3a70c7abcd15ef4efacfcf1f6fd10ca2c8c127c1fa223ccd3922cfe5faff
0644 a4adf7b16abbacd598d01ff8f39340436439961809ab27e8267ac8538626d45b Dockerfile
0644 8d44649d5148fed34fe6693d516a565180a8412dd80449e5ad77ff219dbd4d85 pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash e213dae123d5a81481512c41ef84032b6d6a6600d898074930bce3063a6fc4fe
0644 59022b038e87a60d8437c5b02d7b2d214144cef1a70e899f7fc0b427f01b3c53 Dockerfile
0644 d24abd7681ebbecb580c0da7a65af0d6dc08f034e61ab841a89526d775145c59 pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash 57200a71c77e0e9be4ccaf85189674555eae88f023616b72bbe9aef1278816e2
0644 3e3cd3992d483a25ae6d6c8a7ced7c2654003e429d70afbf7fc38dfe9722fc33 Dockerfile
0644 5761fa0eaa7579b4270e3a150e5dab1045024181f0e3dce639f83ab04ecfe22c pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash 7911da393dd911e3207885d3a53a53c459eca54f9b3cc9ab6fd6d8f8b23d269c
0644 12754b2795172b39c0ad82a9c9ce98605e071f5f093ddb3ff7250705c76709ce Dockerfile
0644 1aa07d059cf8273581d1ddc9d57c60c9869923d44d58c8845212392bcaebb755 pyrlab/inventory/meta.json
""",
    },
    "full": {
        "pyrlab-base": """
input_hash fc76939ef1c50d72852aa908a4b34d75313c301f18cd5934c55e26bea02e64c1
0644 e5cf10ecb41822c805435b8953b32f9305269924a9a76d2cddf639720bac1705 Dockerfile
0644 dd47ea0a125f32d6d0c12cc7c7b105b620b03f096d3d19260e71aae985b6df9c pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash 9f2ba9d80cfe066735417207d1b659e2111babf70703e3feda26a00cbadaa9d2
0644 ea0c4a47288046c7e0dc6ac5c3a3b2c9a086578e07c3560b7a7a3b81beed7e83 Dockerfile
0644 6f4d559787908fd66bdc71b591b4341a101192b901c38b612769ef6fa7c92d0a pyrlab/inventory/meta.json
""",
        "pylab-torch": """
input_hash 42ab0920abbf2fff5dbd2776afe38a0c32c09b30081cb3c63df5882f6f8e6518
0644 8b02bf767d78c67133f11012e366ee3b358ec62554b3f0b62c1a071e8d828c3e Dockerfile
0644 5a5871608ac6aceed24ac7985c7593c829c1508b3e460999dce6dcd1967c2b45 pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash 2fe0941ecf08368bec59beb2a7c1688d26ef06130810de0b9fb2e6d9ef8731df
0644 231b7487721dd5d1108c9b83d9b83fc32680676c263df90dd7381aea59367a49 Dockerfile
0644 8a8c04a9910efeca8a7298fe0959dfbbfc3141b44712781bb9f5f7ca15a6ca74 pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash 32741b6ff1866f63677c7823c38a9bac8eb8a1f4991974a2b5552d93f546a9cd
0644 e98cf91b920e24a043b3313a79a4d6b974a8516a50d099c8baeb69e1c216a23c Dockerfile
0644 fc51f249e8c0aabd2d4ac77d2cb0660b7a6047394b6b812fb69ae6fd05286ea9 pyrlab/inventory/meta.json
""",
    },
}
DELTA = """
input_hash dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd
0644 0d96b46b9739ab41459e3004c55cd2d795ebe44d9a92164bd086a8dbad8385f0 Dockerfile
0755 cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 1dc82002120f62b663bd4d849ea446856647e0b5aa2af17c71f2456131d83854 pyrlab/inventory/meta.json
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/apt/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/apt/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/apt/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/apt/timeout
0644 98a96bf1c18b9a05fcaf42e717223550e8d2e14c7ee6e0f014f9861ecb0c3dbc pyrlab/net/python/pip.conf
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/python/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/python/timeout
0644 30cf3afbf4910b2614ff6c8f406c537bf245a05d0c9424c064273b2c0957b8b8 pyrlab/net/python/uv.toml
0644 241803c01f301b619b2e1ac82ec724cfe6fd0fb825255080384718a4e0eafe13 pyrlab/net/r/apt-proxy.conf
0644 375cdea17a477bd9b3190a6c2347ca8467a12c790d6866d7ed24b7812a463d56 pyrlab/net/r/https-via-proxy
0644 1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2 pyrlab/net/r/retries
0644 97b912eb4a61df5f806ca6239dde3e1a4f51ad20aced1642cbb83dc510a5fa6b pyrlab/net/r/timeout
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/pins/python/prefer.txt
0644 fe2547fe2604b445e70fc9d819062960552f9145bdb043b51986e478a4806a2b pyrlab/python/added.txt
0644 f7150fcd756b32d56c474b45e2475b8e2972553df57ea9f6d35f885edac3f413 pyrlab/python/delta
0644 56393eb2f75e92006a6667d2dd686b08ebe10d7c46ee72708c0070eb3936767c pyrlab/python/lab-overrides.json
0644 5c8ee787fe498bf2526acd4842c09f7b905b4705974f4c4bda7e8690546b4955 pyrlab/python/requirements.txt
0644 906f617c2a44758c256d09c8daecce08ceaccd757864be2d11dbdd3d8f69f26f pyrlab/python/slim
0644 77cc611ebfce768850d8d62e64ac475e1c228a4cc44c8855ad211efbcf035958 pyrlab/python/system.txt
0644 78588ae6cabece738bedefd154d25ab119c5ae335b070bad1f4bb8d878e6ab72 pyrlab/tools/system.txt
"""
SECRETS: dict[str, dict[str, str]] = {
    "full": {
    },
    "credentials": {
        "apt-proxy.conf": "17353495c612b8bce5d66b80692ed8b810b5321442b7ff272e6ec19413ec6b19",
        "uv.toml": "11509ac5ea1fb1686013eca9a9aebb79bd034a67afaead2045a6a70157e32f97",
        "pip.conf": "68d29179b5fc4fdd8518848a7e4bf6ae3f2d44f15e0a7bb0985d25f3c7801083",
        "repos.txt": "e1260fba004fbacd427c81bbe5f6d43c5e5f24d4280f7b7e165ed5cb7b1f500a",
    },
}
LOCK = "9e98b54fa7ae4f8bd53af7749f70db30fb658335ec1a14f602339dbcb2551e07"
CONTAINER_FILES = """
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 __init__.py
cfd81654ad420efa2bc6c2e0b6b0adcbe21a70cf82c2fdb4e1c52bcb38a35324 apt-install
759c70dc30eac643d0faf8052a9dc2174fd93ef484e4acbcf3381e41940ac1e8 dtale.ini
dca759fa0eacbe2f64d691b56a37ac2395d2a07e2f1dfa2faef949a99eb9d8ee healthcheck.py
c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 heldback.py
123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 inventory.py
891186322b719b17a6c243ceab02a46b2be6c513acfe1ccca2962fe5c1a5233b jupyter_server_config.py
dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa lab_settings.py
e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 net-env
950c8a9dc9098fe2b2c0e76115e1a5ef35e8f54e65c8467f909e4e9c4dd9f36b pyc_cache.py
05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 r-install
73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 r-install.R
462eac48d2c0eaeabfb17f916107fb794692f8c4ceafcbfefd1edf6d7757a6da requires.py
8bc303a5c03d8fd8da9ff2db64a43ca9450c7b5786e4534791301b42fe54a4af selftest.py
ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 setup-base
4a69c6a0fea864b63f61ef61654d9a64fa24e6f0453d86fde28085995095538f start.sh
becda148910a78173957a39d2a247a955502e0547c737eb39f39092635608561 tensorboard.py
c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 test_folders.py
f3dfcd78fe2570a3f9f378b826e6945188845c47af0296a40d0ca2523bf741d5 user_env.py
0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 uv-install
eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 uv-resolve
"""
