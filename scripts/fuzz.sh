#!/usr/bin/env bash
# Run every cargo-fuzz target of fuzz/ for N seconds each (default 20): the short run CI
# does. Longer runs: FUZZ_SECONDS=3600 scripts/fuzz.sh link_header (see docs/RELIABILITY.md).
# cargo fuzz needs nightly flags; on a stable toolchain RUSTC_BOOTSTRAP=1 enables them.
# Findings land in fuzz/artifacts/<target>/; new corpus entries in fuzz/corpus/<target>/
# (only the seeds are checked in; keep new entries out of commits unless minimised).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-${1:-20}}"
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then shift; fi
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(link_header spec_loader json_arrow gunzip)
# Address sanitizer doubles build time and finds little in safe Rust; opt in with
# FUZZ_SANITIZER=address.
SANITIZER="${FUZZ_SANITIZER:-none}"
# FUZZ_PROFILE=dev builds unoptimised: about a third of the release build's CPU time, at
# fewer executions a second; right for the short CI run, not for long ones.
PROFILE_ARGS=()
case "${FUZZ_PROFILE:-release}" in
    release) ;;
    dev) PROFILE_ARGS=(--dev) ;;
    *) echo "FUZZ_PROFILE must be release or dev, not '${FUZZ_PROFILE}'" >&2; exit 2 ;;
esac
# FUZZ_TARGET_DIR keeps the instrumented build outside the clone (CI reuses it).
TARGET_DIR_ARGS=()
[[ -n "${FUZZ_TARGET_DIR:-}" ]] && TARGET_DIR_ARGS=(--target-dir "$FUZZ_TARGET_DIR")
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2
    exit 1
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
status=0
for t in "${TARGETS[@]}"; do
    # Fuzz into a scratch copy so the checked-in seed corpus stays small.
    work="target/corpus-work/$t"
    mkdir -p "$work"
    cp -n "corpus/$t"/* "$work"/ 2>/dev/null || true
    echo "== fuzzing $t for ${SECONDS_EACH}s (sanitizer: $SANITIZER, profile: ${FUZZ_PROFILE:-release})" >&2
    if ! cargo fuzz run "${PROFILE_ARGS[@]}" --sanitizer "$SANITIZER" "${TARGET_DIR_ARGS[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1; then
        echo "FAILED: $t (see fuzz/artifacts/$t/)" >&2
        status=1
    fi
done
exit $status
