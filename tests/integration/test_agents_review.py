"""Agents by mail (issue 3), as an attacker and a demanding admin would try it: notes that
must stay internal on every path, our own addresses on a ticket, forged mail from the
assignee, a pending ticket the customer answers, automatic mail under `new_ticket`.

Real SMTP through the harness, the relay an aiosmtpd sink (see test_agents.py).
"""
from __future__ import annotations


import aiosmtplib

from tests.clients import reply
from tests.dkimkeys import make_key, sign, zone
from tests.integration.harness import mail
from tests.integration.test_agents import (CAROL, HELPDESK, PASS, agent_says, body, customer_opens,
                                           desk_for, original, to, use_dns)

SECRET = "Her contract ran out last month, do not send a technician."


async def test_a_note_sent_to_the_comment_and_the_public_address_at_once_stays_internal(
        tmp_path, database_url):
    """An agent answers a notification (To: support@) and adds the comment address as
    well, or a reply-all yields both: the MTA hands both recipients over in one
    transaction, public address first.  A note must not depend on that order."""
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk, cc="Dave <dave@customer.example>")
        [notification] = to(desk, "alice@example.com")
        raw = reply("thunderbird", original(notification), from_name="Alice Agent",
                    from_address="alice@example.com", to="support@example.com",
                    cc=("support+comment@example.com",), text=SECRET,
                    signature="Alice Agent", extra_headers=(PASS,))
        await aiosmtplib.send(raw, sender="alice@example.com", hostname="127.0.0.1",
                              recipients=["support@example.com", "support+comment@example.com"],
                              port=desk.smtp_port, timeout=10)
        await desk.settle()
        assert len(to(desk, CAROL)) == 1, "the acknowledgement only"
        assert to(desk, "dave@customer.example") == []
        [stored] = [m for m in desk.ticket(ticket["number"])["messages"]
                    if m["from"] == "alice@example.com"]
        assert (stored["kind"], stored["internal"]) == ("note", True)
        assert SECRET in body(to(desk, "bob@example.com")[-1])


async def test_answering_the_error_about_a_refused_note_keeps_the_note_internal(tmp_path, database_url):
    """A note to the comment address with a typo in a command is refused; the error says
    "correct it and send the whole mail again".  The agent answers the error mail with
    a plain Reply: that answer is still a note, never a reply to the customer."""
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "gmail", notification, "#assign nobody\n" + SECRET,
                         rcpt="support+comment@example.com")
        [error] = [m for m in to(desk, "alice@example.com") if "Not applied" in m["Subject"]]
        answer_to = (error["Reply-To"] or error["From"]).addresses[0].addr_spec
        await agent_says(desk, "gmail", error, "#assign bob\n" + SECRET, rcpt=answer_to)
        assert len(to(desk, CAROL)) == 1, "the acknowledgement only"
        shown = desk.ticket(ticket["number"])
        assert shown["assignee"] == "bob@example.com"
        assert [m["kind"] for m in shown["messages"] if m["from"] == "alice@example.com"] == \
            ["refused", "note"]


async def test_our_own_plus_addresses_never_become_participants(tmp_path, database_url):
    """support+urgent@ is ours (support@ with a +detail): Cc'd on the first mail it must
    not become a participant, or every public reply is Cc'd back to us."""
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk, cc="Support <support+urgent@example.com>, "
                                               "dave@customer.example, alice+desk@example.com")
        shown = desk.ticket(ticket["number"])
        assert [p["address"] for p in shown["participants"]] == [CAROL, "dave@customer.example"]
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "gmail", notification, "We are on it.")
        [answer] = to(desk, "dave@customer.example")
        assert [a.addr_spec for a in answer["Cc"].addresses] == ["dave@customer.example"]
        assert not [rcpts for _, rcpts, _ in desk.sink.received
                    if any(r.endswith("@example.com") and "+" in r for r in rcpts)]


async def test_a_forged_mail_from_the_assignees_address_is_not_kept_from_everyone(tmp_path, database_url):
    """The ticket is Alice's.  A mail from her address that fails authentication (forged,
    or her MTA's DKIM broke) acts as nothing; the warning must reach someone — the team —
    not be dropped because the assignee is its (claimed) sender."""
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "gmail", notification, "#assign alice")
        assert desk.ticket(ticket["number"])["assignee"] == "alice@example.com"
        before = len(to(desk, "bob@example.com"))
        await agent_says(desk, "gmail", notification,
                         "#status closed\nDear Carol, please send us your password.", headers=())
        shown = desk.ticket(ticket["number"])
        assert shown["status"] == "new" and len(to(desk, CAROL)) == 1
        warned = to(desk, "bob@example.com")[before:]
        assert len(warned) == 1 and "did not prove it" in body(warned[0])


async def test_a_customer_reply_to_a_pending_ticket_opens_it(tmp_path, database_url):
    """`#status pending` waits on the customer (DESIGN §7); their answer ends the wait."""
    async with desk_for(tmp_path, database_url) as desk:
        ticket = await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "gmail", notification, "#status pending\nWhich model is it?")
        assert desk.ticket(ticket["number"])["status"] == "pending"
        await desk.send_smtp(mail("Re: [Acme #1] Printer on fire", "An LX-300.",
                                  message_id="model@customer.example"))
        await desk.settle()
        shown = desk.ticket(ticket["number"])
        assert shown["status"] == "open"
        # a stranger's mail does not end the wait
        await agent_says(desk, "gmail", notification, "#status pending")
        await desk.send_smtp(mail("Re: [Acme #1] Printer on fire", "hello",
                                  sender="mallory@evil.example", message_id="m@evil.example"),
                             sender="mallory@evil.example")
        await desk.settle()
        assert desk.ticket(ticket["number"])["status"] == "pending"


async def test_with_unknown_sender_new_ticket_automatic_mail_stays_on_its_ticket(tmp_path, database_url):
    """`unknown_sender: new_ticket` is for people.  An auto-reply that answers a ticket's
    mail from an address not on it (a colleague's out-of-office, a forwarding target)
    belongs to that ticket; it must not open tickets nobody is told about."""
    async with desk_for(tmp_path, database_url, helpdesk=HELPDESK + ", unknown_sender: new_ticket") as desk:
        ticket = await customer_opens(desk)
        [ack] = to(desk, CAROL)
        await desk.send_smtp(mail(f"Automatic reply: {ack['Subject']}", "I am away until Monday.",
                                  sender="Frank <frank@customer.example>", message_id="ooo@customer.example",
                                  headers={"Auto-Submitted": "auto-replied",
                                           "In-Reply-To": ack["Message-ID"]}),
                             sender="frank@customer.example")
        await desk.settle()
        assert len(desk.tickets()) == 1
        [ooo] = [m for m in desk.ticket(ticket["number"])["messages"]
                 if m["from"] == "frank@customer.example"]
        assert ooo["unverified"] is True


async def test_a_replayed_signed_agent_mail_to_a_third_party_does_not_act_on_a_ticket(
        tmp_path, database_url):
    key = make_key()
    async with desk_for(tmp_path, database_url, trust="{agents: dkim}") as desk:
        use_dns(desk, zone({b"mail._domainkey.example.com.": key.txt}))
        ticket = await customer_opens(desk)
        # Alice writes to Mallory, a vendor, directly; her MTA signs it (From To Subject ...)
        genuine = sign(mail("Our call", "Agreed, we cancel the contract today.",
                            sender="Alice Agent <alice@example.com>", to="mallory@evil.example",
                            message_id="call@example.com"), key)
        # Mallory adds a header the signature does not cover and sends it to the help desk
        replayed = b"References: <maild.1.abcdef@example.com>\r\n" + genuine
        await desk.send_smtp(replayed, sender="mallory@evil.example")
        await desk.settle()
        assert len(to(desk, CAROL)) == 1, "the acknowledgement only"
        [stored] = [m for m in desk.ticket(ticket["number"])["messages"]
                    if m["from"] == "alice@example.com"]
        assert stored["author"] == "" and stored["unverified"] is True


async def test_an_agent_mail_delivered_twice_or_to_two_queues_is_relayed_once(tmp_path, database_url):
    async with desk_for(tmp_path, database_url) as desk:
        await customer_opens(desk)
        [notification] = to(desk, "alice@example.com")
        raw = reply("outlook", original(notification), from_name="Alice Agent",
                    from_address="alice@example.com", to="support@example.com",
                    text="#tag vip\nWe are on it.", extra_headers=(PASS,))
        for rcpt in ("support@example.com", "support@example.com", "billing@example.com"):
            await desk.send_smtp(raw, sender="alice@example.com", rcpt=rcpt)
            await desk.settle()
        assert len(to(desk, CAROL)) == 2, "the acknowledgement and one reply"
        events = desk.ticket(1)["events"]
        assert [e["kind"] for e in events].count("tag") == 1
