"""What every test shares: no test reads the user's own pyrlab file.

pyrlab reads machine settings from ~/.config/pyrlab/config.toml (config/user.py); the suite
must not depend on what a user, or the README's first command, left there. An empty
PYRLAB_USER_CONFIG means "no user file"; a test that wants one points it at its own.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    del config
    os.environ["PYRLAB_USER_CONFIG"] = ""
