#!/bin/bash
# The rc script of pylab: sourced before JupyterLab starts, so its exports reach kernels.
RC_MARKER="rc ran as $(id -u):$(id -g) after ${ENV_MARKER:-nothing}"
export RC_MARKER
