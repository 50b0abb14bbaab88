#!/bin/bash
# Lab start script, run by tini as PID 1. Sources the env file, runs the image's rc script,
# then execs JupyterLab in the notebooks folder, or the user's replacement script instead;
# started by a JupyterHub, its single-user server.
# Everything else (user, ports, token, mounts) is decided on the host by `pyrlab up`;
# the files below are mounted read-only by it when the project has them.
set -eo pipefail

# Any UID may run the lab; without a passwd entry HOME would be "/".
if [[ -z ${HOME:-} || $HOME == / ]]; then
  export HOME=/home/notebook
fi
# Only an image built with run.sudo = true has a writable /etc/passwd: sudo needs a name
# for the lab's UID. No password ("*", not "x": PAM would look for a shadow entry).
if [[ -w /etc/passwd ]] && ! getent passwd "$(id -u)" >/dev/null; then
  echo "notebook-$(id -u):*:$(id -u):$(id -g):notebook:/home/notebook:/bin/bash" >>/etc/passwd
fi
if [[ -w /etc/group ]] && ! getent group "$(id -g)" >/dev/null; then
  echo "notebook-$(id -g):x:$(id -g):" >>/etc/group
fi

envfile=/etc/pyrlab/env
if [[ -f $envfile ]]; then
  set -a  # every assignment in the env file is exported to JupyterLab and its kernels
  # shellcheck source=/dev/null
  . "$envfile"
  set +a
fi

rc=/etc/pyrlab/rc.sh
if [[ -f $rc && -x $rc ]]; then
  # Sourced, so that what it exports reaches JupyterLab and its kernels.
  # shellcheck source=/dev/null
  . "$rc"
fi

# D-Tale on every interface (see dtale.ini), unless the user configures it.
if [[ -z ${DTALE_CONFIG:-} && ! -e $HOME/.config/dtale.ini ]]; then
  export DTALE_CONFIG=/opt/pyrlab/dtale.ini
fi

cd "${PYRLAB_NOTEBOOKS:-/home/notebook/work}"

userlab=/etc/pyrlab/userlab.sh
if [[ -f $userlab && -x $userlab ]]; then
  exec "$userlab" "$@"
fi

# A JupyterHub's spawner sets the hub's environment (JUPYTERHUB_API_TOKEN, _SERVICE_URL,
# _SERVICE_PREFIX…): jupyterhub-singleuser takes its port, base URL and login from it
# (and from a --port= the spawner may pass), the hub's token rules instead of pyrlab's.
if [[ -n ${JUPYTERHUB_API_TOKEN:-} ]]; then
  exec jupyterhub-singleuser "$@"
fi

# Extensions come as prebuilt packages: no `jupyter lab build` here.
exec jupyter lab "$@"
