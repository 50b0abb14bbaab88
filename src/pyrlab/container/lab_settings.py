"""Merge pyrlab's JupyterLab setting defaults (argv[1], rendered on the host) into the
environment's share/jupyter/lab/settings/overrides.json. Run at build time after the
packages: one of them may ship that file, and its other settings stay."""

import json
import sys
import sysconfig
from pathlib import Path

ours = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
target = Path(sysconfig.get_path("data"), "share", "jupyter", "lab", "settings", "overrides.json")
merged = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
for plugin, settings in ours.items():
    merged.setdefault(plugin, {}).update(settings)
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
