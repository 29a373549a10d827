"""parsers.dsn: what a bounce says, from RFC 3464 reports and the common non-standard forms."""
from __future__ import annotations

import collections

import pytest

from parsers.dsn import FAILED, read_report, verp_outbox_id
from parsers.message import parse
from tests.bounces import postfix_dsn
from tests.parsers.corpus import corpus_files, read

ORIGINAL = (b"From: Acme Support <support@example.com>\r\nTo: nosuchuser@customer.example\r\n"
            b"Subject: [Acme #7] Printer on fire\r\nMessage-ID: <maild.7.1f2e3d@example.com>\r\n"
            b"Auto-Submitted: auto-replied\r\n\r\nThank you for writing.\r\n")


def report_of(raw: bytes, **kw):
    return read_report(parse(raw), raw, **kw)


def test_a_postfix_dsn_names_recipient_status_reason_mta_and_our_mail():
    raw = postfix_dsn(ORIGINAL, recipient="nosuchuser@customer.example",
                      to="support+bounces-42@example.com")
    report = report_of(raw, addresses=("support+bounces-42@example.com",))
    [failed] = report.failed
    assert report.format == "rfc3464" and report.reporting_mta == "mx.customer.example"
    assert (failed.final_recipient, failed.original_recipient, failed.action, failed.status) == (
        "nosuchuser@customer.example", "nosuchuser@customer.example", FAILED, "5.1.1")
    assert failed.diagnostic == ("<nosuchuser@customer.example>: Recipient address rejected: "
                                 "User unknown in virtual mailbox table")
    assert failed.remote_mta == "mx.customer.example"
    assert report.original_message_ids[0] == "maild.7.1f2e3d@example.com"
    assert report.verp_outbox_id == 42


def test_a_delay_notice_is_delayed_not_failed():
    raw = postfix_dsn(ORIGINAL, recipient="slow@customer.example", to="support@example.com",
                      action="delayed", status="4.4.1",
                      diagnostic="smtp; 421 4.4.1 connect to mx.customer.example: timed out")
    report = report_of(raw)
    assert report.failed == () and [r.status for r in report.delayed] == ["4.4.1"]


@pytest.mark.parametrize("address, expected", [
    ("support+bounces-42@example.com", 42), ("<SUPPORT+bounces-7@Example.COM>", 7),
    ("support+bounces-@example.com", None), ("support+comment@example.com", None),
    ("support@example.com", None), ("a+bounces-1@b+bounces-2@c", None), ("", None)])
def test_verp_addresses_name_an_outbox_row(address, expected):
    assert verp_outbox_id(address) == expected


def test_qmail_reports_each_recipient_with_its_own_code_and_line():
    report = report_of(read("sisimai/bsd/lhost-qmail-02.eml"))
    assert report.format == "qmail"
    assert [(r.final_recipient, r.status) for r in report.failed] == [
        ("userunknown@example.jp", "5.1.1"), ("filtered@example.jp", "5.2.1")]
    assert report.failed[0].diagnostic.startswith("Remote host said: 550 5.1.1 <userunknown@example.jp>")


def test_exim_reads_the_returned_copy_for_the_original_message_id():
    report = report_of(read("sisimai/bsd/lhost-exim-01.eml"))
    [failed] = report.failed
    assert (report.format, failed.final_recipient, failed.status) == ("exim", "kijitora@example.ed.jp", "5.7.0")
    assert "550 5.7.0" in failed.diagnostic
    assert report.original_message_ids[0] == "E1P1ce6-000Egt-GZ@e1.example.org"


def test_exim_without_a_code_gives_the_reason_under_the_address():
    [failed] = report_of(read("sisimai/bsd/lhost-exim-06.eml")).failed
    assert (failed.final_recipient, failed.status, failed.diagnostic) == (
        "kijitora@example.com", "", "retry timeout exceeded")


def test_a_gmail_delay_warning_is_delayed():
    report = report_of(read("sisimai/bsd/lhost-gmail-08.eml"))
    assert report.failed == () and [r.final_recipient for r in report.delayed] == ["kijitora@example.com"]
    assert report.delayed[0].diagnostic == "Message will be retried for 2 more day(s)"


def test_dsn_fields_written_into_plain_text_are_read_there():
    """Amazon WorkMail writes Action/Final-Recipient/Status into its text part."""
    [failed] = report_of(read("sisimai/bsd/lhost-amazonworkmail-01.eml")).failed
    assert (failed.final_recipient, failed.status) == ("kijitora@example.jp", "5.1.1")


def test_a_mail_that_reports_nothing_gives_an_empty_report():
    raw = (b"From: someone@customer.example\r\nTo: support@example.com\r\nSubject: hello\r\n\r\n"
           b"Just text, no addresses and no codes.\r\n")
    report = report_of(raw)
    assert (report.recipients, report.original_message_ids, report.verp_outbox_id) == ((), (), None)
    assert report.primary is None


def test_a_huge_bounce_is_read_without_trouble():
    lines = "".join(f"550 5.1.1 <u{i}@customer.example>: no such user\n" for i in range(40_000))
    raw = ("From: MAILER-DAEMON@mx.customer.example\r\nTo: support@example.com\r\n"
           "Subject: Undelivered Mail\r\n\r\n" + lines).encode()
    report = report_of(raw)
    assert 1 <= len(report.failed) <= 20 and report.failed[0].status == "5.1.1"


# -- the corpus: ~600 bounces from ~75 MTAs -----------------------------------------

BOUNCES = [p for p in corpus_files("sisimai/bsd") if p.name.startswith(("lhost-", "rhost-", "rfc3464-"))]
BIG_FORMATS = ("lhost-postfix", "lhost-sendmail", "lhost-exim", "lhost-qmail", "lhost-gmail",
               "lhost-office365", "lhost-exchange2007", "lhost-outlook", "lhost-amazonses",
               "lhost-yahoo", "rfc3464", "rhost-google", "rhost-microsoft", "rhost-outlook")
# These say nothing a reader could use: no recipient and no code anywhere in the bounce's
# own text (an empty delivery-status part; a Japanese-only notice; "Delivery report
# unavailable").  Listed, and checked to stay empty, so the list cannot rot.
SAY_NOTHING = {"lhost-postfix-49.eml", "lhost-postfix-50.eml", "lhost-postfix-64.eml",
               "lhost-sendmail-54.eml"}
# measured on the corpus (606 bounces) when this was written; the floors sit just below
FLOOR = {"recipient or status": 0.96, "failed or delayed recipient": 0.94, "status": 0.83,
         "original Message-ID": 0.83}


def _family(name: str) -> str:
    return name.rsplit("-", 1)[0]


def test_corpus_bounces_coverage():
    """Prints one line per bounce (`pytest -s` shows the table) and the totals."""
    found = collections.Counter()
    rows = []
    for path in BOUNCES:
        raw = path.read_bytes()
        report = report_of(raw)
        first = report.primary
        recipient = any(r.final_recipient for r in report.recipients)
        status = any(r.status for r in report.recipients)
        found["recipient or status"] += recipient or status
        found["failed or delayed recipient"] += recipient
        found["status"] += status
        found["original Message-ID"] += bool(report.original_message_ids)
        rows.append(f"{path.name:<34} {report.format or '-':<10} {len(report.recipients):>2} "
                    f"{first.action if first else '-':<8} {(first.final_recipient if first else '') or '-':<36.36} "
                    f"{(first.status if first else '') or '-':<7} ids={len(report.original_message_ids)} "
                    f"{(first.diagnostic if first else '')[:60]}")
        if _family(path.name) in BIG_FORMATS and path.name not in SAY_NOTHING:
            assert recipient or status, f"{path.name}: neither a recipient nor a status"
        if path.name in SAY_NOTHING:
            assert not (recipient or status), f"{path.name} now reports something: drop it from SAY_NOTHING"
    print("\n" + "\n".join(rows))
    for what, count in found.items():
        print(f"{what}: {count}/{len(BOUNCES)} = {count / len(BOUNCES):.3f}")
    assert len(BOUNCES) > 500
    for what, floor in FLOOR.items():
        assert found[what] / len(BOUNCES) >= floor, (what, found[what], len(BOUNCES))
