"""Hostile messages, built in the test (nothing from outside): each is what an attacker or
a broken mail system can send to the support address.

    raw = many_parts(10_000)      # bytes of one complete message
"""
from __future__ import annotations

import base64
import io
import zipfile
import zlib

NORMAL_BODY = b"Hello, the printer is on fire again.\r\n"


def head(tag: str, *, subject: str = "hostile", extra: bytes = b"") -> bytes:
    return (b"From: Eve Example <eve@evil.example>\r\nTo: support@example.com\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + tag.encode() + b"@evil.example>\r\n"
            b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" + extra)


def multipart(tag: str, parts: list[bytes], *, subject: str = "hostile") -> bytes:
    """A multipart/mixed message: a short text part first, then `parts` (each a part's
    headers + blank line + body, without the boundary line)."""
    body = [b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n"]
    body += [b"--b\r\n" + part for part in parts]
    return (head(tag, subject=subject, extra=b'Content-Type: multipart/mixed; boundary="b"\r\n')
            + b"\r\n" + b"".join(body) + b"--b--\r\n")


def attachment(filename: str, data: bytes, content_type: str = "application/octet-stream",
               extra: bytes = b"") -> bytes:
    return (b"Content-Type: " + content_type.encode() + b"\r\n"
            b'Content-Disposition: attachment; filename="' + filename.encode() + b'"\r\n'
            b"Content-Transfer-Encoding: base64\r\n" + extra + b"\r\n"
            + base64.encodebytes(data).replace(b"\n", b"\r\n"))


def huge_header(size: int = 1_000_000) -> bytes:
    """One header field of `size` bytes (folded into 76-character lines)."""
    value = b"\r\n ".join([b"x" * 74] * (size // 77))
    return head("huge-header") + b"X-Huge: " + value + b"\r\n\r\n" + NORMAL_BODY


def many_headers(count: int = 20_000, size: int = 1_000_000) -> bytes:
    """`count` small header fields, `size` bytes in all."""
    each = max(size // count - len(b"X-H00000: \r\n"), 1)
    fields = b"".join(b"X-H%05d: %s\r\n" % (i, b"v" * each) for i in range(count))
    return head("many-headers") + fields + b"\r\n" + NORMAL_BODY


def many_parts(count: int = 10_000) -> bytes:
    parts = [b"Content-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count)]
    return multipart("many-parts", parts)


def deep(depth: int = 1_000) -> bytes:
    """multipart/mixed inside multipart/mixed, `depth` levels, a text part at the bottom."""
    out = [head("deep")]
    for i in range(depth):
        out.append(b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (i, i))
    out.append(b"Content-Type: text/plain\r\n\r\nthe bottom\r\n")
    out += [b"--d%d--\r\n" % i for i in reversed(range(depth))]
    return b"".join(out)


def many_attachments(count: int = 10_000) -> bytes:
    return multipart("many-attachments",
                     [attachment(f"f{i}.bin", b"file %d" % i) for i in range(count)])


def big_attachment(size: int = 50 * 1024 * 1024) -> bytes:
    return multipart("big-attachment", [attachment("big.bin", b"\x00\x01" * (size // 2))])


def zip_bomb_data(layers: int = 10, fanout: int = 16) -> tuple[bytes, int]:
    """A nested zip (42.zip style): (its bytes, the bytes it expands to fully)."""
    def zipped(name: str, data: bytes, copies: int) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for i in range(copies):
                member = zipfile.ZipInfo(f"{i}.{name}", date_time=(2026, 11, 21, 10, 0, 0))
                archive.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        return buffer.getvalue()
    base = 1 << 20
    data = zipped("bin", b"\0" * base, 1)
    for _ in range(layers):
        data = zipped("zip", data, fanout)
    return data, base * fanout ** layers


def gzip_bomb_data(size: int = 256 * 1024 * 1024) -> bytes:
    """gzip of `size` zero bytes, compressed a MiB at a time (never held whole)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    out = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(out) + compressor.flush()


def zip_bomb() -> bytes:
    """A nested zip attachment, and a gzip body that says `Content-Encoding: gzip` (which a
    careless reader would inflate) next to an application/gzip attachment."""
    bomb, _ = zip_bomb_data()
    gz = gzip_bomb_data()
    inline = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Encoding: gzip\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n"
              + base64.encodebytes(gz).replace(b"\n", b"\r\n"))
    return multipart("zip-bomb", [attachment("42.zip", bomb, "application/zip"), inline,
                                  attachment("zeros.gz", gz, "application/gzip",
                                             b"Content-Encoding: gzip\r\n")])


def normal(tag: str, subject: str = "Printer on fire") -> bytes:
    return (head(tag, subject=subject).replace(b"eve@evil.example", b"carol@customer.example")
            + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + NORMAL_BODY)
