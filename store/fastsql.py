"""Cached INSERT statements for the per-message hot path.

    ticket_id = insert_row(Ticket, number=7, subject="Printer", ...)
    rows = fetch(db, 'SELECT "id" FROM "contact" WHERE "address" = ?', [address])
    changed = execute(db, 'UPDATE "outbox" SET "status" = ? WHERE "id" = ?', ["sent", 7])

peewee builds the SQL text of every query anew, which costs more than SQLite's own work
for a one-row INSERT; the store writes about ten rows per message.  `insert_row` builds
each statement once per model and column set (`INSERT ... RETURNING id`, valid on SQLite
3.35+ and PostgreSQL), fills in the model's Python-side defaults exactly as
`Model.create` would, converts values with each field's `db_value`, and returns the new
row's id.  It runs on the caller's connection, inside the caller's transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee

_STATEMENTS: dict[tuple, tuple[str, tuple[peewee.Field, ...]]] = {}


def _statement(model: type[peewee.Model], names: frozenset[str], param: str):
    key = (model, names, param)
    found = _STATEMENTS.get(key)
    if found is None:
        meta = model._meta
        fields = tuple(f for f in meta.sorted_fields
                       if f.name in names or (f in meta.defaults and f is not meta.primary_key))
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        params = ", ".join([param] * len(fields))
        sql = (f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({params}) '
               f'RETURNING "{meta.primary_key.column_name}"')
        found = _STATEMENTS[key] = (sql, fields)
    return found


def insert_row(model: type[peewee.Model], **values: Any) -> int:
    db = model._meta.database
    sql, fields = _statement(model, frozenset(values), db.param)
    params = []
    for field in fields:
        if field.name in values:
            value = values[field.name]
        else:
            default = model._meta.defaults[field]
            value = default() if callable(default) else default
        params.append(field.db_value(value))
    return db.execute_sql(sql, params).fetchone()[0]


_QUERIES: dict[tuple[str, str], str] = {}


def _text(db: peewee.Database, sql: str) -> str:
    key = (sql, db.param)
    text = _QUERIES.get(key)
    if text is None:
        text = _QUERIES[key] = sql.replace("?", db.param)
    return text


def fetch(db: peewee.Database, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Rows of a fixed query written with '?' placeholders (translated once per database
    driver), for the few SELECTs every message makes.  Only for static SQL text: values
    always travel as parameters."""
    return db.execute_sql(_text(db, sql), list(params)).fetchall()


def execute(db: peewee.Database, sql: str, params: Sequence[Any] = ()) -> int:
    """Run a fixed UPDATE or DELETE like `fetch`; how many rows it changed."""
    return db.execute_sql(_text(db, sql), list(params)).rowcount
