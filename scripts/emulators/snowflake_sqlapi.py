"""Snowflake SQL API v2 over fakesnow's engine, for flowctl's tests.

fakesnow speaks the drivers' protocol only; flowctl's loader speaks the documented SQL
API v2. This adapter serves:

  POST /api/v2/statements?requestId=..[&retry=true]   200 ResultSet | 202 QueryStatus | 422
  GET  /api/v2/statements/{handle}                    200 | 202 | 422
  POST /api/v2/statements/{handle}/cancel             200
  GET  /flowctl-test/stats                            test bookkeeping (executions, cancels)

Test markers (SQL comments in the statement):
  /*flowctl-test:async*/      answer 202 first, the result on the first poll
  /*flowctl-test:hang*/       answer 202 until cancelled (then 422 "cancelled")
  /*flowctl-test:fail-once*/  run the statement, then answer 503 as if the answer was lost;
                              the retry (same requestId, retry=true) gets the stored result
  /*flowctl-test:throttle-once*/  answer 429 without running the statement; the retry runs it
  /*flowctl-test:unauthorized*/   answer 401 as for a JWT Snowflake does not accept

Stricter than fakesnow where Snowflake is (Snowflake docs: "Submitting a request to execute
SQL statements", "Snowflake SQL API reference"):
  * the request fields `database`, `schema`, `warehouse`, `role` are case-sensitive: a name
    that matches an existing database or schema only in another case is refused (422, code
    390201 "does not exist or not authorized"), and so is a warehouse or role name that is
    not upper case (the only names the emulator's unquoted objects have); a database or
    schema that does not exist at all is created, as fakesnow does, when its name is upper
    case (what an unquoted CREATE would make);
  * null in those fields is refused: a client leaves unset keys out;
  * the session time zone is the request's `parameters.timezone`, else the account default
    America/Los_Angeles (Snowflake's default TIMEZONE), not UTC as in fakesnow.
Every request body is kept (last 500) under /flowctl-test/stats "bodies" for tests.

For `flowctl check`:
  POST /flowctl-test/rules   [{"role"|"database"|"schema"|"warehouse": ..., "statement": "CREATE TABLE",
                               "code": ..., "sqlState": ..., "message": ...}]
                             adds rules: a statement whose request matches every given field (and
                             starts with `statement`, if given) is answered 422 with that error, as
                             Snowflake refuses a missing privilege or object. Scope rules by a
                             name unique to the test: the emulator is shared.
  LIST @stage [PATTERN='re'] lists an external stage's files (fakesnow lists internal stages only).
  CURRENT_ROLE() / CURRENT_WAREHOUSE() are the request's `role` / `warehouse` (an unset warehouse
  is NULL: the emulated user has no default warehouse).

The JWT is only checked for presence and the KEYPAIR_JWT token-type header.
Run: python snowflake_sqlapi.py --port PORT  (env FLOWCTL_TEST_S3_ENDPOINT=http://host:port
enables COPY from s3:// stages against moto through DuckDB's httpfs extension).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import pathlib
import re
import threading
import time
import uuid
from typing import Any

import snowflake.connector.errors
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import duckdb_extension_httpfs
from fakesnow.copy_into import stage_url_from_var
from fakesnow.instance import FakeSnow
from fakesnow.rowtype import describe_as_rowtype

FS = FakeSnow()
LOCK = threading.Lock()  # fakesnow connections are not thread-safe
CONNS: dict[tuple[str | None, str | None], Any] = {}
BY_REQUEST: dict[str, tuple[int, dict]] = {}  # requestId -> stored answer
STATEMENTS: dict[str, dict] = {}  # handle -> {"state": ..., "answer": (status, body)}
STATS: dict[str, Any] = {"executions": {}, "cancels": [], "posts": 0, "bodies": []}
ACCOUNT_TIMEZONE = "America/Los_Angeles"  # Snowflake's default TIMEZONE parameter


def setup_httpfs() -> None:
    ext_dir = pathlib.Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    ext = next(ext_dir.glob("*/httpfs.duckdb_extension"))
    FS.duck_conn.execute(f"LOAD '{ext}'")
    endpoint = os.environ.get("FLOWCTL_TEST_S3_ENDPOINT")
    if endpoint:
        host = endpoint.split("://", 1)[-1].rstrip("/")
        use_ssl = "true" if endpoint.startswith("https://") else "false"
        FS.duck_conn.execute(
            "CREATE OR REPLACE SECRET flowctl_moto (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
            f"REGION 'us-east-1', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL {use_ssl})"
        )


class ContextError(Exception):
    """A request field names no object (Snowflake answers 422, code 390201)."""


def existing(query: str, *args: str) -> list[str]:
    return [r[0] for r in FS.duck_conn.execute(query, list(args)).fetchall()]


def resolve(kind: str, name: str, have: list[str]) -> None:
    """Check a case-sensitive request field against the names that exist."""
    if name in have:
        return
    if any(h.upper() == name.upper() for h in have) or name != name.upper():
        raise ContextError(f"The requested {kind} does not exist or not authorized.")


def conn_for(body: dict):
    for key in ("database", "schema", "warehouse", "role"):
        if key in body and not isinstance(body[key], str):
            raise ContextError(f"Invalid value for field '{key}': {body[key]!r}")
    database, schema = body.get("database"), body.get("schema")
    for kind in ("warehouse", "role"):
        if kind in body:
            resolve(kind, body[kind], [])
    if database is not None:
        resolve("database", database, existing("SELECT database_name FROM duckdb_databases()"))
        if schema is not None:
            resolve("schema", schema, existing(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = ?", database))
    key = (database, schema)
    if key not in CONNS:
        CONNS[key] = FS.connect(database, schema)
    return CONNS[key]


def set_timezone(conn, body: dict) -> None:
    tz = (body.get("parameters") or {}).get("timezone") or ACCOUNT_TIMEZONE
    if not re.fullmatch(r"[A-Za-z0-9_/+-]+", tz):
        raise ContextError(f"invalid value [{tz}] for parameter 'TIMEZONE'")
    conn._duck_conn.execute(f"SET TimeZone = '{tz}'")  # noqa: SLF001


def cell(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str)
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    return str(v)


RULES: list[dict] = []  # POST /flowctl-test/rules
SELECTORS = ("role", "database", "schema", "warehouse")
LIST_RE = re.compile(r"^\s*LIST\s+@(\S+?)(?:\s+PATTERN\s*=\s*'((?:[^']|'')*)')?\s*;?\s*$", re.I | re.S)


def refusal(body: dict, handle: str) -> tuple[int, dict] | None:
    sql = re.sub(r"/\*.*?\*/", "", body.get("statement") or "", flags=re.S).strip().upper()
    for r in RULES:
        if all(body.get(k) == r[k] for k in SELECTORS if k in r) and sql.startswith(
            r.get("statement", "").upper()
        ):
            return 422, failure(handle, r.get("code", "003001"), r.get("sqlState", "42501"), r["message"])
    return None


def session_functions(sql: str, body: dict) -> str:
    for fn, key in (("CURRENT_ROLE", "role"), ("CURRENT_WAREHOUSE", "warehouse")):
        v = body.get(key)
        if v is None and key == "role":
            continue  # fakesnow's own answer stands for the user's default role
        literal = "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"
        sql = re.sub(rf"\b{fn}\s*\(\s*\)", literal, sql, flags=re.I)
    return sql


def list_stage(conn: Any, sql: str) -> list[list[str | None]] | None:
    """LIST @stage of an external stage: its files, recursively, as Snowflake lists them."""
    m = LIST_RE.match(sql)
    if not m:
        return None
    url = stage_url_from_var(m.group(1), conn._duck_conn, conn.database, conn.schema)  # noqa: SLF001
    pattern = re.compile((m.group(2) or ".*").replace("''", "'"))
    base = url if url.endswith("/") else url + "/"
    files = [f for (f,) in conn._duck_conn.execute("SELECT file FROM glob(?)", [base + "**"]).fetchall()]  # noqa: SLF001
    files = [f for f in files if pattern.fullmatch(f)]
    if not files:
        return []
    blobs = conn._duck_conn.execute(  # noqa: SLF001
        "SELECT filename, size, md5(content), last_modified FROM read_blob(?)", [files]
    ).fetchall()
    return [[cell(v) for v in row] for row in blobs]


def list_answer(handle: str, rows: list[list[str | None]]) -> tuple[int, dict]:
    rowtype = [
        {"name": n, "type": t, "nullable": True, "length": None, "precision": None, "scale": None}
        for n, t in (("name", "text"), ("size", "fixed"), ("md5", "text"), ("last_modified", "text"))
    ]
    return 200, {
        "resultSetMetaData": {
            "numRows": len(rows),
            "format": "jsonv2",
            "partitionInfo": [{"rowCount": len(rows), "uncompressedSize": 0}],
            "rowType": rowtype,
        },
        "data": rows,
        "code": "090001",
        "sqlState": "00000",
        "statementHandle": handle,
        "message": "Statement executed successfully.",
    }


def run_statement(body: dict, handle: str) -> tuple[int, dict]:
    sql = body.get("statement") or ""
    with LOCK:
        STATS["executions"][handle] = STATS["executions"].get(handle, 0) + 1
        if refused := refusal(body, handle):
            return refused
        try:
            conn = conn_for(body)
            set_timezone(conn, body)
        except ContextError as e:
            return 422, failure(handle, "390201", "08004", str(e))
        sql = session_functions(sql, body)
        cur = conn.cursor()
        try:
            listed = list_stage(conn, sql)
            if listed is not None:
                return list_answer(handle, listed)
            cur.execute(sql, server=True)
            rowtype = describe_as_rowtype(cur._describe_last_sql())  # noqa: SLF001
            table = cur._arrow_table  # noqa: SLF001
        except snowflake.connector.errors.ProgrammingError as e:
            return 422, failure(handle, f"{e.errno:06d}", e.sqlstate or "42000", e.msg)
        except Exception as e:  # noqa: BLE001 - DuckDB errors (missing file, bad cast) land here
            return 422, failure(handle, "100000", "XX000", f"{type(e).__name__}: {e}")
    rows: list[list[str | None]] = []
    if table is not None:
        cols = [c.to_pylist() for c in table.columns]
        rows = [[cell(v) for v in row] for row in zip(*cols)]
    return 200, {
        "resultSetMetaData": {
            "numRows": len(rows),
            "format": "jsonv2",
            "partitionInfo": [{"rowCount": len(rows), "uncompressedSize": 0}],
            "rowType": [dict(r) for r in rowtype],
        },
        "data": rows,
        "code": "090001",
        "statementStatusUrl": f"/api/v2/statements/{handle}",
        "sqlState": "00000",
        "statementHandle": handle,
        "message": "Statement executed successfully.",
        "createdOn": int(time.time() * 1000),
    }


def failure(handle: str, code: str, sql_state: str, message: str) -> dict:
    return {"code": code, "sqlState": sql_state, "message": message, "statementHandle": handle}


def running(handle: str) -> dict:
    return {
        "code": "333334",
        "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
        "statementHandle": handle,
        "statementStatusUrl": f"/api/v2/statements/{handle}",
    }


def auth_error(request: Request) -> JSONResponse | None:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or len(auth) < 10:
        return JSONResponse(failure("", "390101", "08001", "Authorization header not found"), 401)
    if request.headers.get("x-snowflake-authorization-token-type") != "KEYPAIR_JWT":
        return JSONResponse(failure("", "390101", "08001", "expected token type KEYPAIR_JWT"), 401)
    return None


async def submit(request: Request) -> JSONResponse:
    if err := auth_error(request):
        return err
    STATS["posts"] += 1
    request_id = request.query_params.get("requestId") or str(uuid.uuid4())
    retry = request.query_params.get("retry") == "true"
    if retry and request_id in BY_REQUEST:
        status, body = BY_REQUEST[request_id]
        return JSONResponse(body, status)
    body = await request.json()
    STATS["bodies"] = [*STATS["bodies"][-499:], body]
    sql = body.get("statement") or ""
    if "/*flowctl-test:unauthorized*/" in sql:
        return JSONResponse(failure("", "390144", "08001", "JWT token is invalid."), 401)
    if "/*flowctl-test:throttle-once*/" in sql and not retry:
        return JSONResponse({"message": "injected: too many requests"}, 429)
    handle = str(uuid.uuid4())
    if "/*flowctl-test:hang*/" in sql:
        STATEMENTS[handle] = {"state": "hang", "answer": None}
        BY_REQUEST[request_id] = (202, running(handle))
        return JSONResponse(running(handle), 202)
    answer = await run_in_threadpool(run_statement, body, handle)
    if "/*flowctl-test:async*/" in sql:
        STATEMENTS[handle] = {"state": "pending", "answer": answer}
        BY_REQUEST[request_id] = (202, running(handle))
        return JSONResponse(running(handle), 202)
    STATEMENTS[handle] = {"state": "done", "answer": answer}
    BY_REQUEST[request_id] = answer
    if "/*flowctl-test:fail-once*/" in sql and not retry:
        return JSONResponse({"message": "injected: answer lost"}, 503)
    return JSONResponse(answer[1], answer[0])


async def status(request: Request) -> JSONResponse:
    if err := auth_error(request):
        return err
    handle = request.path_params["handle"]
    st = STATEMENTS.get(handle)
    if st is None:
        return JSONResponse(failure(handle, "000709", "02000", f"Statement {handle} not found"), 404)
    if st["state"] == "hang":
        return JSONResponse(running(handle), 202)
    if st["state"] == "cancelled":
        return JSONResponse(failure(handle, "000604", "57014", "SQL execution canceled"), 422)
    status_code, body = st["answer"]
    st["state"] = "done"
    return JSONResponse(body, status_code)


async def cancel(request: Request) -> JSONResponse:
    if err := auth_error(request):
        return err
    handle = request.path_params["handle"]
    STATS["cancels"].append(handle)
    if handle in STATEMENTS and STATEMENTS[handle]["state"] in ("hang", "pending"):
        STATEMENTS[handle]["state"] = "cancelled"
    return JSONResponse({"code": "000604", "message": "SQL execution canceled", "statementHandle": handle})


async def stats(_: Request) -> JSONResponse:
    return JSONResponse(STATS)


async def add_rules(request: Request) -> JSONResponse:
    rules = await request.json()
    with LOCK:
        RULES.extend(rules if isinstance(rules, list) else [rules])
    return JSONResponse({"rules": len(RULES)})


app = Starlette(
    routes=[
        Route("/api/v2/statements", submit, methods=["POST"]),
        Route("/api/v2/statements/{handle}", status, methods=["GET"]),
        Route("/api/v2/statements/{handle}/cancel", cancel, methods=["POST"]),
        Route("/flowctl-test/stats", stats, methods=["GET"]),
        Route("/flowctl-test/rules", add_rules, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    setup_httpfs()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
