#!/usr/bin/env bash
# Fetch a prebuilt libduckdb.so of exactly the version the `duckdb` crate expects
# (crate 1.10506.x <-> DuckDB 1.5.6), so the Rust build links against it instead of
# compiling DuckDB from source (4 min instead of 43 min on 2 cores).
#
# Source: DuckDB's official release archive when the internet is reachable; otherwise
# the npm package @duckdb/node-bindings-linux-x64, which ships the same libduckdb.so.
# Output: $DUCKDB_LIB_DIR (default .deps/duckdb) holding libduckdb.so and duckdb.h.
set -euo pipefail
VERSION=1.5.6
NPM_PKG="@duckdb/node-bindings-linux-x64@${VERSION}-r.1"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${DUCKDB_LIB_DIR:-$ROOT/.deps/duckdb}"
if [[ -f "$DEST/libduckdb.so" && -f "$DEST/.version" && "$(cat "$DEST/.version")" == "$VERSION" ]]; then
  echo "libduckdb $VERSION already in $DEST"; exit 0
fi
mkdir -p "$DEST"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
if curl -fsSL --max-time 60 -o "$tmp/lib.zip" \
     "https://github.com/duckdb/duckdb/releases/download/v${VERSION}/libduckdb-linux-amd64.zip" 2>/dev/null; then
  (cd "$tmp" && unzip -q lib.zip)
  cp "$tmp/libduckdb.so" "$DEST/"
else
  echo "GitHub release not reachable; taking libduckdb.so from npm $NPM_PKG" >&2
  (cd "$tmp" && npm pack --silent "$NPM_PKG" >/dev/null && tar xzf ./*.tgz)
  so="$(find "$tmp/package" -name 'libduckdb.so' | head -1)"
  [[ -n "$so" ]] || { echo "libduckdb.so not found in $NPM_PKG" >&2; exit 1; }
  cp "$so" "$DEST/"
fi
echo "$VERSION" > "$DEST/.version"
echo "libduckdb $VERSION in $DEST"
