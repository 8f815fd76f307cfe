#!/usr/bin/env bash
# The quickstart: GitHub -> local staging folder -> ./warehouse.duckdb, no cloud account.
#
#   scripts/quickstart.sh            # real api.github.com (GITHUB_TOKEN used when set)
#   scripts/quickstart.sh --offline  # a local stand-in for the GitHub API (no internet)
#
# Without --offline, falls back to the stand-in when api.github.com cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-libduckdb.sh >/dev/null
echo "building flowctl (release; the first build takes a few minutes)..." >&2
cargo build --release --quiet -p flowctl -p flowctl-github-standin
BIN="${CARGO_TARGET_DIR:-target}/release"
offline=0
if [[ "${1:-}" == "--offline" ]]; then
  offline=1
elif [[ -z "${GITHUB_API_URL:-}" ]] && ! curl -fs --max-time 5 -o /dev/null https://api.github.com/rate_limit; then
  echo "api.github.com is not reachable: using the local GitHub stand-in" >&2
  offline=1
fi
if [[ $offline == 1 ]]; then
  fifo="$(mktemp -u)"; mkfifo "$fifo"
  "$BIN/github-standin" --orgs 1 --repos 3 --prs 150 --port 0 > "$fifo" &
  standin_pid=$!
  trap 'kill $standin_pid 2>/dev/null || true; rm -f "$fifo"' EXIT
  read -r line < "$fifo"
  export "${line?}"   # GITHUB_API_URL=http://127.0.0.1:PORT
  export QUICKSTART_ORG="${QUICKSTART_ORG:-standin-org-0}"
  export QUICKSTART_LOOKBACK="${QUICKSTART_LOOKBACK:-3650d}"  # its data is from 2025-2026
  echo "GitHub stand-in at $GITHUB_API_URL (org $QUICKSTART_ORG)" >&2
fi
"$BIN/flowctl" apply pipelines/quickstart.yaml
