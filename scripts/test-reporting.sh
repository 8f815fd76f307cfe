#!/usr/bin/env bash
# Reporting layer checks: the SQL views on known rows through the Snowflake emulator
# (fakesnow, in-process), `dbt parse` of sql/dbt (dbt-core + dbt-duckdb, offline), and
# `dbt build` of its staging models on a DuckDB file flowctl loaded from the GitHub stand-in.
# Needs .venv-emu (scripts/setup-python.sh); creates .venv-dbt on first use (PyPI).
# dbt-core 1.12 is not used: it builds dbt-core-experimental-parser by downloading a wheel
# from GitHub releases, which fails on a machine that reaches only package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
EMU_PY="${EMU_VENV:-$ROOT/.venv-emu}/bin/python"
DBT_VENV="${DBT_VENV:-$ROOT/.venv-dbt}"

echo "== reporting SQL on fakesnow"
"$EMU_PY" -m unittest discover -s tests/reporting -v

echo "== dbt parse (sql/dbt)"
# A separate venv: dbt-duckdb pulls its own duckdb, which must not replace the one fakesnow
# and the httpfs extension are pinned to in .venv-emu.
if [ ! -x "$DBT_VENV/bin/dbt" ]; then
  python3 -m venv "$DBT_VENV"
  "$DBT_VENV/bin/pip" install -q 'dbt-core~=1.11.0' 'dbt-duckdb~=1.11.0'
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cd sql/dbt
DBT_DUCKDB_PATH="$tmp/ci.duckdb" DBT_SEND_ANONYMOUS_USAGE_STATS=false \
  "$DBT_VENV/bin/dbt" parse --profiles-dir . --target-path "$tmp/target" --log-path "$tmp/logs" \
  --warn-error-options '{"error": ["NodeNotFoundOrDisabled"]}'

echo "== dbt build (sql/dbt, target local) on a DuckDB warehouse flowctl loaded"
# The laptop path end to end: the quickstart spec against the GitHub stand-in into a DuckDB
# file, then the staging models and their tests over it through the `local` target (the
# file attached as GITHUB_PIPELINES), and the models' rows checked against the raw tables.
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
(cd "$ROOT" && cargo build -q -p flowctl -p flowctl-github-standin)
mkdir -p "$tmp/qs/pipelines"
cp "$ROOT/pipelines/quickstart.yaml" "$tmp/qs/pipelines/"
fifo="$tmp/standin.fifo"; mkfifo "$fifo"
"$BIN/github-standin" --orgs 1 --repos 3 --prs 40 --port 0 > "$fifo" &
standin_pid=$!
trap 'kill $standin_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
read -r line < "$fifo"
(cd "$tmp/qs" && env "${line?}" QUICKSTART_ORG=standin-org-0 QUICKSTART_LOOKBACK=3650d \
  "$BIN/flowctl" apply pipelines/quickstart.yaml > "$tmp/apply.out" 2> "$tmp/apply.err") \
  || { cat "$tmp/apply.err" >&2; exit 1; }
models="stg_repository stg_pull_request stg_pull_request_review"
DBT_DUCKDB_PATH="$tmp/local.duckdb" FLOWCTL_DUCKDB_PATH="$tmp/qs/warehouse.duckdb" \
  DBT_SEND_ANONYMOUS_USAGE_STATS=false \
  "$DBT_VENV/bin/dbt" build --profiles-dir . --target local --select $models \
  --target-path "$tmp/target" --log-path "$tmp/logs"
"$DBT_VENV/bin/python" - "$tmp/local.duckdb" "$tmp/qs/warehouse.duckdb" <<'PY'
import sys, duckdb
models, warehouse = sys.argv[1], sys.argv[2]
con = duckdb.connect(models, read_only=True)
con.execute(f"ATTACH '{warehouse}' AS GITHUB_PIPELINES (READ_ONLY)")
def one(sql):
    return con.execute(sql).fetchone()[0]
checks = [
    # (model, raw rows it keeps, expected raw rows: 3 repos x 40 PRs, two reviews a PR)
    ("stg_repository", "REPOSITORY", 3),
    ("stg_pull_request", "PULL_REQUEST", 120),
    # Pending reviews (no SUBMITTED_AT; the stand-in has some) are left out.
    ("stg_pull_request_review", "PULL_REQUEST_REVIEW WHERE SUBMITTED_AT IS NOT NULL", 240),
]
for model, raw, want in checks:
    table = raw.split()[0]
    got = one(f"SELECT count(*) FROM main_staging.{model}")
    kept = one(f"SELECT count(*) FROM GITHUB_PIPELINES.RAW_TABLES.{raw}")
    raw_n = one(f"SELECT count(*) FROM GITHUB_PIPELINES.RAW_TABLES.{table}")
    assert raw_n == want, f"RAW_TABLES.{table}: {raw_n} rows, expected {want}"
    assert 0 < got == kept, f"{model}: {got} rows, RAW_TABLES.{raw}: {kept}"
    print(f"ok: {model} {got} rows of RAW_TABLES.{table}'s {raw_n}")
ids = one("SELECT count(DISTINCT pull_request_id) FROM main_staging.stg_pull_request")
assert ids == 120, f"stg_pull_request: {ids} distinct pull_request_id, expected 120"
PY
echo "== reporting checks passed"
