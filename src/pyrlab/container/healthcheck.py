"""Container HEALTHCHECK: healthy when JupyterLab's status API answers 200."""

import http.client
import os
import sys
import urllib.request

port = os.environ.get("PYRLAB_LAB_PORT", "8888")
token = os.environ.get("JUPYTER_TOKEN", "")
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/api/status",
    headers={"Authorization": f"token {token}"} if token else {},
)
try:
    with urllib.request.urlopen(request, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except (OSError, http.client.HTTPException, ValueError) as exc:
    print(f"unhealthy: {exc}")  # shown by `docker inspect`
    sys.exit(1)
