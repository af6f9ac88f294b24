#!/usr/bin/env bash
# make test's run of the suite on the other Pythons (scripts/other-pythons.sh 3.12 3.13).
#
# Both run at once, each with its own moto server and redis-server, after the full
# run on 3.11. To fit make test's time budget on a 2-core machine they run every test
# except the process-level ones marked `slow` (kill -9, several workers, the wheel and
# SAM builds: they test the OS and the packaging, not the interpreter), with the
# Hypothesis profile `quick` (30 examples a property instead of 300). `make test-all`
# runs the whole suite on each, at full size.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
pids=()
for version in "$@"; do
  HYPOTHESIS_PROFILE=quick bash "$here/scripts/test-python.sh" "$version" -m "not slow" \
    >"$logs/$version.log" 2>&1 &
  pids+=("$!")
done
status=0
i=0
for version in "$@"; do
  if wait "${pids[$i]}"; then
    tail -n 1 "$logs/$version.log"
  else
    echo "other-pythons: the tests failed on Python $version:" >&2
    cat "$logs/$version.log" >&2
    status=1
  fi
  i=$((i + 1))
done
exit "$status"
