"""authenticate(): an agent's mail acts as the agent only when the sender is proven."""
from __future__ import annotations

import dkim
import pytest

from parsers.auth import (AUTHENTICATION_RESULTS, DKIM, MAX_SIGNATURES, NONE, AuthVerdict,
                          TrustPolicy, aligned, authenticate)
from tests.dkimkeys import Key, make_key, sign
from tests.dkimkeys import zone as dkim_zone

OURS = TrustPolicy(AUTHENTICATION_RESULTS, authserv_id="mx.example.com")
ALICE = "alice@example.com"

# What Postfix with OpenDMARC and OpenDKIM write (one milter per header, tab-folded).
OPENDMARC = "Authentication-Results: mx.example.com; dmarc={} (p=reject dis=none) header.from=example.com"
OPENDMARC_PASS, OPENDMARC_FAIL = OPENDMARC.format("pass"), OPENDMARC.format("fail")
OPENDKIM = ("Authentication-Results: mx.example.com;\n"
            "\tdkim=pass (2048-bit key; unprotected) header.d={d} header.i=@{d}\n"
            "\t header.a=rsa-sha256 header.s=mail header.b=AbCdEf12;\n"
            "\tdkim-atps=neutral")
# What Gmail writes: several methods, comments, header.i but no header.d.
GMAIL = ("Authentication-Results: mx.google.com;\n"
         "       dkim=pass header.i=@example.com header.s=20230601 header.b=Xyz12345;\n"
         "       spf=pass (google.com: domain of alice@example.com designates 209.85.220.41 as\n"
         "        permitted sender) smtp.mailfrom=alice@example.com;\n"
         "       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com")


def mail(*headers: str, sender: str = "Alice Agent <alice@example.com>",
         body: str = "#close\n\nDone.\n") -> bytes:
    lines = [*headers,
             "Received: from mail.example.com (mail.example.com [192.0.2.7]) by mx.example.com",
             f"From: {sender}", "To: support@help.example.org", "Subject: Re: [Acme #1042] Printer",
             "Message-ID: <agent-1@example.com>", "Date: Mon, 3 Jun 2024 10:00:00 +0000"]
    return ("\n".join(lines) + "\n\n" + body).replace("\n", "\r\n").encode("utf-8")


def check(raw: bytes, policy: TrustPolicy = OURS, address: str = ALICE, **kw) -> AuthVerdict:
    return authenticate(raw, address, policy, **kw)


# --- authentication-results ------------------------------------------------------------

def test_dmarc_pass_from_our_mta_authenticates():
    verdict = check(mail(OPENDMARC_PASS))
    assert verdict == AuthVerdict(True, "dmarc", "dmarc=pass (authserv-id mx.example.com)")


def test_gmail_shaped_header_authenticates_and_authserv_id_is_case_insensitive():
    verdict = check(mail(GMAIL), TrustPolicy(AUTHENTICATION_RESULTS, authserv_id="MX.Google.com"))
    assert (verdict.authenticated, verdict.method) == (True, "dmarc")


def test_dmarc_fail_is_not_authenticated():
    verdict = check(mail(OPENDMARC_FAIL))
    assert not verdict.authenticated and verdict.method == ""
    assert "dmarc=fail" in verdict.reason


def test_forged_pass_from_another_authserv_id_above_ours_is_ignored():
    forged = ("Authentication-Results: mx.evil.example; dmarc=pass header.from=example.com;"
              " dkim=pass header.d=example.com")
    verdict = check(mail(forged, OPENDMARC_FAIL))
    assert not verdict.authenticated
    assert "dmarc=fail" in verdict.reason


def test_forged_pass_with_our_authserv_id_below_ours_is_ignored():
    forged = OPENDMARC_PASS   # written by the sender; our MTA prepended its own above it
    assert not check(mail(OPENDMARC_FAIL, forged)).authenticated


def test_only_a_foreign_header_saying_pass_is_not_enough():
    verdict = check(mail("Authentication-Results: mx.evil.example; dmarc=pass header.from=example.com"))
    assert verdict == AuthVerdict(False, "", "no Authentication-Results from mx.example.com")


def test_no_header_at_all_is_not_authenticated():
    assert not check(mail()).authenticated


def test_dkim_pass_for_another_domain_is_not_authenticated():
    verdict = check(mail(OPENDKIM.format(d="evil.example")))
    assert verdict == AuthVerdict(False, "", "dkim=pass but header.d=evil.example "
                                             "not aligned with example.com")


def test_dkim_pass_for_the_from_domain_authenticates():
    verdict = check(mail(OPENDKIM.format(d="example.com")))
    assert (verdict.authenticated, verdict.method) == (True, "dkim")
    assert "header.d=example.com" in verdict.reason


def test_dkim_pass_with_only_header_i_uses_its_domain():
    header = "Authentication-Results: mx.example.com; dkim=pass header.i=@example.com header.s=20230601"
    assert check(mail(header)).method == "dkim"
    header = "Authentication-Results: mx.example.com; dkim=pass header.i=@evil.example header.s=20230601"
    assert not check(mail(header)).authenticated


@pytest.mark.parametrize("d, sender, expected", [
    ("example.com", "alice@eu.example.com", True),     # From is a subdomain of d
    ("EXAMPLE.Com", "alice@example.com", True),        # case doesn't matter
    ("eu.example.com", "alice@example.com", False),    # d below From is not aligned
    ("notexample.com", "alice@example.com", False),    # a suffix is not a subdomain
    ("com", "alice@example.com", False),               # d needs two labels
])
def test_dkim_alignment_rules(d, sender, expected):
    raw = mail(OPENDKIM.format(d=d), sender=sender)
    assert check(raw, address=sender).authenticated is expected
    assert aligned(d, sender.split("@")[1]) is expected


def test_alignment_ignores_a_trailing_dot_and_needs_real_labels():
    assert aligned("example.com.", "Example.COM")
    assert not aligned(".com", "example.com") and not aligned("", "example.com")


def test_dmarc_pass_for_another_header_from_is_not_authenticated():
    header = "Authentication-Results: mx.example.com; dmarc=pass header.from=evil.example"
    verdict = check(mail(header))
    assert verdict == AuthVerdict(False, "", "dmarc=pass but header.from=evil.example is not example.com")


def test_spf_pass_alone_is_not_enough():
    header = "Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=alice@example.com; dkim=none"
    verdict = check(mail(header))
    assert not verdict.authenticated
    assert verdict.reason.endswith("spf=pass, dkim=none")


@pytest.mark.parametrize("value", [
    "mx.example.com; ;;; (((",
    "mx.example.com",
    "mx.example.com; dkim",
    "mx.example.com; dmarc=pass (unclosed comment header.from=example.com",
    "mx.example.com; dmarc=pass " + "(" * 3000 + ")" * 3000 + " header.from=example.com",
    "mx.example.com; dmarc=pass header.from=example.com " + "x" * 20000,
])
def test_garbage_from_our_authserv_id_is_not_authenticated_and_does_not_raise(value):
    verdict = check(mail("Authentication-Results: " + value))
    assert not verdict.authenticated
    assert "mx.example.com" in verdict.reason and "\n" not in verdict.reason


def test_odd_bytes_in_the_header_block_do_not_raise():
    raw = mail(OPENDMARC_PASS).replace(b"Subject: Re:", b"Subject: \xff\xfe\x00 Re:")
    assert check(raw).authenticated
    raw = b"Authentication-Results: mx.example.com; dmarc=pass (r\xe9sum\xe9)\r\n" + raw
    assert "unparseable" in check(raw).reason     # authres takes ASCII only
    assert check(b"\xff\x00 no header block at all").reason == \
        "0 From header fields (exactly one can be authenticated)"


def test_two_from_header_fields_are_not_authenticated():
    raw = mail(OPENDMARC_PASS).replace(b"To:", b"From: mallory@evil.example\r\nTo:")
    verdict = check(raw)
    assert verdict == AuthVerdict(False, "", "2 From header fields (exactly one can be authenticated)")


def test_the_address_must_be_the_from_headers():
    verdict = check(mail(OPENDMARC_PASS, sender="Bob <bob@example.com>"))
    assert not verdict.authenticated and "bob@example.com" in verdict.reason


@pytest.mark.parametrize("policy", [OURS, TrustPolicy(DKIM), TrustPolicy(NONE)])
def test_an_address_without_at_is_not_authenticated(policy):
    verdict = check(mail(OPENDMARC_PASS), policy, address="alice")
    assert not verdict.authenticated and verdict.method == ""


def test_a_policy_is_checked_when_made():
    with pytest.raises(ValueError, match="authserv_id"):
        TrustPolicy(AUTHENTICATION_RESULTS)
    with pytest.raises(ValueError, match="trust mode"):
        TrustPolicy("dmarc")


# --- dkim: maild verifies signatures with a key made here ------------------------------

@pytest.fixture(scope="module")
def key():
    """(PEM private key, DNS TXT record) of a 1024-bit RSA key made for this module."""
    made = make_key()
    return made.pem, made.txt


@pytest.fixture
def zone(key):
    """A dict-backed resolver in dkimpy's dnsfunc shape; `zone.asked` records the names."""
    return dkim_zone({b"mail._domainkey.example.com.": key[1], b"mail._domainkey.evil.example.": key[1]})


def signed(raw: bytes, key, domain: bytes = b"example.com", **options) -> bytes:
    return sign(raw, Key(*key), domain, **options)


DKIM_POLICY = TrustPolicy(DKIM)


def test_a_signed_mail_verifies(key, zone):
    verdict = check(signed(mail(), key), DKIM_POLICY, dns=zone)
    assert verdict == AuthVerdict(True, "dkim", "dkim=pass d=example.com s=mail "
                                            "aligned with example.com (verified by maild)")


def test_a_signature_for_the_parent_domain_covers_a_subdomain_agent(key, zone):
    raw = signed(mail(sender="alice@eu.example.com"), key)
    assert check(raw, DKIM_POLICY, address="alice@eu.example.com", dns=zone).authenticated


def test_one_changed_body_byte_breaks_it(key, zone):
    raw = signed(mail(), key).replace(b"#close", b"#clos3")
    verdict = check(raw, DKIM_POLICY, dns=zone)
    assert not verdict.authenticated
    assert verdict.reason.startswith("DKIM signature did not verify: "
                                     "d=example.com: ValidationError: body hash mismatch")


def test_a_changed_signed_header_breaks_it(key, zone):
    raw = signed(mail(), key).replace(b"Printer", b"Invoice")
    verdict = check(raw, DKIM_POLICY, dns=zone)
    assert verdict == AuthVerdict(False, "", "DKIM signature did not verify: d=example.com: "
                                             "signature does not match the message or key")


def test_a_valid_signature_by_another_domain_is_not_the_agent(key, zone):
    verdict = check(signed(mail(), key, domain=b"evil.example"), DKIM_POLICY, dns=zone)
    assert verdict == AuthVerdict(False, "", "DKIM signature did not verify: "
                                             "d=evil.example not aligned with example.com")
    assert zone.asked == []     # no DNS lookup for a signature that could not count anyway


def test_no_signature(zone):
    verdict = check(mail(), DKIM_POLICY, dns=zone)
    assert verdict == AuthVerdict(False, "", "no DKIM-Signature")


def test_no_key_in_dns(key, zone):
    zone.records.clear()
    verdict = check(signed(mail(), key), DKIM_POLICY, dns=zone)
    assert verdict == AuthVerdict(False, "", "DKIM signature did not verify: d=example.com: "
                                             "no DKIM key at mail._domainkey.example.com.")


def test_a_failing_resolver_is_not_authenticated(key):
    def broken(name, timeout=5):
        raise OSError("network unreachable")
    verdict = check(signed(mail(), key), DKIM_POLICY, dns=broken)
    assert not verdict.authenticated and "network unreachable" in verdict.reason


def test_every_signature_is_tried(key, zone):
    good = signed(mail(), key)
    stranger = dkim.sign(good, b"mail", b"evil.example", key[0], include_headers=[b"from"])
    broken = stranger.replace(b"evil.example", b"example.com")    # aligned, does not verify
    assert check(broken + good, DKIM_POLICY, dns=zone).authenticated
    assert len(zone.asked) == 2


def test_a_mail_cannot_make_maild_verify_dozens_of_signatures(key, zone):
    good = signed(mail(), key)
    junk = dkim.sign(good, b"mail", b"evil.example", key[0], include_headers=[b"from"])
    junk = junk.replace(b"evil.example", b"example.com")      # aligned, and does not verify
    verdict = check(junk * (MAX_SIGNATURES + 1) + good, DKIM_POLICY, dns=zone)
    assert verdict == AuthVerdict(False, "", "DKIM signature did not verify: d=example.com: signature "
                                  f"does not match the message or key (x{MAX_SIGNATURES}); d=example.com "
                                  f"not tried (more than {MAX_SIGNATURES} signatures) (x2)")
    assert len(zone.asked) == MAX_SIGNATURES


def test_a_signature_over_part_of_the_body_does_not_count(key, zone):
    raw = signed(mail(), key, length=True)
    verdict = check(raw.replace(b"Done.\r\n", b"Done.\r\n#assign mallory\r\n"), DKIM_POLICY, dns=zone)
    assert not verdict.authenticated and "(l=)" in verdict.reason


def test_a_signature_that_does_not_sign_from_does_not_count(key, zone):
    raw = signed(mail(), key)
    raw = raw.replace(b"h=from : to", b"h=to").replace(b"h=from:to", b"h=to")
    verdict = check(raw, DKIM_POLICY, dns=zone)
    assert verdict == AuthVerdict(False, "", "DKIM signature did not verify: "
                                             "d=example.com does not sign From")


def test_authentication_results_do_not_count_in_dkim_mode(zone):
    assert not check(mail(OPENDMARC_PASS), DKIM_POLICY, dns=zone).authenticated


# --- none ------------------------------------------------------------------------------

def test_none_trusts_from():
    verdict = check(mail(), TrustPolicy(NONE))
    assert verdict == AuthVerdict(True, "none", "trust.agents: none (From is trusted)")
