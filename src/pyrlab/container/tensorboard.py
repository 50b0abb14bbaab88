#!/usr/bin/env python3
"""`tensorboard` as a lab runs it (/opt/pyrlab/bin/tensorboard, first on PATH: a terminal,
`!tensorboard` and `%tensorboard` all start this): on every interface and on the image's
tensorboard port, so that the port `pyrlab up` published reaches it. TensorBoard alone
listens on localhost, which no published port reaches. A command line that chooses
(--host, --bind_all, --port) is passed on as it is.

The next `tensorboard` on PATH runs in this process (the `python3` first on PATH, which is
its environment's) so that it can still name itself by the command line it was given:
`%tensorboard` finds the server it started by that name (tensorboard.manager.cache_key).
"""

import os
import runpy
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

try:
    from tensorboard import manager  # type: ignore[import-not-found]
except ImportError:  # the script below says what is wrong
    pass
else:
    named = manager.cache_key

    def cache_key(working_directory: str, arguments: list[str],
                  configure_kwargs: dict[str, object]) -> str:
        if list(arguments[: len(defaults)]) == defaults:
            arguments = arguments[len(defaults):]
        return str(named(working_directory=working_directory, arguments=arguments,
                         configure_kwargs=configure_kwargs))

    manager.cache_key = cache_key

sys.argv = [real, *defaults, *args]
runpy.run_path(real, run_name="__main__")
