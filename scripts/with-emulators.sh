#!/usr/bin/env bash
# Start every emulator the tests need (moto for S3, fake-gcs-server for GCS reads, the
# Snowflake SQL API v2 adapter over fakesnow), export their addresses, run the given
# command, and stop the emulators by PID on exit.
#
#   scripts/with-emulators.sh cargo test --workspace
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flowctl-emu.XXXXXX")"
cleanup() {
  for pidfile in "$RUN_DIR"/*.pid; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
  done
  sleep 0.2
  for pidfile in "$RUN_DIR"/*.pid; do
    [[ -f "$pidfile" ]] || continue
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT INT TERM
"$ROOT/scripts/setup-python.sh"
# Order matters: the Snowflake adapter reads FLOWCTL_TEST_S3_ENDPOINT to COPY from moto.
for emu in moto fake_gcs snowflake; do
  script="$ROOT/scripts/emulators/$emu.sh"
  if [[ ! -x "$script" ]]; then
    echo "with-emulators: $script missing" >&2; exit 1
  fi
  exports="$("$script" "$RUN_DIR")" || { echo "with-emulators: $emu failed to start" >&2; exit 1; }
  eval "$exports"
  echo "with-emulators: $emu up (${exports//$'\n'/; })" >&2
done
export FLOWCTL_REQUIRE_EMULATORS=1
"$@"
