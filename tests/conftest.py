"""Shared fixtures: real databases (SQLite and PostgreSQL), the corpus, settings files.

`database_url` runs a test once on SQLite and once on the PostgreSQL server at
127.0.0.1:5432 (user postgres, database test), each PostgreSQL test in a schema of its
own.  Where PostgreSQL is unreachable the PostgreSQL variant is skipped with the reason —
except under CI (CI=true), where it fails: CI must exercise both.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
PG_URL = os.environ.get("MAILD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_schema_url() -> tuple[str, str]:
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    try:
        with psycopg.connect(PG_URL.replace("postgresql://", "postgresql://", 1), connect_timeout=3,
                             autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL at {PG_URL} unreachable: {exc}")
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/maild.db"
        return
    url, schema = _pg_schema_url()
    yield url
    _drop_schema(schema)


@pytest.fixture
def postgres_url():
    """PostgreSQL only, for tests of what only a database server can do (outages)."""
    url, schema = _pg_schema_url()
    yield url
    _drop_schema(schema)


@pytest.fixture
def db(database_url):
    from store.db import open_database
    from store.migrations import migrate

    database = open_database(database_url)
    migrate(database)
    yield database
    database.close()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS
