"""Network settings of a build: the pyrlab/net/ files each install step reads, proxy
variables, and the build secrets that carry what has credentials.

Build-time network settings sit in one folder per install step (net/<step>/: each
ecosystem's own files, see its Context part, plus `timeout` and `retries`), so that a
change for one (a new pip index) does not invalidate the cached steps of another (apt).
Each step mounts its own folder at /run/pyrlab/net. In the context, URLs are masked (they
feed the input hash and may be shown); the real files are build secrets.
"""

from __future__ import annotations

import dataclasses

from pyrlab import ecosystems
from pyrlab.config.model import ProxyConfig
from pyrlab.config.project import Project
from pyrlab.credentials import mask_url
from pyrlab.ecosystems.base import Context, lines

# Build secrets: the files of net/ (and what else an ecosystem names) whose URLs carry
# credentials, as they really are, plus proxy.env (HTTP(S)_PROXY, NO_PROXY). Each is
# mounted, when the build has it, at SECRET_DIR/NAME in the steps that read it; the context
# holds them masked (see net-env, which the installer scripts read them through).
SECRET_DIR = "/run/pyrlab/secret"
PROXY_ENV = "proxy.env"


def secret_id(name: str) -> str:
    """The build secret's id for the secret file `name` (see `step_secrets`)."""
    return f"pyrlab-{name}"


def step_secrets(context: Context) -> tuple[str, ...]:
    """The build secrets an ecosystem's install step reads."""
    return (*context.secrets, PROXY_ENV)


def net_files(project: Project, *, reveal: bool = False) -> dict[str, bytes]:
    """Every install step's network settings, by path under pyrlab/net/: URLs masked (the
    context, the input hash) unless `reveal` (the build secrets)."""
    proxy = _shown_proxy(project, reveal)
    patience = {"timeout": lines([str(proxy.timeout)]), "retries": lines([str(proxy.retries)])}
    files: dict[str, bytes] = {}
    for eco in ecosystems.registered():
        if not eco.context.script:
            continue
        own = {**patience, **eco.context.net_files(project, proxy)}
        files.update({f"{eco.step}/{name}": content for name, content in own.items()})
    return files


def _shown_proxy(project: Project, reveal: bool) -> ProxyConfig:
    proxy = project.config.proxy
    if reveal:
        return proxy

    def shown(url: str | None) -> str | None:
        return mask_url(url) if url else url

    return dataclasses.replace(
        proxy, apt=shown(proxy.apt), pip_index=shown(proxy.pip_index),
        pip_extra_index=tuple(mask_url(u) for u in proxy.pip_extra_index),
        cran=shown(proxy.cran), http_proxy=shown(proxy.http_proxy),
        https_proxy=shown(proxy.https_proxy))


def proxy_env(proxy: ProxyConfig) -> dict[str, str]:
    """HTTP(S)_PROXY / NO_PROXY for the installers, in both spellings tools look for."""
    env = {}
    for key, value in (("HTTP_PROXY", proxy.http_proxy), ("HTTPS_PROXY", proxy.https_proxy),
                       ("NO_PROXY", proxy.no_proxy)):
        if value:
            env[key] = value
            env[key.lower()] = value
    return env


def build_secrets(project: Project) -> dict[str, bytes]:
    """The secret files a build of this project passes as build secrets (name -> content):
    net/ files whose real content differs from the context's masked one, the ecosystems'
    other secret files, and proxy.env. The same for every image of the project; nothing of
    them is in the context, the input hash or the Dockerfile."""
    contexts = [eco.context for eco in ecosystems.registered()]
    names = {name for context in contexts for name in step_secrets(context)}
    secrets: dict[str, bytes] = {}
    masked, real = net_files(project), net_files(project, reveal=True)
    for path, content in real.items():
        name = path.split("/", 1)[1]
        if content != masked[path]:
            assert name in names, f"{path} has credentials but is no build secret"
            secrets[name] = content
    for context in contexts:
        secrets.update(context.secret_files(project.config.proxy))
    env = proxy_env(project.config.proxy)
    if env:
        secrets[PROXY_ENV] = lines([f"{k}={v}" for k, v in sorted(env.items())])
    return secrets
