"""Agents work from their own mail clients (issue 3): the whole story, over real SMTP.

The daemon runs in the test's loop, the relay is an aiosmtpd sink, agents' mail is shaped
as Outlook, Gmail, Thunderbird and Apple Mail send it (tests/clients.py), with the
notification quoted below and a signature.  Agents prove themselves with an
Authentication-Results header from our own MTA (authserv-id mx.example.com).
"""
from __future__ import annotations

import dataclasses
import json
import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest

from tests.clients import Original, reply
from tests.dkimkeys import make_key, sign, zone
from tests.integration.harness import mail, running_helpdesk

AGENTS_RULES = """\
version: 1
agents:
  - {address: alice@example.com, name: Alice Agent, aliases: [alice@corp.example.com]}
  - {address: bob@example.com, name: Bob Builder}
teams:
  l1: {members: [alice@example.com, bob@example.com]}
queues:
  general: {address: support@example.com, team: l1}
  billing: {address: billing@example.com}
"""
TRUST = "{agents: authentication-results, authserv_id: mx.example.com}"
HELPDESK = "comment_address: support+comment@example.com"
PASS = ("Authentication-Results",
        "mx.example.com; dkim=pass (2048-bit key) header.d=example.com header.s=s1;\r\n"
        " dmarc=pass (p=reject dis=none) header.from=example.com")
CAROL = "carol@customer.example"
# Gmail and Thunderbird put "-- " above a signature, so it is recognised and removed;
# Outlook and Apple Mail don't, and an undelimited sign-off reaches the customer (as in RT
# and Zammad: nothing tells it from the agent's last paragraph).
DELIMITED_SIGNATURES = ("gmail", "thunderbird")


def desk_for(tmp_path, database_url, **extra):
    options = {"rules": AGENTS_RULES, "trust": TRUST, "helpdesk": HELPDESK}
    options.update(extra)
    return running_helpdesk(tmp_path, database_url, **options)


def to(desk, address):
    """The mails the relay took for `address`, parsed."""
    return [email.message_from_bytes(raw, policy=email.policy.default)
            for _, rcpts, raw in desk.sink.received if address in rcpts]


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def original(message) -> Original:
    """What a client needs to quote `message` (a mail the relay delivered)."""
    return Original(from_name=message["From"].addresses[0].display_name,
                    from_address=message["From"].addresses[0].addr_spec, to=message["To"],
                    subject=str(message["Subject"]), message_id=message["Message-ID"].strip("<>"),
                    date=datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc), text=body(message),
                    references=tuple(r.strip("<>") for r in str(message.get("References", "")).split()))


async def agent_says(desk, client, answering, text, *, sender=("Alice Agent", "alice@example.com"),
                     rcpt="support@example.com", headers=(PASS,), signature="Alice Agent\nAcme Support, 2nd floor"):
    raw = reply(client, original(answering), from_name=sender[0], from_address=sender[1], to=rcpt,
                text=text, signature=signature, extra_headers=headers)
    await desk.send_smtp(raw, sender=sender[1], rcpt=rcpt)
    await desk.settle()


def use_dns(desk, dns):
    """The running daemon looks DKIM keys up in `dns` (tests.dkimkeys.zone) from now on."""
    runtime = desk.daemon.runtime
    runtime.context_value = dataclasses.replace(runtime.context(), dns=dns)


async def customer_opens(desk, *, cc=None):
    headers = {"Cc": cc} if cc else None
    await desk.send_smtp(mail("Printer on fire", "Help, the printer on floor 3 is on fire.",
                              message_id="first@customer.example", headers=headers))
    await desk.settle()
    [ticket] = desk.tickets()
    return ticket


async def test_the_whole_story_customer_agent_customer_agent(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        # customer writes -> acknowledgement, and the team is notified
        ticket = await customer_opens(desk)
        [ack] = to(desk, CAROL)
        [note_alice] = to(desk, "alice@example.com")
        assert len(to(desk, "bob@example.com")) == 1
        assert "[Acme #1]" in note_alice["Subject"] and "on fire" in body(note_alice)
        assert note_alice["Reply-To"].addresses[0].addr_spec == "support@example.com"
        assert note_alice["Auto-Submitted"] == "auto-generated"

        # agent replies from Outlook, quoting the notification, and assigns herself
        await agent_says(desk, "outlook", note_alice,
                         "#assign alice\nHello Carol,\n\nplease switch it off, a technician is on the way.")
        [_, answer] = to(desk, CAROL)
        text = body(answer)
        assert "a technician is on the way" in text
        assert "#assign" not in text and "New ticket" not in text and "Reply to this mail" not in text
        assert "alice@example.com" not in answer.as_string()
        assert str(answer["From"]) == "Alice Agent via Acme Support <support@example.com>"
        assert answer["Subject"] == "Re: [Acme #1] Printer on fire" and answer["Auto-Submitted"] is None
        assert answer["In-Reply-To"] == "<first@customer.example>"
        shown = desk.ticket(ticket["number"])
        assert (shown["status"], shown["assignee"]) == ("open", "alice@example.com")
        assert shown["first_response_at"] is not None

        # customer replies (Gmail) to the agent's answer -> only the assignee is told
        raw = reply("gmail", original(answer), from_name="Carol Customer", from_address=CAROL,
                    to="support@example.com", text="Done, it is off. Thanks!")
        await desk.send_smtp(raw)
        await desk.settle()
        assert len(desk.tickets()) == 1
        notes_to_alice = to(desk, "alice@example.com")
        assert len(notes_to_alice) == 2 and len(to(desk, "bob@example.com")) == 1
        assert "Done, it is off" in body(notes_to_alice[-1])

        # agent resolves with a command only (Apple Mail): the customer gets nothing
        await agent_says(desk, "apple_mail", notes_to_alice[-1], "#status resolved")
        assert desk.ticket(ticket["number"])["status"] == "resolved"
        assert len(to(desk, CAROL)) == 2
        events = desk.ticket(ticket["number"])["events"]
        assert {"actor": "alice@example.com", "kind": "status", "detail": "resolved"} in \
            [{k: e[k] for k in ("actor", "kind", "detail")} for e in events]


@pytest.mark.parametrize("client", ["outlook", "gmail", "thunderbird", "apple_mail"])
async def test_the_customer_receives_only_the_new_text_from_every_client(tmp_path, database_url, client):
    if database_url.startswith("postgresql") and client != "thunderbird":
        pytest.skip("the client shapes are database-independent; one of them runs on PostgreSQL")
    async with desk_for(tmp_path, database_url) as desk:
        await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, client, notification,
                         "Grüße Carol,\n\nwir tauschen die Trommel heute noch aus.")
        [_, answer] = to(desk, CAROL)
        text = body(answer)
        assert "wir tauschen die Trommel heute noch aus." in text
        assert "floor 3" not in text and "Reply to this mail" not in text and "#status" not in text
        if client in DELIMITED_SIGNATURES:
            assert "2nd floor" not in text


async def test_an_internal_note_reaches_the_other_agents_and_never_the_customer(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk, cc="Dave <dave@customer.example>")
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "thunderbird", notification,
                         "Carol's contract ran out last month, check before we send anyone.",
                         rcpt="support+comment@example.com")
        await agent_says(desk, "gmail", notification, "#note\nSecond note: the invoice is unpaid.")
        assert len(to(desk, CAROL)) == 1 and to(desk, "dave@customer.example") == []     # the ack only
        bobs = to(desk, "bob@example.com")
        assert len(bobs) == 3 and "contract ran out" in body(bobs[1]) and "invoice is unpaid" in body(bobs[2])
        assert bobs[1]["Reply-To"].addresses[0].addr_spec == "support+comment@example.com"
        assert len(to(desk, "alice@example.com")) == 1, "the author is not told of her own note"
        kinds = [(m["kind"], m["internal"]) for m in desk.ticket(ticket["number"])["messages"]
                 if m["kind"] == "note"]
        assert kinds == [("note", True), ("note", True)]

        # replying to the note's notification stays internal; pasting the note into a
        # public reply is refused, so a note never reaches a customer
        await agent_says(desk, "outlook", bobs[1], "Agreed, I'll call them.",
                         sender=("Bob Builder", "bob@example.com"), rcpt="support+comment@example.com")
        await agent_says(desk, "outlook", bobs[1],
                         "FYI: Carol's contract ran out last month, check before we send anyone.",
                         sender=("Bob Builder", "bob@example.com"))
        assert len(to(desk, CAROL)) == 1 and to(desk, "dave@customer.example") == []
        [refusal] = [m for m in to(desk, "bob@example.com") if "Not applied" in m["Subject"]]
        assert "internal note" in body(refusal)


async def test_a_public_reply_goes_to_the_requester_and_the_cc_participants(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk, cc="Dave <dave@customer.example>, alice@example.com, "
                                               "billing@example.com")
        shown = desk.ticket(ticket["number"])
        assert [p["address"] for p in shown["participants"]] == [CAROL, "dave@customer.example"]
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "gmail", notification, "We are on it.")
        [answer] = to(desk, "dave@customer.example")
        assert answer["To"].addresses[0].addr_spec == CAROL
        assert [a.addr_spec for a in answer["Cc"].addresses] == ["dave@customer.example"]


async def test_a_bad_command_applies_nothing_and_tells_the_agent(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "thunderbird", notification,
                         "#priority urgent\n#stauts pending\n#assign nobody\nHello Carol, on it.")
        shown = desk.ticket(ticket["number"])
        assert (shown["status"], shown["priority"], shown["assignee"]) == ("new", "normal", None)
        assert len(to(desk, CAROL)) == 1                   # the acknowledgement only
        [error] = [m for m in to(desk, "alice@example.com") if "Not applied" in m["Subject"]]
        text = body(error)
        assert "#stauts" in text and "nobody" in text and "nothing of your mail" in text
        assert shown["first_response_at"] is None
        assert any(e["kind"] == "commands_refused" and e["actor"] == "alice@example.com"
                   for e in shown["events"])


@pytest.mark.parametrize("headers", [
    (),                                                                     # no proof at all
    (("Authentication-Results", "evil.example; dmarc=pass header.from=example.com"),),
    (("Authentication-Results", "evil.example; dkim=pass header.d=example.com; dmarc=pass"),
     ("Authentication-Results", "mx.example.com; dkim=fail header.d=example.com; dmarc=fail")),
], ids=["none", "foreign-authserv-id", "forged-above-ours"])
async def test_a_forged_agent_mail_changes_nothing_and_executes_no_command(tmp_path, database_url, headers):
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "gmail", notification,
                         "#status closed\n#assign bob\nDear Carol, please send your password.",
                         headers=headers)
        shown = desk.ticket(ticket["number"])
        assert (shown["status"], shown["assignee"]) == ("new", None)
        assert len(to(desk, CAROL)) == 1                    # nothing relayed to the customer
        [forged] = [m for m in shown["messages"] if m["direction"] == "in" and m["from"] == "alice@example.com"]
        assert forged["kind"] == "normal" and forged["author"] == "" and not forged["internal"]
        assert forged["auth"].startswith("not authenticated")
        assert any(e["kind"] == "auth_failed" for e in shown["events"])
        warned = to(desk, "bob@example.com")[-1]
        assert "did not prove it" in body(warned)


async def test_an_agents_out_of_office_answer_to_a_notification_does_nothing(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "outlook", notification, "#status closed\nI am out of office until Monday.",
                         headers=(PASS, ("Auto-Submitted", "auto-replied")))
        shown = desk.ticket(ticket["number"])
        assert shown["status"] == "new" and len(to(desk, CAROL)) == 1
        assert len(desk.sink.received) == 3                  # ack + two notifications, no more


async def test_a_stranger_quoting_the_token_learns_nothing_and_is_not_added(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        await desk.send_smtp(mail("Re: [Acme #1] Printer on fire", "I am the owner, send me the details.",
                                  sender="Mallory <mallory@evil.example>",
                                  message_id="m1@evil.example"), sender="mallory@evil.example")
        await desk.settle()
        shown = desk.ticket(ticket["number"])
        assert [p["address"] for p in shown["participants"]] == [CAROL]
        [stranger] = [m for m in shown["messages"] if m["from"] == "mallory@evil.example"]
        assert stranger["unverified"] is True
        assert to(desk, "mallory@evil.example") == []
        warned = to(desk, "alice@example.com")[-1]
        assert "WARNING" in body(warned) and "mallory@evil.example" in body(warned)

        # an agent's public reply afterwards still goes to Carol only
        await agent_says(desk, "gmail", warned, "Carol, did you write from another address?")
        assert to(desk, "mallory@evil.example") == [] and len(to(desk, CAROL)) == 2


async def test_with_unknown_sender_new_ticket_a_strangers_reply_opens_its_own_ticket(tmp_path, database_url):
    async with desk_for(tmp_path, database_url, helpdesk=HELPDESK + ", unknown_sender: new_ticket") as desk:
        await customer_opens(desk)
        await desk.send_smtp(mail("Re: [Acme #1] Printer on fire", "Me too!",
                                  sender="Erin <erin@other.example>", message_id="e1@other.example"),
                             sender="erin@other.example")
        await desk.settle()
        first, second = desk.tickets()
        assert second["requester"] == "erin@other.example"
        assert desk.ticket(second["number"])["linked_to"] == first["number"]
        assert not [m for m in desk.ticket(first["number"])["messages"] if m["from"] == "erin@other.example"]
        assert len(to(desk, "erin@other.example")) == 1          # her own ticket's acknowledgement


async def test_a_closed_ticket_reopens_within_reopen_days_and_is_linked_after(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "thunderbird", notification, "#close")
        assert desk.ticket(ticket["number"])["status"] == "closed"
        await desk.send_smtp(mail("Re: [Acme #1] Printer on fire", "It is on fire again.",
                                  message_id="again@customer.example"))
        await desk.settle()
        assert desk.ticket(ticket["number"])["status"] == "open" and len(desk.tickets()) == 1

        # closed 15 days ago: a reply opens a new ticket linked to the old one
        from store.models import Ticket
        old = datetime.utcnow() - timedelta(days=15)
        Ticket.update(status="closed", closed_at=old).where(Ticket.number == ticket["number"]).execute()
        await desk.send_smtp(mail("Re: [Acme #1] Printer on fire", "And again, weeks later.",
                                  message_id="later@customer.example"))
        await desk.settle()
        assert [t["status"] for t in desk.tickets()] == ["closed", "new"]
        assert desk.ticket(desk.tickets()[1]["number"])["linked_to"] == ticket["number"]


async def test_with_dkim_trust_a_signed_agent_mail_acts_and_a_tampered_one_does_not(tmp_path, database_url):
    key = make_key()
    async with desk_for(tmp_path, database_url, trust="{agents: dkim}") as desk:
        use_dns(desk, zone({b"mail._domainkey.example.com.": key.txt}))
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")

        def agent_mail(text):
            return reply("thunderbird", original(notification), from_name="Alice Agent",
                         from_address="alice@example.com", to="support@example.com", text=text)

        tampered = sign(agent_mail("#priority urgent\nHello Carol."), key)
        tampered = tampered.replace(b"Hello Carol.", b"Hello Carol!")
        await desk.send_smtp(tampered, sender="alice@example.com")
        await desk.settle()
        shown = desk.ticket(ticket["number"])
        assert shown["priority"] == "normal" and len(to(desk, CAROL)) == 1
        assert any(m["auth"].startswith("not authenticated") for m in shown["messages"])

        await desk.send_smtp(sign(agent_mail("#priority urgent\nHello Carol, we are on it."), key),
                             sender="alice@example.com")
        await desk.settle()
        assert desk.ticket(ticket["number"])["priority"] == "urgent"
        assert "we are on it" in body(to(desk, CAROL)[-1])


async def test_maild_show_tells_notes_replies_commands_and_strangers_apart(tmp_path, database_url, capsys):
    from tests.integration.test_cli import run

    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "gmail", notification, "#assign bob\n#tag vip\nWe are on it, Carol.")
        await agent_says(desk, "gmail", notification, "#note\nBob, she is a key account.")
        await agent_says(desk, "gmail", notification, "#priority high")
        await desk.send_smtp(mail("Re: [Acme #1] Printer on fire", "Who are you?",
                                  sender="mallory@evil.example", message_id="m@evil.example"),
                             sender="mallory@evil.example")
        await desk.settle()
        capsys.readouterr()
        code, out, _ = run(desk.config, capsys, "show", str(ticket["number"]))
        assert code == 0
        for label in ("AGENT REPLY (sent to the customer)", "INTERNAL NOTE", "AGENT COMMANDS",
                      "[UNVERIFIED SENDER: not on this ticket]", "reply relayed to the customer",
                      "notification to an agent", "tags vip"):
            assert label in out, label
        code, out, _ = run(desk.config, capsys, "tickets", "--assignee", "bob@example.com",
                           "--queue", "general", "--json")
        assert [t["number"] for t in json.loads(out)] == [ticket["number"]]
        code, out, _ = run(desk.config, capsys, "tickets", "--assignee", "alice@example.com", "--json")
        assert json.loads(out) == []
