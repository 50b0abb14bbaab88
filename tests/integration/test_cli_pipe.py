"""`pyrlab check | head -1` in a real bash, through a real pipe: pyrlab ends without a
traceback or a message, and where its write finds no reader, with exit 141 (as git and cat
end on SIGPIPE). No engine needed.

Whether pyrlab's one write of `check`'s text meets a reader that has gone depends on the
scheduling and on the kernel (some accept a whole large write that head never reads). So
the test also runs the case that always meets it: head has its line (from `echo`) and has
gone before pyrlab writes, which is what `| head -1` does to the rest of a long output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PYRLAB = Path(sys.executable).parent / "pyrlab"
STATUS = 'echo "exit: ${PIPESTATUS[0]}" >&2'


def shell(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYRLAB_")},
           "PYRLAB_USER_CONFIG": "", "PYRLAB": str(PYRLAB), "HOME": str(home)}
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          check=False, env=env, timeout=300)


def test_check_into_head_ends_without_a_traceback(tmp_path: Path) -> None:
    done = shell('"$PYRLAB" init lab --base debian --no-host-ca', tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr
    lab = tmp_path / "lab"

    done = shell(f'"$PYRLAB" check | head -1; {STATUS}', lab, tmp_path)
    assert done.stdout == f"ok: {lab}\n"
    assert done.stderr in ("exit: 0\n", "exit: 141\n")  # nothing but the shell's line

    # head has gone before pyrlab writes: the write meets no reader, every time.
    done = shell(f'{{ echo first; sleep 1; "$PYRLAB" check; {STATUS}; }} | head -1', lab, tmp_path)
    assert done.stdout == "first\n"
    assert done.stderr == "exit: 141\n"
    # The same from a subfolder (the project found above: a note on stderr first), and
    # for `init`, whose reader never reads (`init | true`).
    (lab / "notebooks").mkdir()
    done = shell(f'{{ echo first; sleep 1; "$PYRLAB" check; {STATUS}; }} | head -1',
                 lab / "notebooks", tmp_path)
    assert (done.stdout, done.stderr) == ("first\n", (f"pyrlab: using {lab}/pyrlab.toml\n"
                                                     "exit: 141\n"))
    done = shell(f'{{ sleep 1; "$PYRLAB" init other; {STATUS}; }} | true', tmp_path, tmp_path)
    assert done.stderr == "exit: 141\n"
    assert (tmp_path / "other" / "pyrlab.toml").is_file()
