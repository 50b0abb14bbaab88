# Rendered by pyrlab <version> for the image 'pylab'. Do not edit: change
# pyrlab.toml or the package lists and run `pyrlab render` / `pyrlab build` again.
# Package lists are not in this file: they are in pyrlab/ beside it, bind-mounted
# into the steps that install them and read by the installer scripts.
FROM pyrlab-base:latest

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER root

# Python packages, installed with uv (a build tool, not kept) into /opt/venv and compiled
# to bytecode.
RUN --mount=type=cache,id=pyrlab-uv,target=/var/cache/pyrlab/uv \
    --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin \
    --mount=type=bind,source=pyrlab/net/python,target=/run/pyrlab/net \
    --mount=type=bind,source=pyrlab/python,target=/run/pyrlab/python \
    --mount=type=bind,source=pyrlab/pins/python,target=/run/pyrlab/pins \
    /run/pyrlab/bin/uv-install

ENV PYRLAB_LAB_PORT=8888
EXPOSE 6006 8888 40000

# What the image holds, recorded in /opt/pyrlab/manifest.json for `pyrlab inspect`, `lock`,
# `diff` and `sbom` (read without starting the image). The base image's ID is known only
# when the build runs: a build argument, used by this step alone.
ARG PYRLAB_BASE_ID=""
RUN --mount=type=bind,source=pyrlab/inventory,target=/run/pyrlab/inventory \
    /opt/venv/bin/python -I /run/pyrlab/inventory/inventory.py /opt/pyrlab/manifest.json \
        /run/pyrlab/inventory/meta.json "$PYRLAB_BASE_ID"

LABEL org.pyrlab.image="pylab" \
      org.pyrlab.parent="pyrlab-base" \
      org.pyrlab.version="<version>" \
      org.pyrlab.input-hash="<input-hash>" \
      org.pyrlab.ports="lab=8888,dtale=40000,tensorboard=6006" \
      org.pyrlab.cuda="false" \
      org.pyrlab.delta-depth="0"
USER notebook
WORKDIR /home/notebook
