#!/opt/venv/bin/python -I
"""`tensorboard` as a lab runs it (/opt/pyrlab/bin/tensorboard, first on PATH: a terminal,
`!tensorboard` and `%tensorboard` all start this): on every interface and on the image's
tensorboard port, so that the port `pyrlab up` published reaches it. TensorBoard alone
listens on localhost, which no published port reaches. A command line that chooses
(--host, --bind_all, --port) is passed on as it is."""

import os
import shutil
import sys

here = os.path.dirname(os.path.abspath(__file__))
others = [d for d in os.environ.get("PATH", "").split(os.pathsep)
          if d and os.path.abspath(d) != here]
real = shutil.which("tensorboard", path=os.pathsep.join(others))
if real is None:
    sys.exit("tensorboard is not installed in this lab: add it to the image's requirements")
args = sys.argv[1:]
given = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
defaults = [] if given & {"--host", "--bind_all"} else ["--bind_all"]
port = os.environ.get("PYRLAB_PORT_TENSORBOARD", "")
if port and "--port" not in given:
    defaults += ["--port", port]
os.execv(real, [real, *defaults, *args])
