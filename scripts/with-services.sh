#!/usr/bin/env bash
# Start the services the tests need on 127.0.0.1, run a command, stop them.
# Services: moto's SQS server (real HTTP). Its URL is exported as
# GLASSWORK_TEST_SQS_ENDPOINT for tests/conftest.py.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.venv/bin"

port="$("$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log="$(mktemp -t moto.XXXXXX.log)"
"$bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if "$bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then echo "moto_server failed to start:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
export GLASSWORK_TEST_SQS_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
"$@"
