#!/usr/bin/env bash
# Type-check tests/typing/ against the built wheel, as a user's project would see it:
# a fresh venv with only the wheel, mypy and pydantic (a payload type in the files),
# and no access to src/.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv-typing"
dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
"$here/.venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$dist" "$here"
if [ ! -x "$venv/bin/mypy" ]; then
  "${PYTHON:-python3.11}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet mypy
fi
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$dist"/glasswork-*.whl
"$venv/bin/python" -m pip install --quiet "msgspec>=0.18.6" "typing-extensions>=4.8" "pydantic>=2"
work="$(mktemp -d)"
trap 'rm -rf "$dist" "$work"' EXIT
cp "$here"/tests/typing/*.py "$work/"
cd "$work"
# The usage file must pass.
"$venv/bin/mypy" --strict --no-incremental api_usage.py
# Each line marked "# E:" in the negative file must be reported, and nothing else.
"$venv/bin/python" "$here/tests/typing/check_errors.py" "$venv/bin/mypy" negative.py
echo "typing: usage file clean, expected errors reported"
