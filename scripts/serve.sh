#!/usr/bin/env bash
# Installs Parley into .venv and runs the server with its embedded model and the demo application.
# Arguments go to `parley serve` (for example --port 9000).
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/parley serve "$@"
