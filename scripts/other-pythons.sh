#!/usr/bin/env bash
# make test's run of the suite on the other Pythons, beside the main run:
#   scripts/other-pythons.sh "3.12 3.13" COMMAND...
# runs COMMAND (the full suite on Python 3.11) in the foreground and, at the same
# time, the suite on each listed Python in the background, each with its own moto
# server and redis-server; then reports them all and fails if any failed.
#
# To fit make test's time budget on a 2-core machine the other Pythons run every
# test except the process-level ones marked `slow` (kill -9, several workers, the
# wheel and SAM builds: they test the OS and the packaging, not the interpreter),
# with the Hypothesis profile `quick` (30 examples a property instead of 300).
# `make test-all` runs the whole suite on each, at full size.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
versions="$1"
shift
logs="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$logs"
}
trap cleanup EXIT
for version in $versions; do
  HYPOTHESIS_PROFILE=quick bash "$here/scripts/test-python.sh" "$version" -m "not slow" \
    >"$logs/$version.log" 2>&1 &
  pids+=("$!")
done
"$@"
status=$?
i=0
for version in $versions; do
  if wait "${pids[$i]}"; then
    tail -n 1 "$logs/$version.log"
  else
    echo "other-pythons: the tests failed on Python $version:" >&2
    cat "$logs/$version.log" >&2
    status=1
  fi
  i=$((i + 1))
done
pids=()
exit "$status"
