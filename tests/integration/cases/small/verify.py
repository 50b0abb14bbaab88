"""Run inside a built image as `python - MODULE… < verify.py`: the Python on PATH is the
lab's virtual environment, and every module named imports from it."""

import importlib
import sys

assert sys.prefix == "/opt/venv", f"python on PATH is not the lab's venv: {sys.prefix}"
failed = []
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        failed.append(f"{name}: {exc}")
        continue
    print(name, getattr(module, "__version__", "-"), module.__file__)
if failed:
    sys.exit("cannot import: " + "; ".join(failed))
