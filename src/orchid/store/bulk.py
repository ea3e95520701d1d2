"""Bulk statements for the hot paths: id lists as one parameter, executemany and COPY.

A statement whose text never changes is compiled once and cached (by SQLAlchemy, and by
PostgreSQL as a prepared statement), so sets of ids are passed as one parameter of fixed
shape — a JSON array read with ``json_each`` on SQLite, an ``integer[]`` on PostgreSQL —
instead of an ``IN (?, ?, ...)`` list whose text changes with its length. Rows by the
thousand go through the driver's own ``executemany`` (SQLite) or ``COPY`` (PostgreSQL),
without SQLAlchemy's per-row parameter processing. Every function runs inside the
caller's transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from orchid.core import jsonvalues

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def ids(conn: Connection, values: Iterable[int]) -> Any:
    """The parameter value for a set of ids (see :func:`in_ids`)."""
    if is_pg(conn):
        return [int(v) for v in values]
    return _dumps([int(v) for v in values])


def in_ids(conn: Connection, column: str, param: str = "ids") -> str:
    """SQL: ``column`` is one of the ids bound as ``:param`` (made by :func:`ids`)."""
    if is_pg(conn):
        return f"{column} = ANY(:{param})"
    return f"{column} IN (SELECT value FROM json_each(:{param}))"


@lru_cache(maxsize=256)
def _text(sql: str, pg: bool, arrays: tuple[str, ...]) -> sa.TextClause:
    stmt = sa.text(sql)
    if pg and arrays:
        stmt = stmt.bindparams(
            *(sa.bindparam(a, type_=postgresql.ARRAY(sa.Integer)) for a in arrays)
        )
    return stmt


def text(conn: Connection, sql: str, arrays: Sequence[str] = ("ids",)) -> sa.TextClause:
    """A cached ``text()`` statement; ``arrays`` are the parameters holding id sets."""
    return _text(sql, is_pg(conn), tuple(a for a in arrays if f":{a}" in sql))


def json_rows(pg: bool, param: str = "rows") -> str:
    """SQL for a FROM clause: the rows of the JSON array of arrays bound as ``:param`` (made by
    :func:`json_text`), as ``u``; column ``i`` of a row is ``u.value ->> i``."""
    if pg:
        return f"json_array_elements(CAST(:{param} AS JSON)) AS u(value)"
    return f"json_each(:{param}) AS u"


def json_text(value: Any) -> str:
    """A JSON document as stored in a JSON column (compact, finite numbers only)."""
    return _dumps(value)


@lru_cache(maxsize=128)
def _driver_sql(sql: str, pg: bool) -> str:
    return sql.replace("?", "%s") if pg else sql


_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=128)
def _driver_named(sql: str, pg: bool) -> str:
    return _NAMED.sub(r"%(\1)s", sql) if pg else sql


def fetch(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``:name`` parameters) on the driver's cursor; all rows as plain tuples.

    For statements that return thousands of rows: no per-row result processing (JSON
    columns come back as text on SQLite, decoded on PostgreSQL).
    """
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_driver_named(sql, is_pg(conn)), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def json_value(raw: Any) -> Any:
    """A JSON column's value as :func:`fetch` returns it, decoded (``{}`` without a parse)."""
    if isinstance(raw, str):
        return {} if raw == "{}" else jsonvalues.loads(raw)
    return raw


def executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run ``sql`` (``?`` placeholders) once per row on the driver's cursor; rows changed."""
    if not rows:
        return 0
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(_driver_sql(sql, is_pg(conn)), rows)
        return int(cursor.rowcount)
    finally:
        cursor.close()


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Any]) -> None:
    """PostgreSQL ``COPY table (columns) FROM STDIN`` of the rows (tuples of values)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()
