#!/bin/bash
# pylab's rc script: sourced by start.sh before the server starts.
export HUB_RC_SCRIPT=ran
