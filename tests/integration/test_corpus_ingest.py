"""Every real-world mail in ../shared/corpus goes through `maild ingest`: exit 0, no
traceback, and ends as a ticket message, a recognised automatic message, a bounce (kept
in the `bounce` table: none of them returns a mail of ours) or a quarantined message with
its reason.  Bounces, auto-replies and reports never get an acknowledgement."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

from maild import cli
from maild.config import load_settings
from maild.spool import Spool
from parsers.classify import AUTOMATIC
from parsers.message import parse
from store.db import open_database
from store.migrations import migrate
from store.models import Bounce, Delivery, Message, Outbox
from store.tickets import message_key
from tests.integration.harness import SUPPORT, write_config
from tests.parsers.corpus import CORPUS, corpus_files

pytestmark = pytest.mark.corpus


def ingest(config, raw: bytes, monkeypatch, *extra: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    return cli.main(["-c", str(config), "ingest", "--recipient", SUPPORT, *extra])


def test_every_corpus_mail_goes_through_maild_ingest(tmp_path, monkeypatch, capfd):
    files = corpus_files()
    assert len(files) > 700
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/maild.db", f"maildir:{tmp_path}/out")
    codes = {}
    for path in files:
        codes[path] = ingest(config, path.read_bytes(), monkeypatch, "--no-send")
    assert {c for c in codes.values()} == {0}, [p for p, c in codes.items() if c]
    assert "Traceback" not in capfd.readouterr().err

    db = open_database(load_settings(config).database_url)
    migrate(db)
    with Spool(load_settings(config).spool_dir) as spool:
        quarantined = {bytes(item.raw): item.last_error for item in spool.quarantined()}
        assert spool.depth().get("incoming", 0) == 0
    outcomes = {"message": 0, "automatic": 0, "bounce": 0, "quarantined": 0}
    for path in files:
        raw = path.read_bytes()
        if raw in quarantined:
            assert quarantined[raw], f"{path} quarantined without a reason"
            outcomes["quarantined"] += 1
            continue
        key = message_key(parse(raw).message_id, raw)
        delivery = Delivery.get_or_none(Delivery.message_key == key)
        bounce = Bounce.get_or_none(Bounce.message_key == key)
        if delivery is None and bounce is not None:
            assert bounce.ticket_id is None and bounce.raw is not None
            outcomes["bounce"] += 1
            continue
        assert delivery is not None, f"{path.relative_to(CORPUS)} was neither stored nor quarantined"
        message = Message.get_by_id(delivery.message_id)
        if path.relative_to(CORPUS).parts[:2] == ("sisimai", "bsd"):
            assert message.kind in AUTOMATIC, f"{path.relative_to(CORPUS)} taken for a customer"
            assert not Outbox.select().where(Outbox.ticket == message.ticket_id,
                                             Outbox.to_address == message.from_address).exists()
        outcomes["automatic" if message.kind in AUTOMATIC else "message"] += 1
    print(f"corpus outcomes over {len(files)} files: {outcomes}")
    assert outcomes["message"] > 100 and outcomes["automatic"] + outcomes["bounce"] > 600
    # a bounce opens no ticket; measured 496: a corpus file with only a bounce's subject or
    # From (no <> Return-Path, no report, no X-Failed-Recipients) opens an unanswered ticket
    assert outcomes["bounce"] >= 490
    db.close()


SAMPLES = ["rt/new-ticket-from-gb18030", "flanker/torture-part.eml",
           "sisimai/bsd/rfc3834-01.eml", "cpython-stdlib/msg_15.txt"]


@pytest.mark.parametrize("relative", SAMPLES)
def test_maild_ingest_as_a_process_exits_0_without_traceback(tmp_path, relative):
    path = CORPUS / relative
    if not path.is_file():
        pytest.skip(f"corpus file not found: {path}")
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/maild.db", f"maildir:{tmp_path}/out")
    done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "ingest",
                           "--recipient", SUPPORT], input=path.read_bytes(), capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr


def test_maild_ingest_exits_75_when_it_cannot_spool(tmp_path):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/maild.db", f"maildir:{tmp_path}/out")
    (tmp_path / "spool").write_text("not a folder")      # the spool path is unusable
    done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "ingest",
                           "--recipient", SUPPORT], input=b"Subject: hi\r\n\r\nhello\r\n",
                          capture_output=True, timeout=60)
    assert done.returncode == 75, done.stderr.decode()
    assert b"retry" in done.stderr and b"Traceback" not in done.stderr
