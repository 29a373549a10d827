"""Does a mail from an agent's address really come from that agent?  (DESIGN §5, promise 6)

    policy = TrustPolicy(AUTHENTICATION_RESULTS, authserv_id="mx.example.com")
    verdict = authenticate(raw, "alice@example.com", policy)
    verdict.authenticated       # True: replies, notes and #commands act as alice's
    verdict.method              # "dmarc" | "dkim" | "none" ("" when not authenticated)
    verdict.reason              # one line for the log and the ticket's events

Three policies (`trust.agents` in maild.yaml):

`authentication-results` (recommended behind Postfix/Exim with OpenDMARC or OpenDKIM).
    Our MTA has already checked the mail and written an `Authentication-Results` header
    (RFC 8601).  Only the TOPMOST such header whose authserv-id is our MTA's
    (`authserv_id`, case-insensitive) counts.  Anyone can write an Authentication-Results
    header into a mail before sending it, with any authserv-id, even ours: headers with
    another authserv-id are ignored, and a forged one with our authserv-id sits below the
    one our MTA prepends on arrival.  For that to hold, the MTA must write its header on
    every mail (OpenDMARC and OpenDKIM do), or remove incoming ones that carry its
    authserv-id (RFC 8601 §5).  When several filters write headers with our authserv-id
    (OpenDKIM's dkim=, OpenDMARC's dmarc=), still only the topmost one is read.
    That header authenticates the sender when it shows
    - `dmarc=pass`, and its `header.from`, if present, is the From domain; or
    - `dkim=pass` with `header.d` aligned with the From domain (below).  Where the MTA
      writes no header.d (Gmail writes only `header.i=@domain`), the domain of header.i
      is used: the verifier checked that it lies within d=, so it aligns whenever d= does.
    SPF is never enough: it vouches for the envelope sender, not for From.
    A header that does not parse means "not authenticated", with the parser's complaint.

`dkim`: maild verifies the DKIM signatures itself (dkimpy; DNS injectable as `dns`,
    dkimpy's `dnsfunc(name: bytes, timeout=5) -> bytes | None`, the TXT record).  At
    least one signature must verify AND have its d= aligned with the From domain.
    Signatures that cannot count are skipped before any DNS lookup: not aligned, From
    not among the signed headers (h=), or a body length limit (l=, which lets anyone
    append text, and #commands, below the signed part).  At most `MAX_SIGNATURES`
    aligned signatures are verified, so a mail cannot make the worker wait on dozens
    of DNS lookups.  Any dkimpy or DNS error means "not authenticated", with its text.

`none`: From is trusted.  Development only; maild warns at start.

Alignment is DMARC's relaxed alignment without a public-suffix list: the domain d is
aligned with the From domain when they are equal or the From domain is a subdomain of
d (From alice@eu.example.com, d=example.com: aligned; the reverse is not), and d has at
least two labels (d=com never aligns).  A site whose agents sit under a public suffix
(`example.co.uk`) relies on that suffix's registry: d=co.uk would align, but nobody can
publish a DKIM key for it.

In every mode `from_address` must contain '@'.  In the two checking modes it must also
be an address of the message's one From header: a mail with no or several From header
fields is not authenticated (DKIM and DMARC vouch for one From, and two parsers may
disagree about which of several is "the" From).
"""
from __future__ import annotations

import email.utils
import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

import authres
import dkim
import dkim.dnsplug
from dkim.util import parse_tag_value

from parsers.headers import addresses, as_text, one_line, unfold

log = logging.getLogger(__name__)

AUTHENTICATION_RESULTS = "authentication-results"
DKIM = "dkim"
NONE = "none"
MODES = (AUTHENTICATION_RESULTS, DKIM, NONE)

MAX_SIGNATURES = 5            # aligned DKIM signatures verified per mail, at most
MAX_RESULTS_LENGTH = 16384    # longer Authentication-Results headers are not parsed
_REASON_LENGTH = 300

# The authserv-id: the first word, after optional comments (RFC 8601 §2.2).  Read this
# cheaply for every header; only the one chosen header is parsed in full.
_AUTHSERV_ID = re.compile(r"\s*(?:\((?:[^()\\]|\\.)*\)\s*)*([^\s;()]+)")


@dataclass(frozen=True)
class TrustPolicy:
    mode: str                          # AUTHENTICATION_RESULTS | DKIM | NONE
    authserv_id: str | None = None     # our MTA's authserv-id; required for AUTHENTICATION_RESULTS

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"trust mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == AUTHENTICATION_RESULTS and not (self.authserv_id or "").strip():
            raise ValueError("trust mode authentication-results needs authserv_id "
                             "(the first word of the Authentication-Results header your MTA writes)")


@dataclass(frozen=True)
class AuthVerdict:
    authenticated: bool
    method: str      # "dmarc" | "dkim" | "none" when authenticated; "" when not
    reason: str      # one line for logs and events


def authenticate(raw: bytes, from_address: str, policy: TrustPolicy, *, dns=None) -> AuthVerdict:
    """Is the mail `raw`, whose From is `from_address`, proven to come from that address?"""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    try:
        verdict = _decide(raw, headers, from_address, policy, dns)
    except Exception as exc:    # a bug here must not make anyone an agent, nor lose the mail
        log.exception("auth %s: check failed", _header(headers, "Message-ID"))
        verdict = _no(f"authentication check failed: {type(exc).__name__}: {exc}")
    if log.isEnabledFor(logging.DEBUG):
        log.debug("auth %s from %s: %s", _header(headers, "Message-ID") or "(no Message-ID)",
                  from_address, verdict.reason)
    return verdict


def _decide(raw: bytes, headers: Message, from_address: str, policy: TrustPolicy,
            dns) -> AuthVerdict:
    address = (email.utils.parseaddr(from_address or "")[1] or from_address or "").strip().lower()
    domain = normalize_domain(address.rpartition("@")[2])
    if "@" not in address or not domain:
        return _no(f"From address {from_address!r} has no domain")
    if policy.mode == NONE:
        return AuthVerdict(True, NONE, "trust.agents: none (From is trusted)")
    problem = _from_header_problem(headers, address)
    if problem:
        return _no(problem)
    if policy.mode == DKIM:
        return _by_dkim(raw, domain, dns)
    return _by_authentication_results(headers, domain, policy.authserv_id.strip().lower())


def aligned(d: str, from_domain: str) -> bool:
    """Relaxed alignment without a public-suffix list (see the module docstring)."""
    d, from_domain = normalize_domain(d), normalize_domain(from_domain)
    labels = d.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    return from_domain == d or from_domain.endswith("." + d)


def normalize_domain(domain: str) -> str:
    """Lower case, no trailing dot, internationalized names as A-labels (xn--)."""
    domain = domain.strip().strip("<>").rstrip(".").lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return domain


# --- authentication-results ------------------------------------------------------------

def _by_authentication_results(headers: Message, domain: str, authserv_id: str) -> AuthVerdict:
    value = _topmost_results(headers, authserv_id)
    if value is None:
        return _no(f"no Authentication-Results from {authserv_id}")
    if len(value) > MAX_RESULTS_LENGTH:
        return _no(f"Authentication-Results from {authserv_id} too long to parse "
                   f"({len(value)} characters)")
    try:
        parsed = authres.parse_value(value)
    except Exception as exc:    # authres.SyntaxError and friends; RecursionError on nested comments
        return _no(f"Authentication-Results from {authserv_id} unparseable: "
                   f"{type(exc).__name__}: {exc}")
    if parsed.authserv_id != authserv_id:     # our cheap reading and authres disagree: fail closed
        return _no(f"Authentication-Results from {authserv_id} unparseable: "
                   f"authserv-id reads as {parsed.authserv_id!r}")

    results = [(r.method.lower(), r.result.lower(), _properties(r)) for r in parsed.results]
    for method, result, props in results:
        header_from = props.get("header.from")
        if method == "dmarc" and result == "pass" and (header_from is None
                                                      or normalize_domain(header_from) == domain):
            return AuthVerdict(True, "dmarc", f"dmarc=pass (authserv-id {authserv_id})")
    for method, result, props in results:
        if method == "dkim" and result == "pass" and aligned(_dkim_domain(props), domain):
            return AuthVerdict(True, "dkim", f"dkim=pass header.d={_dkim_domain(props)} "
                                             f"aligned with {domain} (authserv-id {authserv_id})")
    for method, result, props in results:
        if method == "dkim" and result == "pass":
            d = _dkim_domain(props) or "(none)"
            return _no(f"dkim=pass but header.d={d} not aligned with {domain}")
        if method == "dmarc" and result == "pass":
            return _no(f"dmarc=pass but header.from={props['header.from']} is not {domain}")
    shown = ", ".join(f"{method}={result}" for method, result, _ in results) or "none"
    return _no(f"Authentication-Results from {authserv_id} shows no pass for {domain}: {shown}")


def _topmost_results(headers: Message, authserv_id: str) -> str | None:
    for name, value in headers.raw_items():
        if name.strip().lower() != "authentication-results":
            continue
        value = unfold(as_text(value))
        match = _AUTHSERV_ID.match(value)
        if match and match.group(1).lower() == authserv_id:
            return value
    return None


def _properties(result) -> dict[str, str]:
    """{"header.d": "example.com", ...}; the first value of each property wins."""
    props: dict[str, str] = {}
    for prop in getattr(result, "properties", None) or ():
        props.setdefault(f"{prop.type}.{prop.name}".lower(), str(prop.value or ""))
    return props


def _dkim_domain(props: dict[str, str]) -> str:
    if "header.d" in props:
        return props["header.d"]
    return props.get("header.i", "").rpartition("@")[2]


# --- dkim ------------------------------------------------------------------------------

def _by_dkim(raw: bytes, domain: str, dns) -> AuthVerdict:
    lookups: dict[bytes, bytes | None] = {}
    resolve = dns or dkim.dnsplug.get_txt

    def recording_dns(name, timeout=5):
        lookups[name] = answer = resolve(name, timeout=timeout)
        return answer

    try:
        verifier = dkim.DKIM(raw)
        signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    except Exception as exc:
        return _no(f"DKIM: message unreadable: {exc}")
    if not signatures:
        return _no("no DKIM-Signature")

    skipped, tried = [], 0
    for idx, value in enumerate(signatures):
        try:
            tags = parse_tag_value(value)
        except Exception as exc:
            skipped.append(f"unreadable signature ({exc})")
            continue
        d = tags.get(b"d", b"").decode("ascii", "replace").strip()
        signed = {h.strip().lower() for h in tags.get(b"h", b"").split(b":")}
        if not aligned(d, domain):
            skipped.append(f"d={d or '(none)'} not aligned with {domain}")
        elif b"from" not in signed:
            skipped.append(f"d={d} does not sign From")
        elif b"l" in tags:
            skipped.append(f"d={d} signs only part of the body (l=)")
        elif tried >= MAX_SIGNATURES:
            skipped.append(f"d={d} not tried (more than {MAX_SIGNATURES} signatures)")
        else:
            tried += 1
            try:
                if verifier.verify(idx=idx, dnsfunc=recording_dns):
                    selector = tags.get(b"s", b"").decode("ascii", "replace")
                    return AuthVerdict(True, "dkim", f"dkim=pass d={d} s={selector} aligned with {domain} "
                                                     "(verified by maild)")
                skipped.append(f"d={d}: {_why_false(tags, lookups)}")
            except Exception as exc:    # dkim.DKIMException, DNS errors, odd input
                skipped.append(f"d={d}: {type(exc).__name__}: {exc}")
    counts = dict.fromkeys(skipped, 0)
    for why in skipped:
        counts[why] += 1
    return _no("DKIM signature did not verify: "
               + "; ".join(why if n == 1 else f"{why} (x{n})" for why, n in counts.items()))


def _why_false(tags: dict, lookups: dict) -> str:
    name = tags.get(b"s", b"") + b"._domainkey." + tags.get(b"d", b"") + b"."
    if name in lookups and not lookups[name]:
        return f"no DKIM key at {name.decode('ascii', 'replace')}"
    return "signature does not match the message or key"


# --- helpers ---------------------------------------------------------------------------

def _from_header_problem(headers: Message, address: str) -> str | None:
    values = [value for name, value in headers.raw_items() if name.strip().lower() == "from"]
    if len(values) != 1:
        return f"{len(values)} From header fields (exactly one can be authenticated)"
    found = [addr for _, addr in addresses(unfold(as_text(values[0])))]
    if address not in found:
        return f"{address} is not the From header's address ({', '.join(found) or 'none'})"
    return None


def _header(headers: Message, name: str) -> str:
    for key, value in headers.raw_items():
        if key.strip().lower() == name.lower():
            return one_line(unfold(as_text(value)))
    return ""


def _no(reason: str) -> AuthVerdict:
    reason = one_line(reason)
    if len(reason) > _REASON_LENGTH:
        reason = reason[:_REASON_LENGTH - 3] + "..."
    return AuthVerdict(False, "", reason)
