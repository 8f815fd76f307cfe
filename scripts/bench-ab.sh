#!/usr/bin/env bash
# A/B of flowctl builds through the e2e bench: for each size and repetition,
# runs every given binary in turn (through BENCH_WRAP) and prints the full sync's figures.
#
#   scripts/bench-ab.sh --sizes "400 4000" --reps 3 /tmp/flowctl-old target/release/flowctl
#   BENCH_ORGS=6 scripts/bench-ab.sh --sizes 1333 --reps 2 /tmp/flowctl-old target/release/flowctl
#
# Other BENCH_* variables pass through (see benches/e2e.rs); the production path
# (BENCH_WAREHOUSE=snowflake, the default here) needs the emulators:
#   scripts/with-emulators.sh scripts/bench-ab.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="4000"; reps=1; bins=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sizes) sizes="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) bins+=("$(realpath "$1")"); shift ;;
  esac
done
[[ ${#bins[@]} -gt 0 ]] || { echo "bench-ab.sh: name at least one flowctl binary" >&2; exit 2; }
export BENCH_WAREHOUSE="${BENCH_WAREHOUSE:-snowflake}" BENCH_ALL_PRS="${BENCH_ALL_PRS:-0}"
export BENCH_FULL_REFRESH="${BENCH_FULL_REFRESH:-0}"
cargo bench --bench e2e --no-run 2>&1 | grep -v '^ *\(Compiling\|Blocking\)' >&2 || true
wrapdir="$(mktemp -d)"; trap 'rm -rf "$wrapdir"' EXIT
for i in "${!bins[@]}"; do
  # BENCH_WRAP gets the bench's own binary as its first argument: drop it, run ours.
  printf '#!/bin/sh\nshift\nexec "%s" "$@"\n' "${bins[$i]}" > "$wrapdir/$i.sh"
  chmod +x "$wrapdir/$i.sh"
done
for s in $sizes; do
  for _ in $(seq "$reps"); do
    for i in "${!bins[@]}"; do
      out="$(BENCH_WRAP="$wrapdir/$i.sh" BENCH_PRS="$s" cargo bench --bench e2e 2>&1)" || {
        echo "$out" | tail -20 >&2; exit 1; }
      full="$(echo "$out" | sed -n '/--- full sync/,/--- re-run/p')"
      echo "${bins[$i]} prs/repo=$s: $(echo "$full" | grep 'wall')"
      echo "$full" | grep 'memory:\|bodies:' || true
    done
  done
done
