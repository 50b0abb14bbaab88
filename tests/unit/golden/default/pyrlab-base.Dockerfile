# Rendered by pyrlab <version> for the image 'pyrlab-base'. Do not edit: change
# pyrlab.toml or the package lists and run `pyrlab render` / `pyrlab build` again.
# Package lists are not in this file: they are in pyrlab/ beside it, bind-mounted
# into the steps that install them and read by the installer scripts.
FROM pyrlab-debian:trixie

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER root

ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/pyrlab/bin:/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    UV_LINK_MODE=copy \
    UV_PYTHON=/opt/venv/bin/python \
    UV_CACHE_DIR=/var/cache/pyrlab/uv \
    PYRLAB_PYC_CACHE=/var/cache/pyrlab/pyc

# Debian packages (pyrlab's own, then the lists).
RUN --mount=type=cache,id=pyrlab-apt-archives,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=pyrlab-apt-lists,target=/var/lib/apt/lists,sharing=locked \
    --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin \
    --mount=type=bind,source=pyrlab/net/apt,target=/run/pyrlab/net \
    --mount=type=bind,source=pyrlab/apt,target=/run/pyrlab/apt \
    --mount=type=bind,source=pyrlab/pins/apt,target=/run/pyrlab/pins \
    --mount=type=secret,id=pyrlab-apt-proxy.conf,target=/run/pyrlab/secret/apt-proxy.conf \
    --mount=type=secret,id=pyrlab-proxy.env,target=/run/pyrlab/secret/proxy.env \
    /run/pyrlab/bin/apt-install

# The notebook user and the Python virtual environment.
RUN --mount=type=bind,source=pyrlab/bin,target=/run/pyrlab/bin \
    --mount=type=bind,source=pyrlab/base,target=/run/pyrlab/base \
    /run/pyrlab/bin/setup-base

# The container contract: tini as PID 1, a short start script, a health check; the
# run-time installs' layer (user_env.py); services started in the lab (TensorBoard, D-Tale)
# listen on every interface, as published ports need.
COPY pyrlab/runtime/start.sh pyrlab/runtime/healthcheck.py pyrlab/runtime/user_env.py \
     pyrlab/runtime/dtale.ini /opt/pyrlab/
COPY pyrlab/runtime/tensorboard.py /opt/pyrlab/bin/tensorboard
COPY pyrlab/runtime/jupyter_server_config.py /etc/jupyter/
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/opt/pyrlab/start.sh"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "/opt/pyrlab/healthcheck.py"]

# What the image holds, recorded in /opt/pyrlab/manifest.json for `pyrlab inspect`, `lock`,
# `diff` and `sbom` (read without starting the image). The base image's ID is known only
# when the build runs: a build argument, used by this step alone.
ARG PYRLAB_BASE_ID=""
RUN --mount=type=bind,source=pyrlab/inventory,target=/run/pyrlab/inventory \
    /opt/venv/bin/python -I /run/pyrlab/inventory/inventory.py /opt/pyrlab/manifest.json \
        /run/pyrlab/inventory/meta.json "$PYRLAB_BASE_ID"

LABEL org.pyrlab.image="pyrlab-base" \
      org.pyrlab.parent="" \
      org.pyrlab.version="<version>" \
      org.pyrlab.input-hash="<input-hash>" \
      org.pyrlab.ports="" \
      org.pyrlab.cuda="false" \
      org.pyrlab.delta-depth="0"
USER notebook
WORKDIR /home/notebook
