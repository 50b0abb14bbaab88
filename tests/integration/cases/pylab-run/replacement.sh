#!/bin/bash
# A user's replacement for the default start: leaves a mark, then starts JupyterLab.
set -euo pipefail
export USERLAB_MARKER="replaced in $PWD"
exec jupyter lab "$@"
