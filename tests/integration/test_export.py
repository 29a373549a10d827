"""`maild export`: the sysadmin takes every ticket out as JSON lines and finds every message
of the database in it; `--since`/`--until` pick by last change; memory stays flat."""
from __future__ import annotations

import base64
import json
import tracemalloc
from datetime import datetime, timedelta

from maild.envelope import Envelope
from rules.load import load_rules
from store.db import open_database
from store.export import export_tickets
from store.models import (Attachment, Contact, Event, Message, MessageAttachment, Outbox, Ticket,
                          TicketTag)
from tests.integration.harness import SUPPORT, mail, running_helpdesk, write_config
from tests.integration.test_cli import run
from tests.parsers.corpus import corpus_files
from tests.store.test_report import NOW, RULES, a_week_of_tickets

PDF = b"%PDF-1.4 the invoice " * 500


def with_attachment(message_id: str) -> bytes:
    return (f"From: Dave <dave@customer.example>\r\nTo: {SUPPORT}\r\nSubject: Invoice attached\r\n"
            f"Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the invoice, Grüße.\r\n"
            "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
            "filename=invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(PDF).decode() + "--b--\r\n").encode()


def export(config, capsys, tmp_path, *options) -> list[dict]:
    out = tmp_path / "export.jsonl"
    code, stdout, err = run(config, capsys, "export", "--output", str(out), *options)
    assert code == 0, err
    assert stdout == ""                    # the data went to the file, the summary to stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


async def test_every_message_of_the_database_is_in_the_export(tmp_path, database_url, capsys):
    corpus = corpus_files(max_size=100_000)[::4][:40]
    async with running_helpdesk(tmp_path, database_url) as desk:
        await desk.send_smtp(with_attachment("invoice@customer.example"))
        await desk.send_smtp(mail("Printer on fire", message_id="fire@customer.example"))
        await desk.settle()
        [fire] = [t for t in desk.tickets() if t["subject"] == "Printer on fire"]
        await desk.send_smtp(mail(f"Re: [Acme #{fire['number']}] Printer on fire", "Still burning.",
                                  message_id="fire2@customer.example"))
        envelope = Envelope(mail_from="someone@corpus.example", rcpt_tos=(SUPPORT,),
                            received_via="ingest")
        for path in corpus:                # as `maild ingest` takes them: no SMTP line limit
            await desk.daemon.submit(path.read_bytes(), envelope)
        await desk.settle()
        config = desk.config

    exported = export(config, capsys, tmp_path, "--with-raw")
    assert capsys.readouterr().err == ""

    db = open_database(database_url)
    try:
        assert [t["number"] for t in exported] == [t.number for t in Ticket.select().order_by(Ticket.id)]
        # every message, on its ticket, in order, with its raw bytes (inbound) or none (outbound)
        in_db: dict[int, list] = {}
        for m in Message.select(Message, Ticket).join(Ticket).order_by(Message.id):
            in_db.setdefault(m.ticket.number, []).append(
                (m.direction, m.kind, m.message_id, m.subject, m.text,
                 bytes(m.raw) if m.raw is not None else None))
        in_export = {t["number"]: [(m["direction"], m["kind"], m["message_id"], m["subject"],
                                    m["text"], m["raw_base64"] and base64.b64decode(m["raw_base64"]))
                                   for m in t["messages"]] for t in exported}
        assert in_export == in_db
        assert sum(map(len, in_export.values())) == Message.select().count() > 40
        assert all(m["raw_base64"] is None for t in exported for m in t["messages"]
                   if m["direction"] == "out")
        attachments = sorted((r.message.id, r.filename, r.attachment.size, r.attachment.sha256)
                             for r in MessageAttachment.select(MessageAttachment, Attachment, Message)
                             .join(Attachment).switch(MessageAttachment).join(Message))
        ids = iter(m.id for m in Message.select(Message.id).order_by(Message.ticket, Message.id))
        assert sorted((message_pk, a["filename"], a["size"], a["sha256"])
                      for t in exported for m, message_pk in zip(t["messages"], ids)
                      for a in m["attachments"]) == attachments
        assert attachments
        assert Event.select().count() == sum(len(t["events"]) for t in exported)
        outbox = {r.message_id for r in Outbox.select()}
        assert outbox <= {m["message_id"] for t in exported for m in t["messages"]}
    finally:
        db.close()

    invoice = next(t for t in exported if t["subject"] == "Invoice attached")
    [message, ack] = invoice["messages"]
    assert message["attachments"] == [{"filename": "invoice.pdf", "content_type": "application/pdf",
                                       "size": len(PDF),
                                       "sha256": __import__("hashlib").sha256(PDF).hexdigest()}]
    assert "Grüße" in message["text"]
    assert message["delivered_to"][0]["recipient"] == SUPPORT
    assert message["delivered_to"][0]["via"] == "smtp"
    assert (ack["direction"], ack["kind"], ack["to"]) == ("out", "ack", "dave@customer.example")
    assert invoice["requester"] == {"address": "dave@customer.example", "name": "Dave"}
    fire_export = next(t for t in exported if t["number"] == fire["number"])
    assert [m["message_id"] for m in fire_export["messages"] if m["direction"] == "in"] == [
        "fire@customer.example", "fire2@customer.example"]
    # without --with-raw no raw bytes at all
    assert all("raw_base64" not in m for t in export(config, capsys, tmp_path) for m in t["messages"])


def test_since_and_until_pick_tickets_by_their_last_change(tmp_path, database_url, capsys):
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path}/out", rules=RULES)
    assert run(config, capsys, "init")[0] == 0
    db = open_database(database_url)
    numbers = a_week_of_tickets(db, load_rules(tmp_path / "rules.yaml"))
    db.close()
    updated = {t["number"]: t["updated_at"] for t in export(config, capsys, tmp_path)}
    assert set(updated) == set(numbers.values())
    # t6 closed on Thursday the 26th; t3 last changed Tuesday 10:00 UTC, t4 and t5 on Tuesday too
    since_thursday = export(config, capsys, tmp_path, "--since", "2026-11-26")
    assert [t["number"] for t in since_thursday] == [numbers["t6"]]
    tuesday = export(config, capsys, tmp_path, "--since", "2026-11-24", "--until", "2026-11-25")
    assert {t["number"] for t in tuesday} == {numbers["t3"], numbers["t4"], numbers["t5"]}
    # an ISO time with an offset: 10:00+01:00 is 09:00 UTC, so t3 (10:00 UTC) is still after it
    late_tuesday = export(config, capsys, tmp_path, "--since", "2026-11-24T10:00:00+01:00",
                          "--until", "2026-11-25")
    assert {t["number"] for t in late_tuesday} == {numbers["t3"], numbers["t4"], numbers["t5"]}
    assert export(config, capsys, tmp_path, "--until", "2026-11-23") == []
    for t in tuesday:
        assert "2026-11-24T00:00:00Z" <= t["updated_at"] < "2026-11-25T00:00:00Z"


def test_the_sla_state_of_each_clock_is_exported(tmp_path, db):
    (tmp_path / "rules.yaml").write_text(RULES)
    numbers = a_week_of_tickets(db, load_rules(tmp_path / "rules.yaml"))
    by_number = {t["number"]: t for t in export_tickets(now=NOW)}
    clocks = {name: {c["clock"]: c for c in by_number[n]["sla"]} for name, n in numbers.items()}
    t1, t2 = clocks["t1"], clocks["t2"]
    assert (t1["first_response"]["state"], t1["first_response"]["breached"]) == ("stopped", False)
    assert (t2["first_response"]["state"], t2["first_response"]["breached"]) == ("stopped", True)
    assert (t2["resolution"]["used_s"], t2["resolution"]["budget_s"]) == (6 * 3600, 4 * 3600)
    t4 = clocks["t4"]["resolution"]             # urgent, nobody answered: long overdue at NOW
    assert (t4["state"], t4["breached"], t4["due_at"]) == ("running", True, "2026-11-24T13:00:00Z")
    assert clocks["t5"]["resolution"]["state"] == "paused"      # pending: waits on the customer
    assert by_number[numbers["t5"]]["status"] == "pending"
    assert by_number[numbers["t1"]]["sla_policy"] == "standard"
    # the same tickets a day before t4's deadline: not breached yet
    earlier = {t["number"]: t for t in export_tickets(now=datetime(2026, 11, 24, 12))}
    assert {c["clock"]: c["breached"] for c in earlier[numbers["t4"]]["sla"]}["resolution"] is False


def test_a_bad_date_or_an_unwritable_output_is_a_clear_error(tmp_path, database_url, capsys):
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path}/out")
    assert run(config, capsys, "init")[0] == 0
    code, out, err = run(config, capsys, "export", "--since", "last tuesday")
    assert (code, out) == (64, "")
    assert "--since 'last tuesday': expected a date like 2026-11-01" in err
    code, _, err = run(config, capsys, "export", "--output", str(tmp_path / "no" / "such" / "x.jsonl"))
    assert code == 1 and "No such file or directory" in err
    assert not (tmp_path / "no").exists()
    code, out, err = run(config, capsys, "export")
    assert (code, out, err) == (0, "", "maild export: 0 ticket(s), 0 message(s)\n")


TEXT = ("Hello,\n\nthe printer in room 4.12 shows error 0x4F again after the update. "
        "We restarted it twice; the queue still holds 37 jobs.\n\nRegards\n") * 10   # ~1.3 KB


def many_tickets(n: int, start: datetime) -> None:
    """`n` tickets, each with a customer message (an attachment) and an acknowledgement, a
    tag and an event, written with bulk inserts (fast on both databases); ticket i was
    last changed i minutes after `start`."""
    db = Ticket._meta.database
    with db.atomic():
        contact = Contact.create(address="carol@customer.example", name="Carol", created_at=start)
        pdf = Attachment.create(sha256="0" * 64, content_type="application/pdf", size=3, data=b"pdf")
        for chunk in range(0, n, 500):
            numbers = range(chunk + 1, min(chunk + 500, n) + 1)
            Ticket.insert_many([{"number": i, "subject": f"Printer {i}", "requester": contact.id,
                                 "created_at": start, "updated_at": start + timedelta(minutes=i)}
                                for i in numbers]).execute()
            ids = {t.number: t.id for t in Ticket.select(Ticket.id, Ticket.number)
                   .where(Ticket.number.in_(list(numbers)))}
            rows = []
            for i in numbers:
                for direction, kind in (("in", "normal"), ("out", "ack")):
                    rows.append({"ticket": ids[i], "direction": direction, "kind": kind,
                                 "message_key": f"mid:{direction}{i}@x", "message_id": f"{direction}{i}@x",
                                 "subject": f"Printer {i}", "text": TEXT, "visible_text": TEXT,
                                 "raw": TEXT.encode() if direction == "in" else None,
                                 "created_at": start})
            Message.insert_many(rows).execute()
            inbound = Message.select(Message.id).where(Message.direction == "in",
                                                       Message.ticket.in_(list(ids.values())))
            MessageAttachment.insert_many([{"message": m.id, "attachment": pdf.id, "filename": "a.pdf"}
                                           for m in inbound]).execute()
            TicketTag.insert_many([{"ticket": i, "tag": "printer"} for i in ids.values()]).execute()
            Event.insert_many([{"ticket": i, "at": start, "kind": "created"} for i in ids.values()]).execute()


def test_memory_stays_flat_however_many_tickets_are_exported(tmp_path, database_url, capsys):
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path}/out")
    assert run(config, capsys, "init")[0] == 0
    start = datetime(2026, 1, 1)
    db = open_database(database_url)
    many_tickets(5000, start)
    db.close()

    def peak_of_export(until: datetime) -> tuple[int, int, int]:
        out = tmp_path / "export.jsonl"
        tracemalloc.start()
        try:
            code, _, err = run(config, capsys, "export", "--output", str(out), "--until",
                               until.isoformat())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert code == 0, err
        with open(out, "rb") as f:
            lines = sum(1 for _ in f)
        return peak, out.stat().st_size, lines

    small_peak, small_size, small_lines = peak_of_export(start + timedelta(minutes=500, seconds=1))
    peak, size, lines = peak_of_export(start + timedelta(days=30))
    assert (small_lines, lines) == (500, 5000)
    print(f"\nexport peak memory: {small_peak / 1e6:.1f} MB for 500 tickets "
          f"({small_size / 1e6:.1f} MB written), {peak / 1e6:.1f} MB for 5,000 "
          f"({size / 1e6:.1f} MB written)")
    assert peak < 1.5 * small_peak            # ten times the tickets, about the same memory
    assert peak < size / 4                    # far less than what was written
