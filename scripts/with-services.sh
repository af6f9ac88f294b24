#!/usr/bin/env bash
# Start the services the tests need on 127.0.0.1, run a command, stop them.
# Services: moto's SQS server (real HTTP) and a redis-server in a temporary
# directory, each on a free port. Their addresses are exported as
# GLASSWORK_TEST_SQS_ENDPOINT and GLASSWORK_TEST_REDIS_URL for tests/conftest.py.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.venv/bin"

free_port() { "$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

port="$(free_port)"
log="$(mktemp -t moto.XXXXXX.log)"
redis_dir="$(mktemp -d -t glasswork-redis.XXXXXX)"
"$bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
redis_pid=""
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$log" "$redis_dir"
}
trap cleanup EXIT INT TERM

redis_server="$(command -v redis-server || true)"
if [ -z "$redis_server" ]; then
  echo "with-services: redis-server not found; run 'make redis-server' (installs Debian's redis-server)" >&2
  exit 1
fi
redis_port="$(free_port)"
# No persistence, loopback only, in a directory of its own that is removed afterwards.
"$redis_server" --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save "" --appendonly no \
  --daemonize no --logfile "$redis_dir/redis.log" &
redis_pid=$!

for _ in $(seq 1 100); do
  if "$bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then echo "moto_server failed to start:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
for _ in $(seq 1 100); do
  if "$bin/python" -c "import socket; s=socket.create_connection(('127.0.0.1', $redis_port), 1); s.sendall(b'PING\r\n'); assert s.recv(16).startswith(b'+PONG')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$redis_pid" 2>/dev/null; then echo "redis-server failed to start:" >&2; cat "$redis_dir/redis.log" >&2; exit 1; fi
  sleep 0.05
done
export GLASSWORK_TEST_SQS_ENDPOINT="http://127.0.0.1:$port"
export GLASSWORK_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
"$@"
