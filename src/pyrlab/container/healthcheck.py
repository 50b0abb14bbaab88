"""Container HEALTHCHECK: healthy when JupyterLab's status API answers 200."""

import http.client
import os
import sys
import urllib.request
from urllib.parse import urlsplit

port = os.environ.get("PYRLAB_LAB_PORT", "8888")
token = os.environ.get("JUPYTER_TOKEN", "")
prefix = "/"
# Started by a JupyterHub (see start.sh): its port and base URL, its token for the server.
hub_url = os.environ.get("JUPYTERHUB_SERVICE_URL", "")
if os.environ.get("JUPYTERHUB_API_TOKEN") and hub_url:
    port = str(urlsplit(hub_url).port or 80)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    token = os.environ["JUPYTERHUB_API_TOKEN"]
request = urllib.request.Request(
    f"http://127.0.0.1:{port}{prefix.rstrip('/')}/api/status",
    headers={"Authorization": f"token {token}"} if token else {},
)
try:
    with urllib.request.urlopen(request, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except (OSError, http.client.HTTPException, ValueError) as exc:
    print(f"unhealthy: {exc}")  # shown by `docker inspect`
    sys.exit(1)
