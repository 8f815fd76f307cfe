#!/usr/bin/env bash
# End-to-end benchmark of `flowctl apply` against the GitHub stand-in, local staging and
# DuckDB (see benches/e2e.rs for what it prints). Builds release binaries via cargo bench.
#
#   scripts/bench-e2e.sh                       # target size: 2 orgs x 5 repos x 4,000 PRs
#   scripts/bench-e2e.sh --prs 400 --prs 4000 --prs 40000   # memory flatness sweep
#   scripts/bench-e2e.sh --orgs 1 --repos 3 --prs 1000 --latency-ms 20 --all-prs 0
#
# Options (repeat --prs for a sweep; each size runs the PR scenarios once):
#   --orgs N  --repos N  --prs N  --latency-ms N  --concurrency N
#   --all-prs N    PRs per repo of the all-streams run (default 200; 0 skips it)
#   --no-raw       include_raw: false in the spec
#   --micro        also run the micro benchmarks (benches/micro.rs)
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=()
export BENCH_ORGS=2 BENCH_REPOS=5 BENCH_LATENCY_MS=0
all_prs=200
micro=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --orgs) BENCH_ORGS="$2"; shift 2 ;;
    --repos) BENCH_REPOS="$2"; shift 2 ;;
    --prs) sizes+=("$2"); shift 2 ;;
    --latency-ms) BENCH_LATENCY_MS="$2"; shift 2 ;;
    --concurrency) export BENCH_CONCURRENCY="$2"; shift 2 ;;
    --all-prs) all_prs="$2"; shift 2 ;;
    --no-raw) export BENCH_INCLUDE_RAW=false; shift ;;
    --micro) micro=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench-e2e.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ ${#sizes[@]} -gt 0 ]] || sizes=(4000)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
cargo bench --bench e2e --no-run 2>&1 | grep -v '^ *\(Compiling\|Blocking\)' >&2 || true

for i in "${!sizes[@]}"; do
  # The all-streams run once, after the first size.
  if [[ $i -eq 0 ]]; then a=$all_prs; else a=0; fi
  BENCH_PRS="${sizes[$i]}" BENCH_ALL_PRS="$a" cargo bench --bench e2e 2>/dev/null
done
if [[ $micro -eq 1 ]]; then
  cargo bench --bench micro 2>/dev/null
fi
