#!/usr/bin/env bash
# Run the test suite on another Python: scripts/test-python.sh 3.12 [PYTEST ARGS...]
# (make test-all: the whole suite; make test: a lighter run, see the Makefile).
# TEST_PYTHON_INSTALL_ONLY=1 makes the venv and stops (make other-venvs).
# The venv is .venv-3.12 (made, then remade when pyproject.toml changes), with the
# package installed editable and its dev group. The interpreter is $PYTHON, else
# python3.12 from PATH, else pyenv's newest 3.12. moto's server and redis-server run
# from .venv as for make test (scripts/with-services.sh), so .venv must exist.
set -euo pipefail
version="$1"
shift
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv-$version"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if "python$version" -c "" >/dev/null 2>&1; then
    python="python$version"
  elif command -v pyenv >/dev/null 2>&1 \
    && found="$(pyenv versions --bare | grep -E "^${version//./\\.}\.[0-9]+$" | sort -V | tail -n 1)" \
    && [ -n "$found" ]; then
    python="$(pyenv prefix "$found")/bin/python$version"
  else
    echo "test-python: no python$version on PATH or in pyenv; set PYTHON=/path/to/python$version," \
      "or leave it out: make test OTHER_PYTHONS=" >&2
    exit 2
  fi
fi
cd "$here"
stamp="$venv/.installed-stamp"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade "pip>=25.1"
  "$venv/bin/python" -m pip install --quiet -e . --group dev
  touch "$stamp"
fi
if [ -n "${TEST_PYTHON_INSTALL_ONLY:-}" ]; then
  echo "test-python: $("$venv/bin/python" -V) in $venv"
  exit 0
fi
start=$SECONDS
bash scripts/with-services.sh "$venv/bin/pytest" -q -p no:cacheprovider "$@"
echo "test-python: $("$venv/bin/python" -V) passed in $((SECONDS - start)) s"
