#!/usr/bin/env bash
# The project's whole test suite: formatting, lints, every test against real emulators,
# example specs, and drift checks of generated files (schemas/, sql/raw_tables.sql).
set -euo pipefail
cd "$(dirname "$0")/.."
"$PWD/scripts/fetch-libduckdb.sh"
echo "== cargo fmt --check"; cargo fmt --all --check
# Lint and build in one compile: clippy-driver as the compiler of the workspace's own crates
# lints each while building it (CLIPPY_ARGS is what `cargo clippy -- -D warnings` hands it),
# so every later cargo command here reuses that build instead of checking it all again.
driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)" \
  || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
FLOWCTL="${CARGO_TARGET_DIR:-target}/debug/flowctl"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
echo "== cargo clippy, flowctl without DuckDB (--no-default-features)"
# `--workspace` resolves dependency features as the test build does, so the two share every
# dependency; the lean binary is kept aside for the checks at the end.
cargo build --workspace --no-default-features --bin flowctl
cp "$FLOWCTL" "$tmp/flowctl-lean"
echo "== cargo clippy, every target"
cargo test --workspace --all-targets --no-run
echo "== tests (with emulators)"
scripts/with-emulators.sh cargo test --workspace --no-fail-fast -- --test-threads=2
echo "== flowctl validate pipelines/*.yaml"
GITHUB_API_URL=http://127.0.0.1:1 SNOWFLAKE_ACCOUNT=example "$FLOWCTL" validate pipelines/*.yaml
echo "== generated files are up to date"
"$FLOWCTL" schema --write "$tmp/schemas" >/dev/null
diff -ru schemas "$tmp/schemas" || { echo "schemas/ drifted: run 'flowctl schema --write schemas'" >&2; exit 1; }
"$FLOWCTL" sql raw-tables > "$tmp/raw_tables.sql" 2>/dev/null
diff -u sql/raw_tables.sql "$tmp/raw_tables.sql" || { echo "sql/raw_tables.sql drifted: run 'flowctl sql raw-tables --write sql/raw_tables.sql'" >&2; exit 1; }
SNOWFLAKE_ACCOUNT=example "$FLOWCTL" dbt sources pipelines/github_pr.yaml pipelines/user_lookup.yaml > "$tmp/sources.yml"
diff -u sql/dbt/models/_sources_custom.yml "$tmp/sources.yml" || { echo "dbt sources drifted: run 'flowctl dbt sources pipelines/github_pr.yaml pipelines/user_lookup.yaml --write sql/dbt/models/_sources_custom.yml'" >&2; exit 1; }
echo "== reporting SQL and dbt"
scripts/test-reporting.sh
echo "== short fuzz run (cargo fuzz, ${FLOWCTL_FUZZ_SECONDS:-20} s a target)"
if [[ "${FLOWCTL_FUZZ_SECONDS:-20}" == 0 ]]; then
    echo "skipped: FLOWCTL_FUZZ_SECONDS=0"
elif cargo fuzz --version >/dev/null 2>&1; then
    # cargo fuzz builds with its own (nightly) compiler: no clippy-driver there. The short
    # run builds unoptimised (FUZZ_PROFILE=dev), which keeps a cold CI run in budget.
    env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS FUZZ_PROFILE="${FUZZ_PROFILE:-dev}" \
        scripts/fuzz.sh "${FLOWCTL_FUZZ_SECONDS:-20}"
elif [[ "${FLOWCTL_REQUIRE_FUZZ:-0}" == 1 ]]; then
    echo "cargo-fuzz is required here (FLOWCTL_REQUIRE_FUZZ=1): cargo install cargo-fuzz" >&2; exit 1
else
    echo "SKIPPED: cargo-fuzz not installed (cargo install cargo-fuzz --locked)"
fi
echo "== flowctl without DuckDB (--no-default-features): no libduckdb linked, clear errors"
FLOWCTL="$tmp/flowctl-lean"
if ldd "$FLOWCTL" | grep -q duckdb; then
  echo "the --no-default-features flowctl links libduckdb" >&2; exit 1
fi
"$FLOWCTL" plugins | grep -q '^warehouse  snowflake' || { echo "lean flowctl lacks snowflake" >&2; exit 1; }
set +e
q="$("$FLOWCTL" query pipelines/quickstart.yaml "SELECT 1" 2>&1)"; qrc=$?
v="$(GITHUB_API_URL=http://127.0.0.1:1 "$FLOWCTL" validate pipelines/quickstart.yaml 2>&1)"; vrc=$?
set -e
[[ $qrc == 2 && "$q" == *"built without DuckDB"* ]] || { echo "lean query: exit $qrc: $q" >&2; exit 1; }
[[ $vrc == 2 && "$v" == *duckdb* ]] || { echo "lean validate of a DuckDB spec: exit $vrc: $v" >&2; exit 1; }
echo "ok: no libduckdb; query and a DuckDB spec are refused by name"
echo "== all checks passed"
