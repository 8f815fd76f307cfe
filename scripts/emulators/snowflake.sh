#!/usr/bin/env bash
# Start the Snowflake SQL API v2 adapter over fakesnow (scripts/emulators/snowflake_sqlapi.py)
# on a free 127.0.0.1 port. Usage: snowflake.sh START_DIR
# Start moto first and export FLOWCTL_TEST_S3_ENDPOINT so COPY from s3:// stages works.
# Prints `export FLOWCTL_TEST_SNOWFLAKE_URL=...` on stdout; PID in START_DIR/snowflake.pid.
set -euo pipefail
start_dir=${1:?usage: snowflake.sh START_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
py="${FLOWCTL_VENV:-$root/.venv-emu}/bin/python"
[ -x "$py" ] || { echo "snowflake.sh: $py missing; run scripts/setup-python.sh" >&2; exit 1; }
mkdir -p "$start_dir"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# From START_DIR: fakesnow's DuckDB spills big loads to ./.tmp, which then goes away with
# the emulators' run dir instead of landing in the caller's directory.
(cd "$start_dir" && exec "$py" "$root/scripts/emulators/snowflake_sqlapi.py" --port "$port") \
  >"$start_dir/snowflake.log" 2>&1 &
pid=$!
echo "$pid" >"$start_dir/snowflake.pid"
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$port/flowctl-test/stats" >/dev/null 2>&1; then
    echo "export FLOWCTL_TEST_SNOWFLAKE_URL=http://127.0.0.1:$port"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { echo "snowflake.sh: adapter exited; see $start_dir/snowflake.log" >&2; tail -20 "$start_dir/snowflake.log" >&2; exit 1; }
  sleep 0.1
done
echo "snowflake.sh: adapter not ready on port $port; see $start_dir/snowflake.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
