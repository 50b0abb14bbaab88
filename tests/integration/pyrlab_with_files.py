"""`pyrlab` with the tests' files ecosystem registered: python pyrlab_with_files.py ARGS…
(the way a plug-in would be registered: one call, nothing else of pyrlab changed)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from files_ecosystem import FILES

from pyrlab import ecosystems
from pyrlab.cli import main

ecosystems.register(FILES)
sys.exit(main())
