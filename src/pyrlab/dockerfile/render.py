"""Render one image's build context: a pure function of the project and the image name.

pyrlab's own part is here (the base step, the runtime files, the inventory step, the
template's values); each package ecosystem gives its step and its files (its Context part,
see pyrlab/ecosystems/), and dockerfile/network.py the network settings and build secrets.
The context is a Dockerfile plus a `pyrlab/` folder:

    pyrlab/bin/      build-time installer scripts (bind-mounted, not left in the image)
    pyrlab/base/     locale (what localedef makes, empty for C.UTF-8), sudoers (run.sudo)
    pyrlab/apt/      system.txt (pyrlab's own packages), debs.txt (the user's), sources/
    pyrlab/python/   requirements.txt, system.txt (pyrlab's own: jupyterhub, see
                     ecosystems/python.py `system_requirements`), lab-overrides.json (JupyterLab setting
                     defaults); `slim` when [base] slim (see uv-install)
    pyrlab/tools/    system.txt: the build-only tools stage's Debian packages (binutils)
    pyrlab/r/        cran.txt, apt.txt, repos.txt (the build's), site-repos.txt (the lab's)
    pyrlab/net/      apt/, python/, r/: proxies, indexes, timeouts per installer (build only;
                     URLs with credentials masked: the real files are network.py's
                     `build_secrets`)
    pyrlab/ca/       extra CA certificates
    pyrlab/runtime/  start script, health check, Jupyter server config, run-time installs'
                     layer (user_env.py), pip.conf for the lab, service defaults
                     (TensorBoard, D-Tale) (root image only)
    pyrlab/inventory/  the collector and meta.json, the facts it records with what it finds
    pyrlab/pins/     what pyrlab.lock says the image holds, per installer step:
                     python/ (prefer.txt, exact.txt or fresh.txt), apt/ and r/ (debs.txt,
                     cran.txt: `build --locked` only); outside the input hash, see
                     imagebuild/pins.py `with_pins`

The last installer step of every image runs the collector, which writes what the image
holds to MANIFEST_PATH (read by `pyrlab build` for pyrlab.lock, and by inspect/lock/diff/
sbom) without starting it.

Every RUN line is constant text; what differs between images is only which files sit in
these folders, and which build secrets (credentials, see network.build_secrets) a build
passes.
Each step mounts only the folders it reads, so editing requirements.txt does not
invalidate the apt step's cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import jinja2

from pyrlab import __version__, ecosystems
from pyrlab.config.project import Project
from pyrlab.dockerfile.network import SECRET_DIR, net_files, secret_id, step_secrets
from pyrlab.ecosystems.base import EXECUTABLE, REGULAR, Cache, Context, Needs, container_file, lines
from pyrlab.platforms import NATIVE, Platform, cache_id, platform_ref

HASH_PLACEHOLDER = "pyrlab-input-hash-placeholder"
META_FILE = "pyrlab/inventory/meta.json"
# Files that name the input hash: rendered with the placeholder, which feeds the hash, then
# given the hash itself (a file cannot feed its own hash).
HASHED_FILES = ("Dockerfile", META_FILE)
MANIFEST_PATH = "/opt/pyrlab/manifest.json"
# The install steps' versions from pyrlab.lock. They do not feed the input hash: the lock is
# written from the images a build made, so hashing it would make the next plain build of
# unchanged lists look changed (and the image already holds what the lock says). One
# subfolder per step, so that new Python pins do not invalidate the cached apt step.
PINS_FOLDER = "pyrlab/pins"
# The build-only tools (an ecosystem's Needs.build_tools) come from a stage of their own,
# installed from pyrlab/tools/ by the ecosystem that can (Debian).
TOOLS_STAGE = "pyrlab-tools"
TOOLS_FOLDER = "tools"
# pyrlab's own step, between the ecosystems' (their `order`: after Debian's, before Python's).
BASE_STEP = "base"
BASE_ORDER = 20
# What pyrlab's base step (setup-base: /opt/venv) sets in the root image's environment.
BASE_ENV = ("VIRTUAL_ENV=/opt/venv",
            ("PATH=/opt/pyrlab/bin:/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
             ":/sbin:/bin"),
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
            "CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt")
# pyrlab's own build scripts, beside the ecosystems' (their Context.scripts).
CORE_SCRIPTS = ("setup-base", "net-env")
# tensorboard.py becomes /opt/pyrlab/bin/tensorboard; dtale.ini D-Tale's default config.
RUNTIME_FILES = ("start.sh", "healthcheck.py", "jupyter_server_config.py", "user_env.py",
                 "tensorboard.py", "dtale.ini")
RUNTIME_EXECUTABLES = ("start.sh", "tensorboard.py")


@dataclass(frozen=True)
class RenderOptions:
    """Engine-dependent rendering choices, and the platform rendered for."""

    cache_sharing_locked: bool = True  # Podman's buildah hangs on a second locked mount
    # Podman's buildah (1.28) keeps a RUN layer cached when only its bind-mounted files
    # changed; naming a digest of those files in the RUN line makes the cache see them.
    run_input_keys: bool = False
    # Build-only tools from a stage of their own, bind-mounted into the step that uses them
    # (RUN --mount=type=bind,from=STAGE); without it, `slim` leaves debug symbols in place.
    tools_stage: bool = True
    # The platform the image is for, and the engine's own (Engine.platform()): another
    # platform's steps get cache mounts of their own (platforms.cache_id); the engine's own,
    # or NATIVE, renders as every build so far.
    platform: Platform = NATIVE
    host: Platform = NATIVE

    def __post_init__(self) -> None:
        if self.platform != NATIVE and self.host == NATIVE:
            raise ValueError(f"rendering for {self.platform} needs the engine's own platform "
                             "(host) to tell whether it is foreign")

    @classmethod
    def for_builder(cls, builder: Builder, platform: Platform = NATIVE,
                    host: Platform = NATIVE) -> RenderOptions:
        """The options an engine (or its class) builds with, from what its builder does,
        for `platform` (NATIVE, or the engine's own `host`: as every build so far)."""
        return cls(cache_sharing_locked=builder.locked_cache_sharing,
                   run_input_keys=not builder.cache_sees_bind_mounts,
                   platform=platform, host=host if platform else NATIVE)


class Builder(Protocol):
    """What rendering needs to know of an engine (see engines.base.Engine)."""

    @property
    def locked_cache_sharing(self) -> bool: ...

    @property
    def cache_sees_bind_mounts(self) -> bool: ...


# The inventory step's command (its own RUN, or the end of a delta's last step).
INVENTORY_COMMAND = ("/opt/venv/bin/python -I /run/pyrlab/inventory/inventory.py "
                     "/opt/pyrlab/manifest.json \\\n"
                     '        /run/pyrlab/inventory/meta.json "$PYRLAB_BASE_ID"')


def inventory_command(collectors: list[str]) -> str:
    """The shared collector's command, then each ecosystem's own (by ecosystem name) on the
    manifest it wrote."""
    return INVENTORY_COMMAND + "".join(
        f" && \\\n        /run/pyrlab/inventory/{name} {MANIFEST_PATH}" for name in collectors)


@dataclass(frozen=True)
class Delta:
    """A build that adds a layer to the image's own current version instead of starting
    from its parent: only `steps` ("apt", "python", "r") run again, and each installs just
    what the previous version lacks."""

    steps: tuple[str, ...]
    depth: int  # delta layers the new image carries on its last full build
    input_hash: str  # the full context's: what the new image counts as up to date for
    # Per step, the list lines added since the previous version (no file name): Python's
    # uv-install resolves just these first, so that the whole list is then already
    # satisfied (no resolution, no index).
    added: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildContext:
    image: str
    files: dict[str, tuple[bytes, int]]  # relative path → (content, mode), sorted keys
    input_hash: str

    @property
    def dockerfile(self) -> str:
        return self.files["Dockerfile"][0].decode()


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled template kept between runs (compiling it costs a no-op build a fifth
    of a second), keyed by the template's source and Jinja's and Python's versions. A cache
    that cannot be read or written is no cache: never an error."""

    def __init__(self) -> None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        super().__init__(os.path.join(base, "pyrlab", "templates"))

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


@functools.cache
def _environment() -> jinja2.Environment:
    """One Jinja environment a process: it keeps the compiled template (a graph renders it
    once per image and once more per ancestor), and the compiled code between runs."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pyrlab.dockerfile", "templates"),
        bytecode_cache=_TemplateCache(),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


@dataclass(frozen=True)
class _Step:
    """An install step of the Dockerfile, as the template writes it."""

    name: str  # its folder under pyrlab/ and its key in `keys`
    comment: str
    script: str  # pyrlab/bin/<script>
    mounts: str  # its --mount options, one a line
    folders: tuple[str, ...]  # the context folders it reads (its input key, see `_run_keys`)
    runs: bool  # in this image's Dockerfile
    extra: tuple[str, ...] = ()  # more mounts (the build tools' stage)
    env: tuple[str, ...] = ()  # what it sets in the root image's environment


# One option or variable a line, in RUN and ENV.
_CONTINUED = " \\\n    "


class _Mounts:
    """RUN --mount options as the engine's options allow."""

    def __init__(self, options: RenderOptions) -> None:
        self.lock = ",sharing=locked" if options.cache_sharing_locked else ""
        self.platform = options.platform
        self.host = options.host

    def cache(self, cache: Cache) -> str:
        # BuildKit and buildah key a cache mount by its id alone, whatever the platform: one
        # platform's must not see another's (uv's binary, compiled wheels and R packages,
        # apt's lists and the apt-install stamp in them, see container/apt-install), unless
        # its entries are the same on each (Cache.every_platform).
        mount_id = f"pyrlab-{cache.id}"
        if not cache.every_platform:
            mount_id = cache_id(mount_id, self.platform, self.host)
        return (f"--mount=type=cache,id={mount_id},target={cache.target}"
                f"{self.lock if cache.locked else ''}")

    @staticmethod
    def bind(folder: str, target: str | None = None) -> str:
        return f"--mount=type=bind,source=pyrlab/{folder},target=/run/pyrlab/{target or folder}"

    @staticmethod
    def secret(name: str) -> str:
        # Not required: a build without the secret runs with the context's (masked) file.
        return f"--mount=type=secret,id={secret_id(name)},target={SECRET_DIR}/{name}"

    def step(self, context: Context, step: str, folder: str | None = None, *,
             files: bool = True, pins: bool = True) -> str:
        """An ecosystem's step: its caches, pyrlab/bin, its network settings, its folder
        (`folder`, mounted as its own: the tools stage's), its pins, its secrets; the folder
        and the pins only where the part has such files (a bind mount needs its source)."""
        return _CONTINUED.join(
            [self.cache(c) for c in context.caches]
            + [self.bind("bin"), self.bind(f"net/{step}", "net")]
            + ([self.bind(folder or step, step)] if files else [])
            + ([self.bind(f"pins/{step}", "pins")] if pins else [])
            + [self.secret(n) for n in step_secrets(context)])


def _merged(needs: list[Needs]) -> Needs:
    return Needs(debs=tuple(d for n in needs for d in n.debs),
                 deb_sources={k: v for n in needs for k, v in n.deb_sources.items()},
                 build_tools=tuple(t for n in needs for t in n.build_tools))


def _core_debs(project: Project, name: str) -> tuple[str, ...]:
    """Debian packages pyrlab itself needs in this image (before the user's lists)."""
    config = project.config
    if config.images[name].parent is not None:
        return ()
    debs = ["ca-certificates", "tini", "curl"]
    if config.base.python == "debian":
        debs += ["python3", "python3-venv"]  # for setup-base's /opt/venv
    if _locale_line(config.base.locale):
        debs += ["locales"]
    if config.run.sudo:
        debs += ["sudo"]
    if config.base.cuda and config.base.cuda_toolkit:
        debs += ["nvidia-cuda-toolkit"]
    return tuple(debs)


def _locale_line(locale: str) -> str:
    """What setup-base gives localedef for [base] locale: "SOURCE CHARMAP NAME", NAME as
    `locale -a` lists it (glibc's spelling of the codeset); "" for C.UTF-8, which glibc has
    built in. The schema allows only LANG_TERRITORY.UTF-8 (or .utf8)."""
    source, _, _ = locale.partition(".")
    return "" if source == "C" else f"{source} UTF-8 {source}.utf8"


# run.sudo = true: a lab runs as the host user's UID, which differs between machines, so the
# rule names no user; the start script gives that UID a passwd entry, which sudo needs.
SUDOERS = """\
# pyrlab: run.sudo = true in pyrlab.toml. The lab's user (any UID) may use sudo, no password.
ALL ALL=(ALL:ALL) NOPASSWD: ALL
"""


def _meta_file(project: Project, name: str) -> bytes:
    """What the collector records besides what it finds (it adds the base image's ID)."""
    meta: dict[str, object] = {"image": name, "input_hash": HASH_PLACEHOLDER,
                               "pyrlab_version": __version__}
    for eco in ecosystems.registered():
        meta.update(eco.context.meta(project, name))
    return (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()


def _run_keys(files: dict[str, tuple[bytes, int]], steps: list[_Step],
              options: RenderOptions) -> dict[str, str]:
    """Per installer step: "" or, with run_input_keys, " # inputs <digest of its files>"."""
    keys = {}
    # The inventory step reads meta.json, which names the input hash: its key is that hash.
    keys["inventory"] = f" # inputs {HASH_PLACEHOLDER}" if options.run_input_keys else ""
    for step in steps:
        if not options.run_input_keys:
            keys[step.name] = ""
            continue
        digest = hashlib.sha256()
        for path in sorted(files):
            if any(path.startswith(f"pyrlab/{folder}/") for folder in step.folders):
                content, mode = files[path]
                digest.update(f"{path}\0{mode:o}\0{len(content)}\0".encode())
                digest.update(content)
        keys[step.name] = f" # inputs {digest.hexdigest()[:16]}"
    return keys


def render_context(project: Project, name: str, options: RenderOptions | None = None,
                   delta: Delta | None = None) -> BuildContext:
    """The build context of one image. With `delta`, the Dockerfile starts from the image's
    own `latest` and runs only the delta's steps; its input hash is the full context's, so
    that the result counts as up to date."""
    options = options or RenderOptions()
    config = project.config
    image = config.images[name]
    is_root = image.parent is None
    ecos = [eco for eco in ecosystems.registered() if eco.context.script]
    mounts = _Mounts(options)
    files: dict[str, tuple[bytes, int]] = {}

    def add(path: str, content: bytes, mode: int = REGULAR) -> None:
        files[path] = (content, mode)

    for script in CORE_SCRIPTS:
        add(f"pyrlab/bin/{script}", container_file(script), EXECUTABLE)
    for eco in ecos:
        for fname, (content, mode) in eco.context.scripts().items():
            add(f"pyrlab/bin/{fname}", content, mode)
    # Each ecosystem's part, given what pyrlab and the others need of it.
    needs = {eco.name: eco.context.needs(project, name) for eco in ecos}
    core = Needs(debs=_core_debs(project, name))
    steps: list[tuple[int, _Step]] = []
    # Build tools come from a stage of their own, installed by the ecosystem that can
    # (Debian's installer); without one (or with tools_stage off) a step goes without.
    installer = next((eco for eco in ecos if eco.context.tools_files is not None), None)
    tools: list[str] = []
    tools_bind = (f"--mount=type=bind,from={TOOLS_STAGE},source=/,"
                  f"target=/run/pyrlab/{TOOLS_FOLDER}")
    for eco in ecos:
        part = eco.context.part(project, name,
                                _merged([core, *(needs[e.name] for e in ecos if e is not eco)]),
                                delta)
        if part.render:
            for fname, content in part.files.items():
                add(f"pyrlab/{eco.step}/{fname}", content)
            for fname, content in part.pins.items():
                add(f"{PINS_FOLDER}/{eco.step}/{fname}", content)
        runs = part.render and (delta is None or eco.step in delta.steps)
        own_tools = (needs[eco.name].build_tools
                     if runs and options.tools_stage and installer is not None else ())
        tools += own_tools
        steps.append((eco.order, _Step(
            eco.step, eco.context.comment(is_root), eco.context.script,
            mounts.step(eco.context, eco.step, files=bool(part.files), pins=bool(part.pins)),
            ("bin", f"net/{eco.step}", *([eco.step] if part.files else [])), runs,
            (tools_bind,) if own_tools else (), eco.context.env)))
    steps.append((BASE_ORDER, _Step(
        BASE_STEP, "# The notebook user and the Python virtual environment.", "setup-base",
        _CONTINUED.join([mounts.bind("bin"), mounts.bind(BASE_STEP)]), ("bin", BASE_STEP),
        is_root and delta is None, env=BASE_ENV)))
    steps.sort(key=lambda order_step: order_step[0])
    tools_stage = None
    if tools and installer is not None and installer.context.tools_files is not None:
        for fname, content in installer.context.tools_files(tuple(tools)).items():
            add(f"pyrlab/{TOOLS_FOLDER}/{fname}", content)
        tools_stage = _Step(
            TOOLS_FOLDER, "", installer.context.script,
            mounts.step(installer.context, installer.step, TOOLS_FOLDER, pins=False),
            ("bin", f"net/{installer.step}", TOOLS_FOLDER), True, env=installer.context.env)
    if is_root:
        locale_line = _locale_line(config.base.locale)
        add("pyrlab/base/locale", lines([locale_line] if locale_line else []))
        if config.run.sudo:
            add("pyrlab/base/sudoers", SUDOERS.encode())
    for fname, content in net_files(project).items():
        add(f"pyrlab/net/{fname}", content)
    add("pyrlab/inventory/inventory.py", container_file("inventory.py"))
    collectors = [eco.name for eco in ecos if eco.contents.collector is not None]
    for eco in ecos:
        if eco.contents.collector is not None:
            add(f"pyrlab/inventory/{eco.name}", eco.contents.collector(), EXECUTABLE)
    add(META_FILE, _meta_file(project, name))
    if is_root:
        for ca in project.ca_files:
            add(f"pyrlab/ca/{ca.name}", ca.content)
        for runtime in RUNTIME_FILES:
            mode = EXECUTABLE if runtime in RUNTIME_EXECUTABLES else REGULAR
            add(f"pyrlab/runtime/{runtime}", container_file(runtime), mode)
    runtime_files = ([file for eco in ecos for file in eco.context.runtime_files(project)]
                     if is_root else [])
    for file in runtime_files:
        add(f"pyrlab/runtime/{file.name}", file.content)

    ports = sorted({port for _, port in image.ports})
    # Another platform's image starts FROM that platform's parent and base, and its lab
    # keeps its run-time installs apart (Config.image_ref, layer_key); the engine's own
    # renders as before.
    platform, host = options.platform, options.host

    def image_ref(of: str) -> str:
        return config.image_ref(of, "latest", platform, host)

    base_ref = platform_ref(config.base.image, platform, host)
    layer = config.layer_key(name, platform, host)
    ordered = [step for _, step in steps]
    # A delta records its inventory at the end of its last step rather than in a step of
    # its own: one container start less on the way to a one-package layer.
    inventory_with = next((step.name for step in reversed(ordered)
                           if delta is not None and step.name in delta.steps and step.runs), "")
    values = {
        "version": __version__,
        "name": name,
        "parent": image.parent or "",
        "from_ref": (image_ref(name) if delta is not None
                     else image_ref(image.parent) if image.parent else base_ref),
        "delta": delta.steps if delta is not None else (),
        "delta_depth": delta.depth if delta is not None else 0,
        "is_root": is_root,
        "cuda": config.base.cuda,
        "ca_files": bool(project.ca_files),
        "steps": ordered,
        "tools": tools_stage,
        "tools_stage": TOOLS_STAGE,
        "tools_ref": base_ref,
        "inventory_mount": mounts.bind("inventory"),
        "keys": _run_keys(files, [*ordered, *([tools_stage] if tools_stage else [])], options),
        "lab_port": image.lab_port or "",
        "ports": [str(p) for p in ports],
        "port_label": ",".join(f"{n}={p}" for n, p in image.ports),
        "input_hash": HASH_PLACEHOLDER,
        "runtime_files": runtime_files,
        "root_env": _CONTINUED.join([f"LANG={config.base.locale}", f"LC_ALL={config.base.locale}",
                                      *(line for step in ordered for line in step.env)]),
        "lab_env": _CONTINUED.join([f"PYRLAB_LAB_PORT={image.lab_port}", f"PYRLAB_IMAGE={layer}",
                                     *(line for eco in ecos
                                       for line in eco.context.lab_env(layer))]),
        "tools_env": _CONTINUED.join(tools_stage.env) if tools_stage else "",
        "inventory_with": inventory_with,
        "inventory": inventory_command(collectors),
    }
    template = _environment().get_template("Dockerfile.j2")
    draft = template.render(**values)
    if delta is not None:
        input_hash = delta.input_hash
    else:
        digest = hashlib.sha256()
        for path in sorted(files):
            if is_pins_file(path):
                continue
            content, mode = files[path]
            digest.update(f"{path}\0{mode:o}\0{len(content)}\0".encode())
            digest.update(content)
        digest.update(draft.encode())
        if image.parent is not None:
            # An image is built on its parent: when the parent's inputs change, so do its own.
            digest.update(render_context(project, image.parent, options).input_hash.encode())
        input_hash = digest.hexdigest()
    add("Dockerfile", draft.encode())
    for path in HASHED_FILES:
        content, mode = files[path]
        add(path, content.replace(HASH_PLACEHOLDER.encode(), input_hash.encode()), mode)
    return BuildContext(image=name, files=dict(sorted(files.items())), input_hash=input_hash)


def is_pins_file(path: str) -> bool:
    return path.startswith(f"{PINS_FOLDER}/")
