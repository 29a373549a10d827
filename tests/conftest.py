"""Shared fixtures: real databases (SQLite and PostgreSQL), the corpus, settings files.

`database_url` runs a test once on SQLite and once on the PostgreSQL server at
127.0.0.1:5432 (user postgres, database test), each PostgreSQL test in a schema of its
own.  Where PostgreSQL is unreachable the PostgreSQL variant is skipped with the reason —
except under CI (CI=true), where it fails: CI must exercise both.

`dovecot_server` is a real Dovecot IMAP server on a free loopback port, shared by the
session; `imap_account` a fresh user on it for each test; `private_dovecot` an instance of
the test's own, to stop, kill or restart (tests/dovecot.py is the manual).  Where Dovecot is
missing or cannot run, their tests are skipped with the reason — under CI they fail.

`postfix_server` is a real Postfix on a free loopback port, shared by the session, with a
recording SMTP sink routed as the domain `sink.test` (`nosuchuser*` refused with 550,
`tempfail*` with 452); `postfix_sink` is that sink, emptied for the test, which also
starts Postfix's log view afresh (`postfix_server.mark()`: deliveries() and maillog() show
only this test's lines).  `dovecot_lmtp`
is a Dovecot with LMTP and Sieve for the session, its vacation replies sent through
`postfix_server`, which routes `customer.test` to it; `customer_mailbox` is
carol@customer.test on it, fresh for each test, with her out-of-office script
(`VACATION`).  tests/postfix.py is the manual.  Skipped where Postfix (or Dovecot's LMTP
and Sieve) is missing, failed under CI.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SINK_DOMAIN = "sink.test"
CUSTOMER = "carol@customer.test"
VACATION = 'require ["vacation"];\nvacation :days 1 :subject "Out of office" "I am away";\n'
CUSTOMER_PASSWORD = secrets.token_urlsafe(12)
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


def _started_dovecot():
    from tests.dovecot import Dovecot, DovecotError

    reason = Dovecot.unavailable()
    if reason is None:
        server = Dovecot()
        try:
            server.start()
            return server
        except DovecotError as exc:
            server.close()
            reason = f"Dovecot did not start: {exc}"
    if os.environ.get("CI"):
        pytest.fail(f"Dovecot is required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dovecot_server():
    """The session's Dovecot IMAP server; add users to it, never stop it in a test."""
    server = _started_dovecot()
    yield server
    server.close()


@pytest.fixture
def imap_account(dovecot_server):
    """A fresh user on the shared server: <random>@helpdesk.test, random password."""
    return dovecot_server.add_user(f"u{uuid.uuid4().hex[:12]}@helpdesk.test",
                                   secrets.token_urlsafe(12))


@pytest.fixture
def private_dovecot():
    """A Dovecot instance of the test's own, for tests that stop, kill or restart it."""
    server = _started_dovecot()
    yield server
    server.close()


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def _lab_sink():
    from tests.postfix import Sink

    sink = Sink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def postfix_server(_lab_sink):
    """The session's Postfix; route() what a test needs, never stop it in a test."""
    from tests.postfix import Postfix, PostfixError

    reason = Postfix.unavailable()
    if reason is None:
        server = Postfix()
        try:
            server.route({SINK_DOMAIN: _lab_sink.nexthop})
            server.start()
        except PostfixError as exc:
            server.close()
            reason = f"Postfix did not start: {exc}"
        else:
            yield server
            server.close()
            return
    _unavailable(reason)


@pytest.fixture
def postfix_sink(postfix_server, _lab_sink):
    """The sink behind `sink.test`, emptied for this test; Postfix's log view starts now."""
    _lab_sink.clear()
    postfix_server.mark()
    yield _lab_sink
    # a test that ends with mail still queued (a failed one, say) must not hand its DSNs
    # to the next test's sink
    with contextlib.suppress(TimeoutError):
        postfix_server.wait_queue_empty(timeout=10)


@pytest.fixture(scope="session")
def dovecot_lmtp(postfix_server):
    """Dovecot with LMTP and Sieve for the session; Postfix routes `customer.test` to it."""
    from tests.dovecot import Dovecot, DovecotError

    reason = Dovecot.unavailable(lmtp=True)
    if reason is None:
        server = Dovecot(lmtp=True, submission_host=postfix_server.address)
        try:
            server.start()
        except DovecotError as exc:
            server.close()
            reason = f"Dovecot (LMTP) did not start: {exc}"
        else:
            postfix_server.route({CUSTOMER.partition("@")[2]:
                                  f"lmtp:inet:{server.host}:{server.lmtp_port}"})
            yield server
            server.close()
            return
    _unavailable(reason)


@pytest.fixture
def customer_mailbox(dovecot_lmtp):
    """carol@customer.test, a fresh mailbox (no mail, has answered no one) with VACATION."""
    dovecot_lmtp.remove_user(CUSTOMER)
    # one password for the session: Dovecot re-reads a passwd-file at most once a second,
    # so a new password written right after the previous test's could be refused
    return dovecot_lmtp.add_user(CUSTOMER, CUSTOMER_PASSWORD, sieve=VACATION)
