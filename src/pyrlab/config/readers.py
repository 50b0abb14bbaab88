"""pyrlab.toml → typed, frozen configuration (config/model.py).

Loading is: read TOML → fill in the default image graph → apply the machine settings of
the user's own file (config/user.py) → apply overrides (environment `PYRLAB_*`, then
`--set KEY=VALUE`: config/overrides.py) → read and check every table (the value checks are
config/validators.py), collecting every problem with the file and key it belongs to.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pyrlab import ecosystems
from pyrlab.config.guess import did_you_mean
from pyrlab.config.model import (
    BUILD_KEYS,
    CONFIG_NAME,
    DEFAULT_IMAGES,
    DEFAULT_INDEX_RETRIES,
    DEFAULT_INDEX_TIMEOUT,
    DEFAULT_NOTEBOOKS,
    RUN_KEYS,
    TEST_KEYS,
    TOP_KEYS,
    BaseConfig,
    BuildConfig,
    Config,
    ImageConfig,
    Mark,
    ProxyConfig,
    RunConfig,
    SelfTestConfig,
    base_keys,
    default_home,
    default_uid_gid,
    image_keys,
    known_failures_keys,
    name_from_folder,
    proxy_keys,
)
from pyrlab.config.overrides import apply_overrides, env_name
from pyrlab.config.tomlread import key_lines, line_of, toml_key, toml_kind, toml_loads, toml_problem
from pyrlab.config.validators import (
    IMAGE_NAME_RE,
    PORT_NAME_RE,
    cache_source_problem,
    is_bind,
    is_bool,
    is_host_list,
    is_image_ref,
    is_int_in,
    is_locale,
    is_parent_name,
    is_path_list,
    is_port,
    is_prefix,
    is_project_name,
    is_rc_table,
    is_run_path,
    is_snapshot,
    is_str_list,
    is_suite,
    is_uid,
    is_url,
    one_of,
    platform_of,
)
from pyrlab.engine_names import engine_choices
from pyrlab.errors import ConfigError, Problem
from pyrlab.platforms import Platform


class _Reader:
    """Walks one TOML table, converting values and collecting problems with their key."""

    def __init__(self, shown: str, problems: list[Problem], sources: Mapping[str, str],
                 lines: Mapping[tuple[str, ...], int]) -> None:
        self.shown = shown
        self.problems = problems
        self.sources = sources
        self.lines = lines  # where the file writes each key (tomlread.key_lines)

    def problem(self, key: str, message: str) -> None:
        """A problem at `key`: `FILE:LINE: key` where the file writes it (or the table
        it is in), `FILE: key` for a default, and naming the override that set it."""
        source = self.sources.get(key.split("[", 1)[0])  # an element's is its list's
        suffix = f" (from {source})" if source else ""
        line = None if source else line_of(self.lines, key)
        where = f"{self.shown}:{line}: {key}" if line else f"{self.shown}: {key}"
        self.problems.append(Problem(where, message + suffix))

    def table(self, data: Any, key: str, known: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(key, f"expected a table, got {toml_kind(data)}")
            return {}
        for k in data:
            if k not in known:
                where = f"{key}.{toml_key(k)}" if key else toml_key(k)
                self.problem(where, f"unknown key{self._guess(key, k, known)} "
                             f"(known: {', '.join(sorted(known))})")
        return data

    def _guess(self, table: str, word: str, known: set[str]) -> str:
        """"; did you mean KEY?", KEY spelled as the unknown one was given: a dotted key,
        or a variable name when it came from the environment; "" without a close one."""
        guess = did_you_mean(word.replace("-", "_"), known)
        if guess is None:
            return ""
        key = f"{table}.{toml_key(guess)}" if table else guess
        where = f"{table}.{toml_key(word)}" if table else toml_key(word)
        if self.sources.get(where, "").startswith("environment "):
            return f"; did you mean {env_name(key)}?"
        return f"; did you mean {key}?"

    def get(
        self,
        data: dict[str, Any],
        key: str,
        prefix: str,
        default: Any,
        check: Callable[[Any], str | None],
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        error = check(value)
        if error:
            self.problem(f"{prefix}{key}", error)
            return default
        return value


def _as_tuple(v: Any) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


def _read_lists(r: _Reader, d: dict[str, Any], prefix: str,
                defaults: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The list keys of one table (an ecosystem's list key → its files), in install order."""
    return {key: _as_tuple(r.get(d, key, prefix, list(default), is_path_list))
            for key, default in defaults.items()}


def _read_base(r: _Reader, raw: Any) -> BaseConfig:
    d = r.table(raw, "base", base_keys())
    p = "base."
    suite = r.get(d, "bootstrap", p, None, is_suite)
    default_image = f"pyrlab-debian:{suite}" if suite else "python:3.14-trixie"
    if d.get("snapshot") is not None and d.get("mirror") is not None:
        r.problem("base.snapshot", "set together with base.mirror: the snapshot is the mirror "
                  "(snapshot.debian.org); remove one of them")
    return BaseConfig(
        image=r.get(d, "image", p, default_image, is_image_ref),
        bootstrap=suite,
        mirror=r.get(d, "mirror", p, None, is_url("http", "https")),
        python=r.get(d, "python", p, "debian" if suite else "image", one_of("image", "debian")),
        lists=_read_lists(r, d, p, {eco.list_key: eco.grammar.base_list
                                    for eco in ecosystems.registered()
                                    if eco.grammar.base_list is not None}),
        cuda=r.get(d, "cuda", p, False, is_bool),
        cuda_toolkit=r.get(d, "cuda_toolkit", p, False, is_bool),
        ca_certificates=_as_tuple(r.get(d, "ca_certificates", p, [], is_path_list)),
        locale=r.get(d, "locale", p, "C.UTF-8", is_locale),
        slim=r.get(d, "slim", p, True, is_bool),
        jupyterhub=r.get(d, "jupyterhub", p, True, is_bool),
        snapshot=r.get(d, "snapshot", p, None, is_snapshot),
    )


def _read_proxy(r: _Reader, raw: Any) -> ProxyConfig:
    d = r.table(raw, "proxy", proxy_keys())
    p = "proxy."
    url = is_url("http", "https")
    extra = r.get(d, "pip_extra_index", p, [], is_str_list)
    for i, item in enumerate(extra):
        error = url(item)
        if error:
            r.problem(f"proxy.pip_extra_index[{i}]", error)
    no_proxy = r.get(d, "no_proxy", p, None, is_host_list)
    return ProxyConfig(
        apt=r.get(d, "apt", p, None, url),
        apt_https=r.get(d, "apt_https", p, False, is_bool),
        pip_index=r.get(d, "pip_index", p, None, url),
        pip_extra_index=tuple(extra),
        cran=r.get(d, "cran", p, None, is_url("http", "https", "file")),
        http_proxy=r.get(d, "http_proxy", p, None, url),
        https_proxy=r.get(d, "https_proxy", p, None, url),
        no_proxy=no_proxy,
        network_host=r.get(d, "network_host", p, None, is_bool),
        timeout=r.get(d, "timeout", p, DEFAULT_INDEX_TIMEOUT, is_int_in(1, 3600, "seconds")),
        retries=r.get(d, "retries", p, DEFAULT_INDEX_RETRIES, is_int_in(0, 20, "retries")),
    )


def _read_ports(r: _Reader, raw: Any, key: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(raw, dict):
        r.problem(key, f"expected a table like {{ lab = 8888 }}, got {toml_kind(raw)}")
        return ()
    ports = []
    for name, value in raw.items():
        if not PORT_NAME_RE.match(name):
            r.problem(f"{key}.{toml_key(name)}", "port names are lower-case words")
            continue
        error = is_port(value)
        if error:
            r.problem(f"{key}.{name}", error)
            continue
        ports.append((name, int(value)))
    seen: dict[int, str] = {}
    for name, port in ports:
        if port in seen:
            r.problem(f"{key}.{name}", f"port {port} is also used by '{seen[port]}'")
        seen[port] = name
    return tuple(ports)


def _read_image(r: _Reader, name: str, raw: Any) -> ImageConfig:
    key = f"images.{toml_key(name)}"
    if not IMAGE_NAME_RE.match(name):
        r.problem(key, "image names are lower-case letters, digits and . _ - (e.g. 'pylab-torch')")
    d = r.table(raw, key, image_keys())
    p = key + "."
    parent = r.get(d, "from", p, None, is_parent_name)
    ports = _read_ports(r, d["ports"], p + "ports") if "ports" in d else ()
    ports_raw = d.get("ports")
    if (isinstance(ports_raw, dict) and ports_raw and "lab" not in ports_raw
            and all(PORT_NAME_RE.match(n) for n in ports_raw)):  # else a name is refused
        r.problem(p + "ports", "no 'lab' port: an image with ports is started as a lab, which "
                  "serves JupyterLab on its lab port; add one (lab = 8888), or remove the "
                  "ports of an image that is only a base for others")
    return ImageConfig(
        name=name,
        parent=parent,
        lists=_read_lists(r, d, p, {eco.list_key: () for eco in ecosystems.registered()}),
        r=r.get(d, "r", p, None, one_of("debian", "cran")),
        r_source=r.get(d, "r_source", p, "cran", one_of("cran", "apt")),
        ports=ports,
        run_args=tuple(r.get(d, "run_args", p, [], is_str_list)),
    )


def _read_run(r: _Reader, raw: Any, project: str) -> RunConfig:
    d = r.table(raw, "run", RUN_KEYS)
    p = "run."
    uid, gid = default_uid_gid()
    rc_raw = r.get(d, "rc", p, {}, is_rc_table)
    return RunConfig(
        notebooks=r.get(d, "notebooks", p, DEFAULT_NOTEBOOKS, is_run_path),
        home=r.get(d, "home", p, default_home(project), is_run_path),
        rc=tuple(sorted(rc_raw.items())),
        userlab=r.get(d, "userlab", p, "userlab.sh", is_run_path) or None,
        envfile=r.get(d, "envfile", p, ".env", is_run_path),
        bind=r.get(d, "bind", p, "127.0.0.1", is_bind),
        uid=r.get(d, "uid", p, uid, is_uid),
        gid=r.get(d, "gid", p, gid, is_uid),
        docker_args=tuple(r.get(d, "docker_args", p, [], is_str_list)),
        sudo=r.get(d, "sudo", p, False, is_bool),
        allow_no_token=r.get(d, "allow_no_token", p, False, is_bool),
    )


def _read_build(r: _Reader, raw: Any) -> BuildConfig:
    d = r.table(raw, "build", BUILD_KEYS)
    sources = r.get(d, "cache_from", "build.", [], is_str_list)
    for i, item in enumerate(sources):
        error = cache_source_problem(item)
        if error:
            r.problem(f"build.cache_from[{i}]", error)
    return BuildConfig(cache_from=tuple(sources), platforms=_read_platforms(r, d))


def _read_platforms(r: _Reader, d: dict[str, Any]) -> tuple[Platform, ...]:
    """build.platforms: platforms as platforms.parse writes them, each once; one string
    (`--set build.platforms=linux/arm64`) is a list of one."""
    given = r.get(d, "platforms", "build.", [], _is_list_or_one)
    chosen: dict[Platform, int] = {}
    for i, item in enumerate(_as_tuple(given)):
        found, problem = platform_of(item)
        if found is None:
            r.problem(f"build.platforms[{i}]", problem or "not a platform")
        elif found in chosen:
            r.problem(f"build.platforms[{i}]", f"{found} is listed twice (build.platforms"
                      f"[{chosen[found]}] is {found} too); remove one")
        else:
            chosen[found] = i
    return tuple(chosen)


def _is_list_or_one(v: Any) -> str | None:
    """An array (its items are checked one by one) or a single value."""
    if isinstance(v, (list, str)):
        return None
    return (f"expected an array of platforms such as [\"linux/amd64\", \"linux/arm64\"], "
            f"got {toml_kind(v)}")


def _read_marks(r: _Reader, raw: Any, key: str, name_ok: Callable[[str], bool],
                what: str) -> tuple[Mark, ...]:
    """NAME = "expected error" lines of one [test.known_failures.*] table, or NAME = {
    error = "expected error", platforms = ["linux/arm64"] } for a failure accepted on some
    platforms only."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        r.problem(key, f"expected a table of NAME = \"expected error\", got {toml_kind(raw)}")
        return ()
    marks = []
    for name, value in raw.items():
        where = f"{key}.{toml_key(name)}"
        if not name_ok(name):
            r.problem(where, f"expected {what}")
            continue
        expected: Any = value
        chosen: tuple[Platform, ...] = ()
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"error", "platforms"})
            if unknown:
                r.problem(f"{where}.{toml_key(unknown[0])}", "unknown key: a limited mark "
                          "takes error = \"...\" and platforms = [\"linux/arm64\"]")
                continue
            expected = value.get("error")
            limited = _mark_platforms(r, value.get("platforms"), f"{where}.platforms")
            if limited is None:
                continue
            chosen = limited
            where = f"{where}.error"
        if not isinstance(expected, str) or not expected.strip():
            r.problem(where, "expected the error it fails with: an exception type such as "
                      "\"ModuleNotFoundError\" or a text the error contains, as a string, "
                      f"got {_kind_of_expected(expected)}")
        else:
            marks.append(Mark(name, expected, chosen))
    return tuple(marks)


def _kind_of_expected(value: Any) -> str:
    if value is None:
        return "nothing"
    return toml_kind(value) if not isinstance(value, str) else "an empty one"


def _mark_platforms(r: _Reader, raw: Any, where: str) -> tuple[Platform, ...] | None:
    """A limited mark's platforms (a non-empty list, each once); None after a problem."""
    if not isinstance(raw, list) or not raw:
        r.problem(where, "expected the platforms it is accepted on, such as "
                  f"[\"linux/arm64\"], got {toml_kind(raw) if raw is not None else 'nothing'}"
                  + (" (leave the mark a plain string to accept it everywhere)"
                     if raw == [] else ""))
        return None
    chosen: list[Platform] = []
    for i, item in enumerate(raw):
        found, problem = platform_of(item)
        if found is None:
            r.problem(f"{where}[{i}]", problem or "not a platform")
            return None
        if found not in chosen:
            chosen.append(found)
    return tuple(chosen)


def _read_test(r: _Reader, raw: Any) -> SelfTestConfig:
    from pyrlab.ecosystems.r import R_NAME_RE  # R's grammar, loaded when a config is read

    d = r.table(raw, "test", TEST_KEYS)
    known = r.table(d.get("known_failures"), "test.known_failures",
                    known_failures_keys())
    return SelfTestConfig(
        known_failures_python=_read_marks(
            r, known.get("python"), "test.known_failures.python", str.isidentifier,
            "a top-level module name such as chartpy (what `import` takes)"),
        known_failures_r=_read_marks(
            r, known.get("r"), "test.known_failures.r", lambda n: bool(R_NAME_RE.match(n)),
            "an R package name such as sf"),
    )


def _check_graph(r: _Reader, images: Mapping[str, ImageConfig]) -> None:
    roots = [i for i in images.values() if i.parent is None]
    if images and not roots:
        r.problem("images", "no image starts from [base] (every image has a 'from')")
    for image in images.values():
        if image.parent is not None and image.parent not in images:
            r.problem(f"images.{toml_key(image.name)}.from", f"unknown image '{image.parent}' "
                      f"(known: {', '.join(images)})")
    # Cycles: walk parents from each image.
    reported: set[str] = set()
    for start in images:
        path = [start]
        node = images[start].parent
        while node is not None and node in images:
            if node in path:
                cycle = path[path.index(node):] + [node]
                if not reported & set(cycle):
                    r.problem(f"images.{toml_key(node)}.from", "cycle: " + " -> ".join(cycle))
                    reported.update(cycle)
                break
            path.append(node)
            node = images[node].parent


def load_config(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    config_file: Path | None = None,
) -> Config:
    """Load, override and validate a lab project's configuration. Raises ConfigError."""
    config, problems = read_config(root, environ=environ, sets=sets, config_file=config_file)
    if problems:
        raise ConfigError(problems)
    return config


def read_config(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    config_file: Path | None = None,
) -> tuple[Config, list[Problem]]:
    """The configuration (invalid values replaced by defaults) and every problem found.

    Raises ConfigError only when the file cannot be read as TOML at all; otherwise the
    caller can go on to check the package lists and report everything at once.
    """
    environ = os.environ if environ is None else environ
    root = root.resolve()
    file = config_file or root / CONFIG_NAME
    shown = _shown(file, root)
    problems: list[Problem] = []
    raw: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    if file.exists():
        text = ""
        try:
            # utf-8-sig: a BOM (Windows editors write one) is not part of the TOML.
            text = file.read_text(encoding="utf-8-sig")
            raw = toml_loads(text)
            lines = key_lines(text)
        except UnicodeDecodeError:
            raise ConfigError(Problem(shown, "not valid UTF-8")) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(toml_problem(exc, shown, text)) from None
        except OSError as exc:
            raise ConfigError(Problem(shown, f"cannot read: {exc.strerror}")) from None
    elif config_file is not None:
        raise ConfigError(Problem(shown, "file not found"), hint="create one with `pyrlab init`")
    file_keys = frozenset(_dotted_keys(raw))
    if "images" not in raw:
        raw["images"] = copy.deepcopy(DEFAULT_IMAGES)  # overrides must not edit the defaults

    applied = apply_overrides(raw, environ, sets)
    problems += applied.problems
    sources, warnings, user_file = applied.sources, applied.warnings, applied.user_file

    r = _Reader(shown, problems, sources, lines)
    top = r.table(raw, "", TOP_KEYS)
    name_given = "name" in top
    project_name = r.get(top, "name", "", None, is_project_name)
    if project_name is None:
        project_name = name_from_folder(root)
    engine = r.get(top, "engine", "", "auto", one_of(*engine_choices()))
    prefix = r.get(top, "prefix", "", "", is_prefix)
    base = _read_base(r, top.get("base"))
    proxy = _read_proxy(r, top.get("proxy"))
    images_raw = top.get("images")
    images: dict[str, ImageConfig] = {}
    if not isinstance(images_raw, dict):
        r.problem("images", f"expected a table of images, got {toml_kind(images_raw)}")
    else:
        for name, image_raw in images_raw.items():
            images[name] = _read_image(r, name, image_raw)
    _check_graph(r, images)
    _check_ports(r, images)
    run = _read_run(r, top.get("run"), project_name)
    build = _read_build(r, top.get("build"))
    test = _read_test(r, top.get("test"))
    for image_name, _ in run.rc:
        if image_name not in images:
            r.problem(f"run.rc.{toml_key(image_name)}", f"unknown image {image_name!r}")
    config = Config(
        root=root,
        file=file if file.exists() else None,
        engine=engine,
        prefix=prefix,
        base=base,
        proxy=proxy,
        images=images,
        run=run,
        overrides=tuple(sorted(sources.items())),
        build=build,
        test=test,
        file_keys=file_keys,
        user_file=user_file,
        name=project_name,
        name_from_folder=not name_given,
        warnings=tuple(warnings),
        key_lines=lines,
    )
    return config, problems


def _check_ports(r: _Reader, images: Mapping[str, ImageConfig]) -> None:
    """The labs of a project can run side by side: no lab port is another lab's port (the
    other ports may be shared: `up` leaves a busy one unpublished and says so)."""
    taken: dict[int, tuple[str, str]] = {}  # port → (image, port name) of the labs so far
    for image in images.values():
        if image.lab_port is None:  # a base for others (or no lab: _read_image said so)
            continue
        for port_name, number in image.ports:
            other = taken.get(number)
            if other is not None and "lab" in (port_name, other[1]):
                what = "lab port" if other[1] == "lab" else f"'{other[1]}' port"
                r.problem(f"images.{toml_key(image.name)}.ports.{toml_key(port_name)}",
                          f"port {number} is also the {what} of {other[0]}: the two labs "
                          "could not run at the same time; give each lab its own ports")
        for port_name, number in image.ports:
            taken.setdefault(number, (image.name, port_name))


def _dotted_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key of `table` and of the tables in it, dotted as TOML writes them."""
    out = []
    for name, value in table.items():
        key = prefix + toml_key(name)
        out.append(key)
        if isinstance(value, dict):
            out += _dotted_keys(value, key + ".")
    return out


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)
