#!/usr/bin/env bash
# Reporting layer checks: the SQL views on known rows through the Snowflake emulator
# (fakesnow, in-process) and `dbt parse` of sql/dbt (dbt-core + dbt-duckdb, offline).
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
echo "== reporting checks passed"
