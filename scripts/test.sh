#!/usr/bin/env bash
# Installs Parley with its test dependencies into .venv and runs the whole test suite.
# Arguments go to pytest (for example -k sse).
PARLEY_EXTRAS="[test]"
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/python -m pytest "$@"
