"""DKIM test keys and a DNS zone for them: what a domain publishes, made in the test.

    key = make_key()                       # (PEM private key, TXT record)
    dns = zone({b"mail._domainkey.example.com.": key.txt})
    raw = sign(raw, key, b"example.com")   # DKIM-Signature prepended, dkimpy signs

`zone(...)` is a resolver in dkimpy's `dnsfunc` shape (`dns(name, timeout=5)`), the
injection point of `parsers.auth.authenticate(..., dns=...)` and of the daemon's
`Context.dns`; `dns.asked` records the names looked up.
"""
from __future__ import annotations

from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class Key:
    pem: bytes       # PKCS#1 private key, what dkim.sign takes
    txt: bytes       # the TXT record: v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo, base64>


def make_key(bits: int = 1024) -> Key:
    import base64

    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    spki = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key(pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki))


def zone(records: dict[bytes, bytes]):
    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        dns.asked.append(name)
        return records.get(name)
    dns.asked, dns.records = [], records
    return dns


SIGNED_HEADERS = [b"from", b"to", b"subject", b"message-id", b"date"]


def sign(raw: bytes, key: Key, domain: bytes = b"example.com", selector: bytes = b"mail",
         **options) -> bytes:
    headers = options.pop("include_headers", SIGNED_HEADERS)
    return dkim.sign(raw, selector, domain, key.pem, include_headers=headers, **options) + raw
