# Rendered by pyrlab <version> for the image 'rlab-base'. Do not edit: change
# pyrlab.toml or the package lists and run `pyrlab render` / `pyrlab build` again.
# Package lists are not in this file: they are in pyrlab/ beside it, bind-mounted
# into the steps that install them and read by the installer scripts.
FROM lab/pyrlab-base:latest

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER root

# Debian packages.
RUN --mount=type=cache,id=pyrlab-apt-archives,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=pyrlab-apt-lists,target=/var/lib/apt/lists,sharing=locked \
    --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin \
    --mount=type=bind,source=pyrlab/net/apt,target=/run/pyrlab/net \
    --mount=type=bind,source=pyrlab/apt,target=/run/pyrlab/apt \
    --mount=type=bind,source=pyrlab/pins/apt,target=/run/pyrlab/pins \
    --mount=type=secret,id=pyrlab-apt-proxy.conf,target=/run/pyrlab/secret/apt-proxy.conf \
    --mount=type=secret,id=pyrlab-proxy.env,target=/run/pyrlab/secret/proxy.env \
    /run/pyrlab/bin/apt-install

# R: the configured repository for every R session, then the R packages (Debian binaries
# through apt, the rest from the CRAN-like repository), then IRkernel registered.
RUN --mount=type=cache,id=pyrlab-apt-archives,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=pyrlab-apt-lists,target=/var/lib/apt/lists,sharing=locked \
    --mount=type=cache,id=pyrlab-r,target=/var/cache/pyrlab/r \
    --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin \
    --mount=type=bind,source=pyrlab/net/r,target=/run/pyrlab/net \
    --mount=type=bind,source=pyrlab/r,target=/run/pyrlab/r \
    --mount=type=bind,source=pyrlab/pins/r,target=/run/pyrlab/pins \
    --mount=type=secret,id=pyrlab-apt-proxy.conf,target=/run/pyrlab/secret/apt-proxy.conf \
    --mount=type=secret,id=pyrlab-repos.txt,target=/run/pyrlab/secret/repos.txt \
    --mount=type=secret,id=pyrlab-proxy.env,target=/run/pyrlab/secret/proxy.env \
    /run/pyrlab/bin/r-install

# What the image holds, recorded in /opt/pyrlab/manifest.json for `pyrlab inspect`, `lock`,
# `diff` and `sbom` (read without starting the image). The base image's ID is known only
# when the build runs: a build argument, used by this step alone.
ARG PYRLAB_BASE_ID=""
RUN --mount=type=bind,source=pyrlab/inventory,target=/run/pyrlab/inventory \
    /opt/venv/bin/python -I /run/pyrlab/inventory/inventory.py /opt/pyrlab/manifest.json \
        /run/pyrlab/inventory/meta.json "$PYRLAB_BASE_ID"

LABEL org.pyrlab.image="rlab-base" \
      org.pyrlab.parent="pyrlab-base" \
      org.pyrlab.version="<version>" \
      org.pyrlab.input-hash="<input-hash>" \
      org.pyrlab.ports="" \
      org.pyrlab.cuda="false" \
      org.pyrlab.delta-depth="0"
USER notebook
WORKDIR /home/notebook
