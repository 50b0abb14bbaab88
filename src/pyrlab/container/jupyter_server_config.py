"""Jupyter Server settings for pyrlab labs (installed as /etc/jupyter/).

The token comes from JUPYTER_TOKEN, which `pyrlab up` sets from a 0600 file on the host.
"""

import os
import sys

c = get_config()  # type: ignore[name-defined]  # noqa: F821

c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = int(os.environ.get("PYRLAB_LAB_PORT", "8888"))
c.ServerApp.open_browser = False
c.ServerApp.root_dir = os.environ.get("PYRLAB_NOTEBOOKS", "/home/notebook/work")
# A lab with a token (or a hub's login) needs no Host check: the token is what guards it,
# and requests through a published port may name this machine by any of its names.
c.ServerApp.allow_remote_access = True
# A lab without a token is refused unless the host side explicitly allowed it (pyrlab
# allows that only on a loopback address); JupyterHub's single-user servers authenticate
# through the hub instead.
hub = "JUPYTERHUB_API_TOKEN" in os.environ
if not hub and not os.environ.get("JUPYTER_TOKEN"):
    if os.environ.get("PYRLAB_ALLOW_NO_TOKEN") != "1":
        raise SystemExit("pyrlab: JUPYTER_TOKEN is not set; "
                         "refusing to start a lab without a token")
    # An empty JUPYTER_TOKEN would otherwise make Jupyter Server generate a random one.
    c.IdentityProvider.token = ""
    # Nothing but the Host header tells a browser's own request from a web page's that
    # reached the port through DNS rebinding (rebind.example resolving to 127.0.0.1): only
    # a loopback address or `localhost` may be asked for (403 otherwise).
    c.ServerApp.allow_remote_access = False
    c.ServerApp.local_hostnames = ["localhost"]

# Terminals run bash as an ordinary interactive shell. Outside a TTY Jupyter would start a
# login shell, and Debian's /etc/profile replaces PATH: no /opt/venv, no run-time layer.
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash"]}

# What the user installs at run time (pip, %pip, lab extensions) goes to a layer in the
# mounted home, per image (/opt/pyrlab/user_env.py). The server keeps running on the image's
# environment alone; the kernels and terminals it starts get the layer.
if os.path.isfile("/opt/pyrlab/user_env.py"):
    import importlib.util

    _spec = importlib.util.spec_from_file_location("pyrlab_user_env", "/opt/pyrlab/user_env.py")
    assert _spec is not None and _spec.loader is not None
    _user_env = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_user_env)
    print(_user_env.configure(os.environ), file=sys.stderr)
