# Rendered by pyrlab <version> for the image 'rlab'. Do not edit: change
# pyrlab.toml or the package lists and run `pyrlab render` / `pyrlab build` again.
# Package lists are not in this file: they are in pyrlab/ beside it, bind-mounted
# into the steps that install them and read by the installer scripts.

# Build-only tools (binutils' strip, for [base] slim) in a stage of their own on the base
# image: the Python step bind-mounts this stage; nothing of it goes into the image.
FROM pyrlab-debian:trixie AS pyrlab-tools
ENV DEBIAN_FRONTEND=noninteractive
RUN --mount=type=cache,id=pyrlab-apt-archives,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=pyrlab-apt-lists,target=/var/lib/apt/lists,sharing=locked \
    --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin \
    --mount=type=bind,source=pyrlab/net/apt,target=/run/pyrlab/net \
    --mount=type=bind,source=pyrlab/tools,target=/run/pyrlab/apt \
    --mount=type=secret,id=pyrlab-apt-proxy.conf,target=/run/pyrlab/secret/apt-proxy.conf \
    --mount=type=secret,id=pyrlab-proxy.env,target=/run/pyrlab/secret/proxy.env \
    /run/pyrlab/bin/apt-install

FROM full/rlab-base:latest

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER root

# Python packages, installed with uv (a build tool, not kept) into /opt/venv and compiled
# to bytecode.
RUN --mount=type=cache,id=pyrlab-uv,target=/var/cache/pyrlab/uv \
    --mount=type=cache,id=pyrlab-pyc,target=/var/cache/pyrlab/pyc \
    --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin \
    --mount=type=bind,source=pyrlab/net/python,target=/run/pyrlab/net \
    --mount=type=bind,source=pyrlab/python,target=/run/pyrlab/python \
    --mount=type=bind,source=pyrlab/pins/python,target=/run/pyrlab/pins \
    --mount=type=secret,id=pyrlab-uv.toml,target=/run/pyrlab/secret/uv.toml \
    --mount=type=secret,id=pyrlab-pip.conf,target=/run/pyrlab/secret/pip.conf \
    --mount=type=secret,id=pyrlab-proxy.env,target=/run/pyrlab/secret/proxy.env \
    --mount=type=bind,from=pyrlab-tools,source=/,target=/run/pyrlab/tools \
    /run/pyrlab/bin/uv-install

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

# What the lab's user installs at run time goes to the mounted home, per project and image
# (PROJECT/IMAGE, see Config.layer_key): Python into
# a layer on /opt/venv (user_env.py), R packages into R's user library (%v: R's x.y).
ENV PYRLAB_LAB_PORT=9999 \
    PYRLAB_IMAGE=full/rlab \
    R_LIBS_USER=~/.local/share/pyrlab/full/rlab/R/%v
EXPOSE 9999

# What the image holds, recorded in /opt/pyrlab/manifest.json for `pyrlab inspect`, `lock`,
# `diff` and `sbom` (read without starting the image). The base image's ID is known only
# when the build runs: a build argument, used by this step alone.
ARG PYRLAB_BASE_ID=""
RUN --mount=type=bind,source=pyrlab/inventory,target=/run/pyrlab/inventory \
    /opt/venv/bin/python -I /run/pyrlab/inventory/inventory.py /opt/pyrlab/manifest.json \
        /run/pyrlab/inventory/meta.json "$PYRLAB_BASE_ID"

LABEL org.pyrlab.image="rlab" \
      org.pyrlab.parent="rlab-base" \
      org.pyrlab.version="<version>" \
      org.pyrlab.input-hash="<input-hash>" \
      org.pyrlab.ports="lab=9999" \
      org.pyrlab.cuda="true" \
      org.pyrlab.delta-depth="0"
USER notebook
WORKDIR /home/notebook
