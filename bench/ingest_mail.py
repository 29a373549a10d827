"""Test messages for the ingest benchmark: realistic, varied, deterministic.

    mails = make_mails(count, seed)     # [Mail(sender, raw, wire, kind)], on every core

Each message is 4-20 KB (size drawn uniformly) and one of: a plain-text reply with
quoted history (Re: subject, In-Reply-To/References to mail maild never saw, so it opens
a new ticket), multipart/alternative text+HTML (Outlook-style HTML), or text with a
small attachment (PDF, PNG, CSV, log). Bodies are UTF-8 or ISO-8859-1, 8bit or
quoted-printable; every message has a unique Message-ID and its own sender address.
The same (seed, index) gives the same bytes on every run and machine.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import os
import random
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from html import escape

SUPPORT = "support@bench.example"
MIN_SIZE, MAX_SIZE = 4 * 1024, 20 * 1024
KINDS, KIND_WEIGHTS = ("reply", "alternative", "attachment"), (45, 35, 20)
# Measured means: bytes of a message without text, and per paragraph of text.
MESSAGE_BYTES = {"reply": (730, 230), "alternative": (1290, 550), "attachment": (800, 220)}
BASE64_GROWTH = 1.37              # 4/3, plus a CRLF every 76 characters


@dataclass(frozen=True)
class Mail:
    sender: str
    raw: bytes          # CRLF line ends, as a client hands it to aiosmtplib
    wire: bytes         # dot-stuffed and terminated by CRLF.CRLF, for the raw client
    kind: str


FIRST = ["Anna", "Jörg", "Amélie", "Søren", "Chloé", "Björn", "Zoë", "François", "Inés",
         "Mehmet", "Priya", "Kenji", "Olga", "Łukasz", "Thomas", "Sarah", "Hélène", "José",
         "Maëlle", "Jürgen", "Aoife", "Núria", "Dmitri", "Wei"]
LAST = ["Müller", "Dubois", "Kierkegaard", "García", "Smith", "Nakamura", "Kowalski",
        "Rossi", "Janssen", "Öztürk", "Lefèvre", "Andersson", "O'Brien", "Schäfer",
        "Fernández", "Novák", "Petrov", "Ng", "Brown", "Weiß"]
DOMAINS = ["example.org", "example.net", "mail.example.de", "kunde.example.at",
           "client.example.fr", "corp.example.co.uk", "uni.example.edu"]
TOPICS = ["VPN drops every ten minutes", "Cannot log in after the password reset",
          "Printer on the third floor is offline", "Shipment 88213 arrived damaged",
          "Export to CSV is missing two columns", "Request: laptop for a new colleague",
          "Wrong VAT rate on order 4471", "Calendar invites arrive twice",
          "Question about the annual plan", "Password reset mail never arrives",
          "Mobile app crashes on start", "Refund for duplicate payment",
          "Access to the shared drive", "Data export for our audit",
          "Rechnung falsch adressiert", "Problème de connexion au portail"]
MAILERS = ["Mozilla Thunderbird 115.6.0", "Microsoft Outlook 16.0", "Apple Mail (2.3774)",
           "Roundcube Webmail/1.6.5", "K-9 Mail for Android"]
SENTENCES_EN = [
    "Since this morning the problem is back and I could not find a way around it.",
    "I have attached the details you asked for, please let me know if anything is missing.",
    "We restarted the machine twice, cleared the cache and tried another browser as well.",
    "The error message says the session expired, although I had only just logged in.",
    "Could you please check whether our account is still on the old configuration?",
    "This affects the whole team of twelve people, so it is fairly urgent for us.",
    "Last week the same thing happened and it went away after about an hour.",
    "Our reference number for this order is 2026-11-4471, in case that helps.",
    "I am out of the office on Friday, my colleague can answer any questions then.",
    "The numbers in the report do not match what we see in the dashboard.",
    "It works on the wired network but not over wifi, which I find strange.",
    "Thank you for the quick answer yesterday, it solved the first part of the problem.",
    "We would need this to be fixed before the end of the quarter if at all possible.",
    "Is there a workaround we could use in the meantime until the fix is deployed?",
    "I tried the steps from your knowledge base article but the button is greyed out.",
    "Please find below the log lines from the moment it failed, with timestamps in UTC.",
]
SENTENCES_LATIN1 = [
    "Seit heute früh funktioniert der Zugang nicht mehr, obwohl wir nichts geändert haben.",
    "Könnten Sie bitte prüfen, ob die Rechnung an die richtige Adresse gegangen ist?",
    "Die Größe der Datei überschreitet angeblich das Limit, dabei sind es nur 3 MB.",
    "Wir wären Ihnen sehr dankbar für eine rasche Rückmeldung, die Sache ist dringend.",
    "Nous avons essayé de nous reconnecter plusieurs fois, sans succès malheureusement.",
    "Pourriez-vous vérifier si notre abonnement a bien été renouvelé le mois dernier ?",
    "Le problème apparaît dès que l'on ouvre le rapport mensuel, à chaque fois.",
    "Merci d'avance pour votre aide, je reste à votre disposition pour toute question.",
    "Hemos recibido el pedido, pero faltan dos artículos del envío número 88213.",
    "¿Podrían decirnos cuándo estará disponible la próxima actualización?",
]
SENTENCES_UTF8 = [
    "The total came to 1 249,50 € instead of the 1 149,50 € we had agreed on.",
    "Our office in Tokyo reports the same: 「ログインできません」 on every attempt.",
    "Коллеги из Москвы тоже не могут войти в систему с утра.",
    "“It just hangs” — that is all the users tell me, unfortunately.",
    "Thanks again for your help 🙂, we really appreciate the quick turnaround.",
    "Ελπίζω να λυθεί σύντομα, γιατί επηρεάζει όλη την ομάδα.",
]
SIGNATURES = ["Best regards", "Kind regards", "Mit freundlichen Grüßen", "Cordialement",
              "Thanks", "Cheers"]
HTML_HEAD = ("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset={cs}\">"
             "<style type=\"text/css\">p.MsoNormal, li.MsoNormal, div.MsoNormal {{margin:0cm;"
             "font-size:11.0pt;font-family:\"Calibri\",sans-serif;}} a:link {{color:#0563C1;"
             "text-decoration:underline;}} .signature {{color:#444;font-size:9pt}}</style>"
             "</head><body lang=\"EN-GB\" link=\"#0563C1\" vlink=\"#954F72\">"
             "<div class=\"WordSection1\">")


def _paragraphs(rng: random.Random, charset: str, count: int) -> list[str]:
    extra = SENTENCES_LATIN1 if charset == "iso-8859-1" else SENTENCES_LATIN1 + SENTENCES_UTF8
    pool = SENTENCES_EN + extra
    return [" ".join(rng.choice(pool) for _ in range(rng.randint(1, 4))) for _ in range(count)]


def _wrap(paragraphs: list[str], prefix: str = "") -> str:
    if not prefix:
        return "\n\n".join(textwrap.fill(p, 72) for p in paragraphs)
    return f"\n{prefix.rstrip()}\n".join(
        "\n".join(prefix + line for line in textwrap.wrap(p, 72 - len(prefix))) for p in paragraphs)


def _text_body(rng, charset, name, paragraphs, quoted) -> str:
    body = _wrap(paragraphs) + f"\n\n{rng.choice(SIGNATURES)},\n{name}\n"
    if quoted:
        when = format_datetime(datetime(2026, 11, rng.randint(1, 20), rng.randint(8, 18),
                                        rng.randint(0, 59), tzinfo=timezone.utc))
        half = len(quoted) // 2 + 1
        body += f"\nOn {when}, Support <{SUPPORT}> wrote:\n" + _wrap(quoted[:half], "> ")
        if len(quoted) > 1:
            body += "\n>\n> Earlier, the customer wrote:\n" + _wrap(quoted[half:], ">> ")
        body += "\n"
    return body


def _html_body(charset, name, paragraphs) -> str:
    parts = "".join(f"<p class=\"MsoNormal\">{escape(p)}<o:p></o:p></p><p class=\"MsoNormal\">"
                    "<o:p>&nbsp;</o:p></p>" for p in paragraphs)
    return (HTML_HEAD.format(cs=charset) + parts +
            f"<table class=\"signature\"><tr><td><b>{escape(name)}</b><br>Purchasing<br>"
            "+49 30 1234567</td></tr></table></div></body></html>\n")


def _attachment(rng: random.Random, size: int) -> tuple[bytes, str, str, str]:
    kind = rng.choice(("pdf", "png", "csv", "log"))
    if kind == "pdf":
        data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(size)
        return data, "application", "pdf", f"invoice-{rng.randint(1000, 9999)}.pdf"
    if kind == "png":
        return b"\x89PNG\r\n\x1a\n" + rng.randbytes(size), "image", "png", "screenshot.png"
    rows = ["date,order,amount,status"]
    while sum(map(len, rows)) < size:
        rows.append(f"2026-11-{rng.randint(1, 28):02d},{rng.randint(10000, 99999)},"
                    f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d},"
                    f"{rng.choice(('open', 'paid', 'refunded'))}")
    name = "orders.csv" if kind == "csv" else "client.log"
    return ("\n".join(rows) + "\n").encode(), "text", "csv" if kind == "csv" else "plain", name


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _build(index: int, seed: int, kind: str, paragraphs: int, attachment: int) -> EmailMessage:
    """Everything but the amount of text is fixed by (seed, index); the text is the
    first PARAGRAPHS of the message's own stream."""
    rng = random.Random(f"{seed}:{index}")
    charset = rng.choices(("utf-8", "iso-8859-1"), weights=(65, 35))[0]
    cte = rng.choice(("8bit", "quoted-printable"))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if charset == "iso-8859-1":     # keep the name encodable in the body's charset
        first, last = (n if n.encode("latin-1", "ignore").decode("latin-1") == n else _ascii(n)
                       for n in (first, last))
    local = "".join(c for c in _ascii(f"{first}.{last}").lower() if c.isalnum() or c == ".")
    domain = rng.choice(DOMAINS)
    sender = f"{local}.{seed}.{index}@{domain}"
    name = f"{first} {last}"
    text = _paragraphs(random.Random(f"text:{seed}:{index}"), charset, paragraphs)
    split = max(1, len(text) // 3) if kind == "reply" else len(text)
    new, quoted = text[:split], text[split:]

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr((name, sender))
    msg["To"] = formataddr(("Bench Support", SUPPORT))
    msg["Subject"] = ("Re: " if kind == "reply" else "") + rng.choice(TOPICS)
    msg["Date"] = format_datetime(datetime(2026, 11, 21, 9, tzinfo=timezone.utc)
                                  + timedelta(seconds=index * 7))
    msg["Message-ID"] = f"<{seed}.{index}.{rng.getrandbits(64):016x}@{domain}>"
    if kind == "reply":     # answers mail maild never saw: each one is a new ticket
        earlier = [f"<CAF{rng.getrandbits(96):024x}@mail.{domain}>"
                   for _ in range(rng.randint(1, 3))]
        msg["In-Reply-To"] = earlier[-1]
        msg["References"] = " ".join(earlier)
    msg["X-Mailer"] = rng.choice(MAILERS)
    msg.set_content(_text_body(rng, charset, name, new, quoted), charset=charset, cte=cte)
    if kind == "alternative":
        msg.add_alternative(_html_body(charset, name, new), subtype="html", charset=charset,
                            cte="quoted-printable")
    elif kind == "attachment":
        data, maintype, subtype, filename = _attachment(rng, attachment)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    for part in msg.walk():     # the email package would draw these from `random`
        if part.is_multipart():
            part.set_boundary(f"----=_Part_{index}_{rng.getrandbits(64):016x}")
    return msg


def make_mail(index: int, seed: int) -> Mail:
    """One message of 4-20 KB (size drawn uniformly), deterministic in (seed, index).

    The amount of text that reaches the drawn size is estimated from measured means
    (building a message with the email package is slow: build once, rarely twice)."""
    plan = random.Random(f"plan:{seed}:{index}")
    target = plan.randint(MIN_SIZE, MAX_SIZE)
    kind = plan.choices(KINDS, weights=KIND_WEIGHTS)[0]
    attachment = (plan.randint(400, max(400, min(6 * 1024, (target - 2000) * 7 // 10)))
                  if kind == "attachment" else 0)
    base, per = MESSAGE_BYTES[kind]
    count = max(1, round((target - base - BASE64_GROWTH * attachment) / per))
    while True:
        msg = _build(index, seed, kind, count, attachment)
        raw = msg.as_bytes()
        if len(raw) > MAX_SIZE and count > 1:
            count -= max(1, (len(raw) - MAX_SIZE) // per)
        elif len(raw) < MIN_SIZE:
            count += max(1, (MIN_SIZE - len(raw)) // per)
        else:
            break
    return Mail(sender=msg["From"].addresses[0].addr_spec, raw=raw, wire=dot_stuff(raw),
                kind=kind)


def make_mails(count: int, seed: int) -> list[Mail]:
    """All messages, built on every core (the stdlib email package is slow to build)."""
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(make_mail, range(count), itertools.repeat(seed), chunksize=64))


def dot_stuff(raw: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency plus the terminating CRLF.CRLF."""
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    lines = raw.split(b"\r\n")[:-1]
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines) + b".\r\n"
