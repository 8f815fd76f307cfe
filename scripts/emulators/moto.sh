#!/usr/bin/env bash
# Starts moto's S3 server on a free 127.0.0.1 port for the s3 (and gcs-write) tests.
# Usage: scripts/emulators/moto.sh START_DIR
# Writes START_DIR/moto.pid and START_DIR/moto.log; prints only `export ...` lines on stdout.
set -euo pipefail

start_dir=${1:?usage: moto.sh START_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${FLOWCTL_VENV:-$root/.venv-emu}
mkdir -p "$start_dir"

if [[ ! -x $venv/bin/moto_server ]]; then
    echo "moto.sh: $venv/bin/moto_server not found; run scripts/setup-python.sh" >&2
    exit 1
fi

# Ask the kernel for a free port (bind to 0), then hand it to moto.
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$start_dir/moto.log" 2>&1 &
pid=$!
echo "$pid" >"$start_dir/moto.pid"

for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
        echo "export FLOWCTL_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "moto.sh: moto_server exited; log:" >&2
        tail -n 20 "$start_dir/moto.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "moto.sh: moto_server on port $port not ready after 30 s; log in $start_dir/moto.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
