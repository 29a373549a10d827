"""The Dovecot fixture does what an IMAP client's tests will count on (stdlib imaplib only)."""
from __future__ import annotations

import imaplib
import socket
import time

import pytest


def mail(n: int) -> bytes:
    return (f"From: Ada <ada@example.com>\r\nTo: support@helpdesk.test\r\n"
            f"Subject: Printer {n}\r\nMessage-ID: <p{n}@example.com>\r\n\r\nJammed ({n}).\r\n"
            ).encode()


def test_a_fresh_account_logs_in_to_an_empty_inbox(imap_account):
    with imap_account.imap() as conn:
        assert conn.select("INBOX") == ("OK", [b"0"])
    assert imap_account.uids() == []


def test_a_wrong_password_is_refused_without_slowing_later_logins(dovecot_server, imap_account):
    conn = imaplib.IMAP4(dovecot_server.host, dovecot_server.port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.login(imap_account.address, "wrong")
    conn.logout()
    started = time.monotonic()
    assert imap_account.uids() == []
    assert time.monotonic() - started < 2.0     # Dovecot's auth penalty would wait 2 s or more


def test_users_added_one_after_another_log_in_at_once(dovecot_server):
    for n in range(5):
        account = dovecot_server.add_user(f"burst{n}-{time.monotonic_ns()}@helpdesk.test", "pw")
        assert account.uids() == []


def test_append_returns_increasing_uids_and_the_message_reads_back(imap_account):
    uids = [imap_account.append(mail(n)) for n in range(3)]
    assert uids == sorted(uids) and len(set(uids)) == 3
    assert imap_account.uids() == uids
    assert imap_account.message(uids[1]) == mail(1)


def test_seen_set_by_append_is_visible_and_set_flags_replaces(imap_account):
    seen = imap_account.append(mail(1), flags=("\\Seen",))
    unseen = imap_account.append(mail(2))
    assert imap_account.flags(seen) == {"\\Seen"}
    assert imap_account.flags(unseen) == set()
    imap_account.set_flags(seen, ["\\Answered", "\\Flagged"])
    assert imap_account.flags(seen) == {"\\Answered", "\\Flagged"}


def test_body_peek_leaves_seen_alone_while_body_sets_it(imap_account):
    uid = imap_account.append(mail(1))
    assert imap_account.message(uid) == mail(1)
    assert imap_account.flags(uid) == set()
    with imap_account.imap() as conn:
        conn.select("INBOX")
        conn.uid("FETCH", str(uid), "(BODY[])")
    assert imap_account.flags(uid) == {"\\Seen"}


def test_folders_have_their_own_uids_and_expunge_all_empties_one(imap_account):
    imap_account.create("Archive/2024")
    imap_account.append(mail(1))
    assert imap_account.append(mail(2), folder="Archive/2024") == 1
    assert imap_account.uidvalidity("Archive/2024") != imap_account.uidvalidity()
    imap_account.expunge_all()
    assert imap_account.uids() == [] and imap_account.uids("Archive/2024") == [1]


def test_renew_uidvalidity_renumbers_the_same_mail_and_drops_sessions(imap_account):
    uids = imap_account.append_many([mail(n) for n in range(3)])
    imap_account.expunge_all()
    uids = imap_account.append_many([mail(n) for n in range(3, 5)])
    before = imap_account.uidvalidity()
    with imap_account.imap() as conn:
        conn.select("INBOX")
        after = imap_account.renew_uidvalidity()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            conn.noop()
    assert after > before and imap_account.uidvalidity() == after
    assert uids == [4, 5] and imap_account.uids() == [1, 2]
    assert [imap_account.message(uid) for uid in (1, 2)] == [mail(3), mail(4)]


def test_kill_then_start_keeps_address_and_mail(private_dovecot):
    account = private_dovecot.add_user("ada@helpdesk.test", "s3cret")
    uid = account.append(mail(1), flags=("\\Seen",))
    port = private_dovecot.port
    with account.imap() as conn:
        conn.select("INBOX")
        private_dovecot.kill()
        assert private_dovecot.pids() == []
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            conn.noop()
    with pytest.raises(OSError):
        socket.create_connection((private_dovecot.host, port), timeout=2).close()
    private_dovecot.start()
    assert private_dovecot.port == port
    assert account.uids() == [uid] and account.flags(uid) == {"\\Seen"}
    assert account.append(mail(2)) == uid + 1


def test_restart_keeps_address_and_mail(private_dovecot):
    account = private_dovecot.add_user("ada@helpdesk.test", "s3cret")
    uid = account.append(mail(1))
    port = private_dovecot.port
    private_dovecot.restart()
    assert private_dovecot.port == port and account.message(uid) == mail(1)
    assert "Login: user=<ada@helpdesk.test>" in private_dovecot.log_text()


def test_a_private_instance_runs_beside_the_shared_one(dovecot_server, private_dovecot):
    assert private_dovecot.port != dovecot_server.port
    assert private_dovecot.directory != dovecot_server.directory
    shared = dovecot_server.add_user("twin@helpdesk.test", "a")
    private = private_dovecot.add_user("twin@helpdesk.test", "b")
    shared.append(mail(1))
    assert private.uids() == [] and shared.uids() == [1]


def test_two_thousand_appends_on_one_connection(imap_account):
    started = time.monotonic()
    uids = imap_account.append_many(mail(n) for n in range(2000))
    elapsed = time.monotonic() - started
    print(f"\n2,000 APPENDs (pipelined, one connection): {elapsed:.2f} s")
    assert len(uids) == 2000 and uids == sorted(set(uids))
    assert imap_account.uids() == uids
    assert imap_account.message(uids[-1]) == mail(1999)
