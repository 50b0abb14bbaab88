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
input_hash 6afc20bf16eca0d39944f890cc476573923c4513b908e53c7e42951508182ddf
0644 170f889c80aa7894c786f867064b6d9b9b3b294fb156e7f252d6d69578a86b1b Dockerfile
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
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 7139f7312ccc0790fdda2a39ae61555da5a98ee210e2aa5743f86abea2aaad9b pyrlab/inventory/meta.json
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
input_hash 2ed7981eface2b3605a9b2f224e68c6c71311893f5ea7900fb2bd11e4ca0020b
0644 65ffd5012d6f6c39f1341806d72d4dba8de6423da3ed91b08fc62bc913119b21 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 a0c67f76c332499a85cf1ddcec6ecb162e1aeb33dc67134608b0115b46a4e520 pyrlab/inventory/meta.json
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
input_hash dd5cf0bb4a1c9a3e47b495bdfa0bd92868b558248e24989f3227dc7048212f3a
0644 7f7b63800c4f956f45ef0f8c44eb7aaa25bba9716b399e94a8aeab2762e52b74 Dockerfile
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
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 becd892a2325e6f23e25c9fd94dafdb90c5ce13ce36710dd51437b1dbf778733 pyrlab/inventory/meta.json
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
input_hash e1d79fa183df47b064dbc283eff486d35618533434202bd46138a6f477a2bbed
0644 70cfb382dd4cc2c3f8e05d39d89d9b953da04b16dc21eb73b02f3c8e1c6e8298 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 42a82818de8044894bb04a089f893d0209ef54cf4f65b36fa921b52cc1c30e4b pyrlab/inventory/meta.json
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
input_hash 6622112e711477bf0b00ebf6d4eae1ba28239ed1ca66bcedf1dd39fb7c6d2a0f
0644 baf04f62fccdafa4f53487dbcaded8968de0e03d923fe89fe0f0c73bdd23531f Dockerfile
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
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 3873e7648b72bfa01ed6dd1991c2bc35df033821483e24fc803f502dabc11069 pyrlab/ca/00-corp-root.crt
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 7dee18feb9085b1d8bc7564aa4ce58598c7da531075074a433a3e3b0da3aaec3 pyrlab/inventory/meta.json
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
input_hash a5901818d02fa092e4a10a4dd083781878f6ed0a8efa1923d5fe80066047cdb0
0644 55bbd068ab3ce4776de17b3b8c5e2ed7a22ff11a694ac15bafec6ede5f442c8f Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 a5c0094bbcff8c75afcee13786ab5db9c6dc988111ae6034f065f449c3b21ae0 pyrlab/inventory/meta.json
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
input_hash 43a2f130923839b8a3bb3b82d8835b506751a5b666b77b1c0e603ca9b6034707
0644 e754611bcfedc2beae09ff2896c49048fe0c24e7bac45b05c5eb820119d3c1b5 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 2119996ae612bd9ac803fd81e3c3ac6faddc53252985fe5ceef6339f584583b8 pyrlab/inventory/meta.json
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
input_hash fe9e75bbe2548cb69111dd932d4c02119e87275f79c3a9f8098eaa7ffcba440a
0644 103b66baeaff6d3fc08f275fe41c3f2cb6b7efbef862953aa707be39a8405710 Dockerfile
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
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 d417f3a0a789eb1c3645040cc852eb6afc4bfb5cbba1f53b458e37085c9c4408 pyrlab/inventory/meta.json
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
input_hash c6e74f7c77cd5535f4f1af1dfcc2e4e3f1c7e7e99f90a333bdf618b28eeedf65
0644 a25e20e368bb1b1da78a990edc568626f6cd3416074ccf6cc2212aa7d685fe11 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 8a4cbee7db037c92bcbaee4978c7564fedd0e32dda464ba32d26b67169207ec2 pyrlab/inventory/meta.json
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
input_hash 2f9e413f92cfdf50d085aabff9705a99bfa2bf04f88de1032840767efe14476a
0644 75e39f066381ac3cdca99e96d652a33727bfc2252cf6e6e317a7669f58736c86 Dockerfile
0644 246730eae058cecf5c98279d1cfe4f0c2497b98102446f4d1f2df91b2f0f7870 pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash 326498762abf94622d705c19daf30b3cb38f05121be819a2bc0ae137c35cef33
0644 b163eb21abb43dc1a6c42520089090fd8713bce40ced1a01b5ed041fb464a64f Dockerfile
0644 a5f54bb76d2bc8552e4d7def70b4e51499b11e276c763f511efee6f03ea14b0a pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash b1ec3893d4acb508aa14f0a41388e10611aabfaa250f8bed74f91a5092525b90
0644 223ad09cd277281a78219dcf104c1fe68a29c97197e0ae51c26e780c38f3c88b Dockerfile
0644 ecb1b8ff9328dbdf680a3271e4860e4e579b11d1ca28ce94c56a8f98311f9b3d pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash 846ee4c735358c3baa4c90860ff77c2a1c6ad9a3dc37b9cd1baeecb6fdb882ad
0644 813f3bcee377174779338e95f35df9d397c83a464ae535e61d19e0e772269057 Dockerfile
0644 8e3746e2de429c565b43f901a45e081597b3ac01a409d8ad030aea4301e3dd72 pyrlab/inventory/meta.json
""",
    },
    "full": {
        "pyrlab-base": """
input_hash 21c7941a12baa90e907f98dcaf94b3488240f9f031680864fb7bf6faa78bf18e
0644 75dbe679720d3a2b13843cb9bf3ed4fd3cb9a7a5b66b6b23725499f416c15577 Dockerfile
0644 ccd736644d326fceabfa0e8a6bcadaa9c967f47a3e6e48cd34518f69bea98159 pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash e96a7c841bde52d53d4bad3c8e3e577d9f3dc2a88dcb3d4c702e15313805fbcd
0644 2999cae1076eb25624ee5a36bbfb5e804abec7907e30128997b098ab23097cd1 Dockerfile
0644 1e5695d2262b9ad14c37d694a9df7f7975c7c81274057c6173fae69dd660148c pyrlab/inventory/meta.json
""",
        "pylab-torch": """
input_hash cbd136ea86dc207f2859c38f025baf749944a0625c4d3ada3d91690ecd3d10bf
0644 cb5b37dfc7a0a42475edf6e8942799ff11ac25a69ab58573a7a77210fb4d5d39 Dockerfile
0644 2e5b0db4bef6bb04e2e40602d6e1017e943a7e88c645e89e921fe7eb103348c5 pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash 80a838260b5c592fd1f4c7299ebce2271f3ef935de5e41b7eec6938e1dc6f927
0644 1da332409f3337b9064aca2bf719ada59a96329e8fac4628dbc3a571c37d34b8 Dockerfile
0644 4386373b6df74b0c86b47e01edd36079f4c41b423b07810aa100401b5580a900 pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash e07342f1e78ec17b47831db8429dd3e161a3235dfa566ccf6859090cff5739ee
0644 2d67e164a68e6f88a1dc63bb089e0260badd56d9b5f05d00fec8ba26250d7a6d Dockerfile
0644 3dcc762d6c1e3d4d2096c8910da656cf24cfdecafef55b8132129a4da5f72d81 pyrlab/inventory/meta.json
""",
    },
}
DELTA = """
input_hash dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd
0644 0d96b46b9739ab41459e3004c55cd2d795ebe44d9a92164bd086a8dbad8385f0 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
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
0e759e4fecb241bd4a5fb1a440019c8bd185816f410df347b6ca3a95fde714c9 uv-install
eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 uv-resolve
"""
