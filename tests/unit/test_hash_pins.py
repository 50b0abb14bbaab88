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
input_hash 1c85e3151fd9553ae0ec11e303421368d27465b1e2894918e88141c02be0be37
0644 9e1290dd2e1fab6d0bdeee494ba82dd97d3fbcbd39c02d158386e5963a5dc218 Dockerfile
0644 084a45b09e46f262450d7526c6d01fd37aecb94861d1163ec12b882df4680ad1 pyrlab/apt/debs.txt
0644 00f7d5350649a5e43d8eb53dc38f15a448448aad80539d34b97ad8727e944d56 pyrlab/apt/system.txt
0644 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pyrlab/base/locale
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 c6436f4c992ec550d1d9728cf551636f24646a0a54ceb55d2ac2944e253301f5 pyrlab/inventory/meta.json
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
input_hash 1371ad03ab0782c47d39ca24b1b16cd9759cae5dd8e2cdfe7335ef4ba3e21cea
0644 fcf597fa09a7401a800a406550a82b26e87dd86052cafeb28fef2f743ba61005 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 b0c11afd890d7ba5e435e9cc7db22d464577104906d9a95958efc04f00dcc02f pyrlab/inventory/meta.json
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
input_hash 40b8355a1c6082efcb0f687c36a49afd3d07d4ef10d838401194f1cc0e78bb76
0644 f37f260b26dda039b3d0c10acad086470bc64996fb4e04d4cfe72214444a524e Dockerfile
0644 8dd1db88ebd53220222158024fbaabcabab9c53a73c4785678b35360c653ac5d pyrlab/apt/debs.txt
0644 592fab63ff902a85d1abd2adfb77177fdbc3fe998716e03b7be66a938507c6a7 pyrlab/apt/system.txt
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 a94b31c0ed19f06131f98258b9c27d8f3bf77a20c9974c597e39045dbca2bbff pyrlab/inventory/meta.json
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
input_hash 70966f356fcd216377e02e6dc0b6eebe47ed9e87b76b8e980e01fe4353771cb7
0644 3599e09c03583b312fa2cae826bca62d6a1a861fb6af29ed7a64815fefefaa68 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 fca47df3a9531acd9552f6323835e7824f935f606274d101e4ab06026f15ef97 pyrlab/inventory/meta.json
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
input_hash 429c533eb50f138c43b7930536fca23e26d6dfd003285f9319dfacdc00a15ef2
0644 22a50e3e516be196330415df59881e0ed420e01a57e3c27a6a94f89b505edbfa Dockerfile
0644 688b7e37758f48752a047878e1ee43a32f8196765383344231b03934a9a80aea pyrlab/apt/debs.txt
0644 4ffa3ffa57c75d47c29096fb0b4cd97e2a28b4767ca8a15784f9569f99ceee9b pyrlab/apt/system.txt
0644 9413d33da9235417e3d16697a89567e0f8fabc0327d5f189da4b3ba00e332254 pyrlab/base/locale
0644 c2ec73da86deb1b5abc6889d2578d696d230e36e2b1ebbfa0a9cccf7c06241c1 pyrlab/base/sudoers
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 3873e7648b72bfa01ed6dd1991c2bc35df033821483e24fc803f502dabc11069 pyrlab/ca/00-corp-root.crt
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 cbe851f98611d5920a51fe17c927ad0f0cf311e13a0e42ed1470b33c0dba8728 pyrlab/inventory/meta.json
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
input_hash 73161ff631a90b9f8efcac103f66720d28f088dd43c5ac10bf9cabba8569edc5
0644 c257f4fc8272bb5e4d3d63e815e6a27768e28edbdbbfc83f445e7b84a0770eaa Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 074fb6aa1de1d0874a4df261e1bb6037e9ef4860852606ca2d429e5d5456d3b4 pyrlab/inventory/meta.json
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
input_hash 061c528ce91625c553b87c9e2d792df42dafedc13561233ecad967be885aad7c
0644 54c25a647344869574a8ea6b5da66e1b35493451fea5fe5d1a90794f29a1efce Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 3f7e22f4f21a9fb0143d17364ab2ea91761f981e3b9310e933a70bfaecd4b6da pyrlab/inventory/meta.json
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
input_hash e9c26837cc315f61123a9bc0b714d14fe3297072f252618da01f2337d47e8384
0644 8632c1129a650cb7dec1bec0ed0d80e5fc94ceb827aa654832cd835094f8403a Dockerfile
0644 897b12ac3be5a6813af02103e36e3d9e65014f303cd63c14c6742b9754009b5b pyrlab/apt/debs.txt
0644 07282c0d5dd2cb6193375336194cc5b1102fab37b6a9da33db15f17cda318293 pyrlab/apt/sources/pyrlab-cran-debian.missing-key
0644 cc4fcfe50faf1a567499efa7c3014f1863b8a99f2485c5ef45c649cc9b8768bd pyrlab/apt/sources/pyrlab-cran-debian.sources
0644 592fab63ff902a85d1abd2adfb77177fdbc3fe998716e03b7be66a938507c6a7 pyrlab/apt/system.txt
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 0b3a1bd0ee4be7ecb47a450427585c2459b81da2d113bf1918ec716ce48dad69 pyrlab/inventory/meta.json
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
input_hash 829d545a0b0e4eecc88e0eadad0f7277ce7a14f5dfb31a5765dc6e2d149a799b
0644 d79aae07069dbf79a72e392f4412febf754080226931ede1f7ddcae6ccebb054 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 cc89a60a13c605cf0e84678f42be730b8e75fad84ca7db23dd8ecf887f5ec8d3 pyrlab/inventory/meta.json
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
input_hash c0134a361d766232b44d3c8d7a503c2692959a516a9db89dff8c10ad30a8db84
0644 99a72ed98333c3802d8364afe08232f7e5499eb2e458a6a0cb765c9e35ad44a0 Dockerfile
0644 70d82aaf5a679b05398c60c952c60be275ad326cde91b16d8df2572196732c4e pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash e536185c89818ce4317b56ad85eb8a181e52e8d721488ae038361d0fd1e363ab
0644 2ca03a407b6de1083747b91af42ce07b0ba8c8a145cd688c4f70f5ef5cb2084e Dockerfile
0644 6d91f939857b0fd0c3454139bf67e9a34db507dfb21b8fcd4bd7d64e5e180404 pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash 2974bf137358aa0116c64ff0a0b194afc81c59da39d723717a96ee50691ec6dd
0644 d52823d2ef1db0202bbc668fbf175ab2abd351a95770b1e3fe77055ad9457177 Dockerfile
0644 b2b318a2a883fd4cdf38ca03fa987f2e3e54b19babd11cb7d220404bb0826c4c pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash 1de9451a71f05545b54520d4f90bb8fe99a189074e01d8c2fdcf932ff62dacfb
0644 6fbcd0d90b66cdc54811a11377aaffaef5ceefd11e73f79eb9b187959b203eb8 Dockerfile
0644 7c1abee74dacf86c78f65fedc89e28a73bad9ae621e9de056f7c3ab0c76acc05 pyrlab/inventory/meta.json
""",
    },
    "full": {
        "pyrlab-base": """
input_hash b25ccbc9f60e6a07d8a97c4051b6676c4cd379f1669a6a28fd6a5a73a6eabad8
0644 1c85aceb9a58cc904a7e0e692bcde87a5217bef518c763d1fd606c656f3fd299 Dockerfile
0644 473388b67a58102ee43c5c7cc20c9c24dff8010885d0756bb2e45e8d9ab6cda6 pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash 89590a2b2f5d52b668e402f77bc923f00b8436609dfaa533defdbb37358c71c0
0644 0a7797f0208581da613fea4e6c902162f947c67af7c08f4c19a0e4547a88a0e8 Dockerfile
0644 169f7d19e60e8ef0f3edd2fc42d9585972788aaaa8fd57fa499eab5010df74ec pyrlab/inventory/meta.json
""",
        "pylab-torch": """
input_hash 01d57070594007110e12d28594b686f4455aa174aab682d57fbd5625acb406b9
0644 7a6e8beb481fa60a04685470539eb1584f5e099ef97cb90d24298117f38e7943 Dockerfile
0644 173f470c01300e17c18460e662cd1f048fbb99020ff54dd1f63b1d42119b1220 pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash 4d9317f9deaabe2ba5993e9766534ac7f62222b9d08938b8ceb0f112c6c68e63
0644 241391c859069999205d8041b5c6cccad36d2005c452175212501adfd2ea133e Dockerfile
0644 3321fa997387668096861c5732bfe569672ff4a82452f9d7bddc41a7ca452400 pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash d3556d7bd2c91cfd5f938f3e353d17365d5a2372dd7e3b66b63f533a80275cb3
0644 e3960a28958f8234c88bc65b64129300377fa8143d5c65b1843de81bd2562945 Dockerfile
0644 bcc1b54de2f8d46e295d26f1d13c0aead280e4634c1b0e6871b3954d15818abe pyrlab/inventory/meta.json
""",
    },
}
DELTA = """
input_hash dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd
0644 dcf48006985a1ff74e09ed91e82e433ab1e29f07ea8f14a14e6d78bb900f114e Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 pyrlab/bin/uv-install
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
01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 apt-install
759c70dc30eac643d0faf8052a9dc2174fd93ef484e4acbcf3381e41940ac1e8 dtale.ini
dca759fa0eacbe2f64d691b56a37ac2395d2a07e2f1dfa2faef949a99eb9d8ee healthcheck.py
c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 heldback.py
123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 inventory.py
891186322b719b17a6c243ceab02a46b2be6c513acfe1ccca2962fe5c1a5233b jupyter_server_config.py
dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa lab_settings.py
e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 net-env
e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyc_cache.py
05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 r-install
73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 r-install.R
462eac48d2c0eaeabfb17f916107fb794692f8c4ceafcbfefd1edf6d7757a6da requires.py
8bc303a5c03d8fd8da9ff2db64a43ca9450c7b5786e4534791301b42fe54a4af selftest.py
ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 setup-base
4a69c6a0fea864b63f61ef61654d9a64fa24e6f0453d86fde28085995095538f start.sh
becda148910a78173957a39d2a247a955502e0547c737eb39f39092635608561 tensorboard.py
c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 test_folders.py
f3dfcd78fe2570a3f9f378b826e6945188845c47af0296a40d0ca2523bf741d5 user_env.py
92d3b2c24427eba766c00671c5b98046585713be285745c9b022be90b7a51392 uv-install
eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 uv-resolve
"""
