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
input_hash 5ba0f98d6e8d332f20488a72c4ae6a8d9b47d3440c047be26237ea46cf446cc8
0644 ccc7b0ccf6ffe20d1c4b3394df626bc6038f94a9f249da4ccb633b773dd3518c Dockerfile
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
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 279ac7aef08234505f01052cba29380d1d9d3311a65f909a67a915597c579a9a pyrlab/inventory/meta.json
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
input_hash 50d87814f622f2d97f08b07c0d66070248d709e9a37004564307bef482bf8621
0644 0b363041b702adb39f545b178c8e8202ac745bfe6f13eb9591976777eb28d4b9 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 600e1f71f25ff8cdc5c62c2548e68cabf85ec9b96efb3a71bd0cf327e23dc221 pyrlab/inventory/meta.json
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
input_hash b8c8bc1763391092ddb7a0caf5ea5d9f491eb2a8294c4890265b0b378caa049f
0644 27c0f6226d651d167389f1fff15bef15dce9643e0f5555ba23fd0171a77b34c5 Dockerfile
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
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 4ee9850cf3c26cb7d2a220c59b999fe08e9f95f7e3a7e5a3ffa6fae2e128ba8a pyrlab/inventory/meta.json
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
input_hash 9ce3cb5d2b57b500b19683392dfbc1cf6d5c1682c4825fe430e8071c0eacfd01
0644 9ec281dd6c2209293904fe8494b07494814d08f3b8ef00d50e9c3d0ae657d470 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 2d1fc9b592bd16064e744363379f4d8dcd49d5b2e5adf4ab4a0ccb2f8ed4103c pyrlab/inventory/meta.json
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
input_hash 19a35495d6b34112494684e056e34d9fbf709f89a98f7b5e0b9ccf56bc54f95b
0644 0c6ff4387a5c2d53c04ac91477ccffbedb1fb06ca19a63588c29067e96ef7716 Dockerfile
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
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 3873e7648b72bfa01ed6dd1991c2bc35df033821483e24fc803f502dabc11069 pyrlab/ca/00-corp-root.crt
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 a35fd42cdd60773956dee8815affb9529d15775495c6078ba4965d8427e7a6f9 pyrlab/inventory/meta.json
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
input_hash f7732a6e2ec548954d5ad74b2459fe8b2e769d9a9f5d9824cf22893315b1b95f
0644 7b16417932f416f6af0e6c3cc576a865281d6a52469ed5ff760b9f9609bf14ff Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 95a6edff8a9e0fe6922122cf1610bb46c92ac2bbe15f7e1697e390f7025cffaf pyrlab/inventory/meta.json
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
input_hash 6b3a9827b03caee707c2c09c67c622cdfa964cbc2a7edcbd1c972bf294b33eab
0644 539a01b4858dc186dfe1b8e289a5aa80bd558552a72635dcd1497934d7aa7665 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 90657c12016b40455895e97a9850630bdafb36aa1a1dd860093aa684eac8b2a6 pyrlab/inventory/meta.json
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
input_hash 7e446993c18e0fe040ffc3d687146200cb28d78a6ee59bde9e779f71eba67b5d
0644 65464df6fc549a6e35ce6374469feddce460701982046b98df118f64373d2f04 Dockerfile
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
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 065376d46eaa874bac0125efbf201edd7bb90def564e63fc34c2bf71d6fc7b24 pyrlab/inventory/meta.json
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
input_hash f0e4b09ca3a04f10210c760f1c503987bc1fb23c717c084b0909ea4f5a96a7ed
0644 a1ddc026659717298882b28aca2b3ee6578548cdede9834ac54d494942d677a4 Dockerfile
0755 01505ef14a860f6b972cc3ca31b25098fe50960c0a438411f648c885eb2505f4 pyrlab/bin/apt-install
0644 c40971d1f9909be16f8d008197dc46a2bc8cd096bb58bb9f0039c8a345376887 pyrlab/bin/heldback.py
0644 dd5b70ca353eb6931eba25ea5a7ab702ccc82adfc20f99ed65c5b581651521aa pyrlab/bin/lab_settings.py
0755 e7cc934d6cba334a39af1390ac80d85843e4ebbbd98bac2e83936d4fa63d5fd4 pyrlab/bin/net-env
0644 e96a21f1eabfa499b9525f27cecb081e41f7f2ac4392060921f84d492b1684f5 pyrlab/bin/pyc_cache.py
0755 05273fa5741d14967160ea04a902855ad161cf2f5ae84a6275a9dbf2145cf635 pyrlab/bin/r-install
0644 73383211ef6d61f2d7fa22deefc067bd095371c0f890efe092cd4f4f1bd610e5 pyrlab/bin/r-install.R
0755 ca4cf6423eb4ad049f74c9f055ba8d88e873960668e4f946ccab7e66037b09b7 pyrlab/bin/setup-base
0644 c98914c30ec7b1e73c4f59c011b0b16c9a10214b50aca9d9c577a809b298f046 pyrlab/bin/test_folders.py
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
0755 eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 pyrlab/bin/uv-resolve
0644 1df9b166400a7dfd6d4f959edc51472d3858713c711e264171fe448a4169d5c1 pyrlab/bin/uv-version
0644 123b73d2a9ec8291489a1d37453bb0c1a5d22e06303e7451fc32f66cbe5f16d6 pyrlab/inventory/inventory.py
0644 5749b7abaa0d9859f2ed166c24b1dbe777fb01f37f98534dcbd78cc93e74b8fd pyrlab/inventory/meta.json
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
input_hash c4b70f2a289878caf942ea47166522cd0e54e7ec4aee636216124446c92eca05
0644 22210a215a73656e39ea05498b676c8adb4e83961782bb565d53a4a03e19bf43 Dockerfile
0644 dabc1726877ddb99909de24584e0fea119a42405ebec2bd8b45ccda8fcc12bc4 pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash c0c86e86769015275ef6951ff9456b3db48828138a325c623bfeac08163fca43
0644 e7846f366f16fc901e2af15526db7d5eabbd6f56861e14609f17fae7da721545 Dockerfile
0644 5c2aea104e8d0d7c21f0edc7b33cc6c30fc46ef39fccfe1fec18d4954d74ee7b pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash 2c471da09794cdeb5689ac46a57be2e2a62a313e818fdf87e71dc2bef39ad73a
0644 e007f102b0d082e8111de63c3180da8190bd98c9bc3b45012bb04c85f441a859 Dockerfile
0644 8477e2279f5ac2ab58caf8a434b48e88554daef6a4237a5d67da0b5d285b600f pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash b3abfbd54580ce54220ae0d3f7aa87d44b140af9063809ae9bb64a159fc63523
0644 485e8099d94ed115ebdfdc37d0185afc8b4bfa69ca87e6c3aa407a67c2b67192 Dockerfile
0644 06c3902494add752de0360a0177015caecf8e05dab62b53f51aa600f5095ec4b pyrlab/inventory/meta.json
""",
    },
    "full": {
        "pyrlab-base": """
input_hash 1f93bd7fd1a8f88e17696dba4ff4f2109aaca41f968bafb39f4a087294c32908
0644 a7b5674a48c7c39f6de95f0e1b7ba78d7d03a8f306edd2874dfbffb5d69615c3 Dockerfile
0644 92c50637995e4f6ca488b65692fe481e6a45bca4937dc6d86b05b922f716e444 pyrlab/inventory/meta.json
""",
        "pylab": """
input_hash acf7d1e3c15c38bb2761a8b61ebfcccbdfbb230dfcb83798e0a9e576b408bc6f
0644 508d06d63a13bfd81ffae2e46cecd52caba07a42407fab93aa1523ee7399459e Dockerfile
0644 32644d9851024c969dd9015dd26e5ecb9260873ae0c1a3f65be08e83bf833a78 pyrlab/inventory/meta.json
""",
        "pylab-torch": """
input_hash 582413c9cafc1eb236d14cea387f76bd40d6cdc95dba76600155789d2ab502ca
0644 f81a03e92d961a7bf9861be2290f607f9d09c9b6573874ff5caaf2b0802d3ae7 Dockerfile
0644 95d1a10d6558864cdfea0a2a63c512606e579f8693f1b2b8cc2c18e6c80a8f50 pyrlab/inventory/meta.json
""",
        "rlab-base": """
input_hash cd7d69aca4b226bb9410618b4ed7208921c9c9dde800f07226b30d4e80d5a675
0644 1b9e3759fff7a7b616b47854176cb3ba379359041e3d8ba1ae94b09917de0833 Dockerfile
0644 9186f948ee36faf9d78074fdab1c661803ed23efbb5968f1246f811dcfb9a324 pyrlab/inventory/meta.json
""",
        "rlab": """
input_hash 52117647ac36c459668f2c626c455a5b7c5ad87c434a2550f8cd0dca2f1b5b5b
0644 62fff11e2b11f2b0ee6d888c0d0825835f178c15cf19c079227c72e3d6f8594f Dockerfile
0644 c89e9f1ba08d5f15b8486a7c9bba50ae5048b4c5dd0daea597e93606facf248a pyrlab/inventory/meta.json
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
0755 cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de pyrlab/bin/uv-install
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
cecb0b1bfdec54e9523d4078a548ae0792abb4d2f3a5671ebbf4ea4b88b996de uv-install
eb6b0e03a347f26e3266b991151d058516a7f4c64e19f4d4baeefb3c33f39fc2 uv-resolve
"""
