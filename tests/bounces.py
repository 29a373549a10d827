"""Bounces as real MTAs write them, built with the stdlib `email` package for tests.

    raw = postfix_dsn(returned=original_bytes, recipient="nosuchuser@customer.example",
                      to="support+bounces-42@example.com")

`postfix_dsn` follows what Postfix's bounce(8) sends: multipart/report with a
human-readable notification, a message/delivery-status part (Reporting-MTA, then one
block per recipient with Final-Recipient, Original-Recipient, Action, Status, Remote-MTA,
Diagnostic-Code) and the returned mail's headers as text/rfc822-headers.
"""
from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText


def postfix_dsn(returned: bytes, *, recipient: str, to: str, action: str = "failed",
                status: str = "5.1.1", message_id: str = "<20261121100502.4F1A2C0@mx.customer.example>",
                reporting_mta: str = "mx.customer.example",
                diagnostic: str | None = None) -> bytes:
    diagnostic = diagnostic or (f"smtp; 550 {status} <{recipient}>: Recipient address rejected: "
                                "User unknown in virtual mailbox table")
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.customer.example (Mail Delivery System)"
    report["To"] = to
    report["Subject"] = ("Delayed Mail (still being retried)" if action == "delayed"
                         else "Undelivered Mail Returned to Sender")
    report["Date"] = "Sat, 21 Nov 2026 10:05:02 +0000"
    report["Message-ID"] = message_id
    report["Auto-Submitted"] = "auto-replied"
    report.attach(MIMEText(
        f"This is the mail system at host {reporting_mta}.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        f"<{recipient}>: host {reporting_mta}[192.0.2.25] said: "
        f"{diagnostic.partition('; ')[2]} (in reply to RCPT TO command)\n"))
    status_part = Message()
    status_part["Content-Type"] = "message/delivery-status"
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    per_message["X-Postfix-Queue-ID"] = "4F1A2C0"
    per_message["Arrival-Date"] = "Sat, 21 Nov 2026 10:05:01 +0000 (UTC)"
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Original-Recipient"] = f"rfc822;{recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Remote-MTA"] = f"dns; {reporting_mta}"
    per_recipient["Diagnostic-Code"] = diagnostic
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    headers = MIMEBase("text", "rfc822-headers")
    head = returned.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers.set_payload(head.decode("utf-8", "replace").replace("\r\n", "\n") + "\n")
    headers["Content-Description"] = "Undelivered Message Headers"
    report.attach(headers)
    return report.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))


def as_message(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)
