"""The stdlib's MIME parse (`email.message_from_bytes`), without a regex compiled per boundary.

    message = message_from_bytes(raw)     # the same Message the stdlib gives (compat32)

`email.feedparser` compiles a new regular expression for every multipart boundary it
meets (~0.1 ms each), and as every real mail has boundaries of its own, `re`'s cache
never helps.  Here the feed parser's own code runs unchanged, except that its boundary
pattern -- always "the separator, then `(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>...)?$`"
-- is matched as `line.startswith(separator)` plus one precompiled pattern for the rest:
the same matches, the same groups (`sep` aside, which the parser never reads).  A
pattern of any other shape is compiled as before.

With `max_parts` and `max_depth` (see `parsers.limits`) the parse is bounded:

    message, cut = read_message(raw, max_parts=1000, max_depth=100)
    cut.parts_after      # 0, or the part number where the parser stopped reading
    cut.unopened         # how many containers nested too deep were left closed

The bytes are fed to the parser in 64 KiB slices, so its lines are split (and its memory
held) a slice at a time, and it stops at part `max_parts + 1`: the message object holds
the first `max_parts` parts and the rest of the input is never read.  A container
(multipart/*, message/*) that would put parts deeper than `max_depth` is not opened: its
Content-Type is read as application/octet-stream and its body kept as one opaque payload.
"""
from __future__ import annotations

import email.feedparser
import email.policy
import re
import types
from dataclasses import dataclass
from email.message import Message

_PREFIX = "(?P<sep>"
_TAIL_SOURCE = r"(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_SUFFIX = ")" + _TAIL_SOURCE
_TAIL = re.compile(_TAIL_SOURCE)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


class _BoundaryMatcher:
    """`re.compile(_PREFIX + re.escape(separator) + _SUFFIX)`, as far as `.match` goes."""
    __slots__ = ("separator", "start")

    def __init__(self, separator: str):
        self.separator, self.start = separator, len(separator)

    def match(self, line: str):
        if not line.startswith(self.separator):
            return None
        return _TAIL.match(line, self.start)


class _BoundaryRe:
    """The `re` that the copied `_parsegen` sees: boundary patterns become matchers."""
    escape = staticmethod(re.escape)

    @staticmethod
    def compile(pattern, flags=0):
        if (not flags and isinstance(pattern, str) and pattern.startswith(_PREFIX)
                and pattern.endswith(_SUFFIX)):
            escaped = pattern[len(_PREFIX):-len(_SUFFIX)]
            separator = _UNESCAPE.sub(r"\1", escaped)
            if re.escape(separator) == escaped:
                return _BoundaryMatcher(separator)
        return re.compile(pattern, flags)


def _with_boundary_re(function: types.FunctionType) -> types.FunctionType:
    namespace = dict(function.__globals__, re=_BoundaryRe)
    copy = types.FunctionType(function.__code__, namespace, function.__name__,
                              function.__defaults__, function.__closure__)
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


CHUNK = 64 * 1024
OPAQUE = "application/octet-stream"


@dataclass
class Cut:
    """What a bounded parse left out."""
    parts_after: int = 0         # the parser stopped before this part (0: read it all)
    unopened: int = 0            # containers nested too deep, kept as opaque parts


class _EnoughParts(Exception):
    """Raised inside the parser at part max_parts + 1; never leaves this module."""


class FeedParser(email.feedparser.FeedParser):
    _parsegen = _with_boundary_re(email.feedparser.FeedParser._parsegen)

    def __init__(self, *args, max_parts: int | None = None, max_depth: int | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.max_parts, self.max_depth = max_parts, max_depth
        self.cut, self._parts = Cut(), 0

    def _new_message(self):
        self._parts += 1
        if self.max_parts is not None and self._parts > self.max_parts:
            self.cut.parts_after = self._parts
            raise _EnoughParts
        super()._new_message()

    def _parse_headers(self, lines):
        super()._parse_headers(lines)
        # A container at depth max_depth would put its parts deeper: leave it closed.
        if (self.max_depth is not None and len(self._msgstack) >= self.max_depth
                and self._cur.get_content_maintype() in ("multipart", "message")):
            if "content-type" in self._cur:
                self._cur.replace_header("content-type", OPAQUE)
            else:                   # a digest's part: message/rfc822 by default
                self._cur.set_default_type(OPAQUE)
            self.cut.unopened += 1


def message_from_bytes(raw: bytes) -> Message:
    """What `email.message_from_bytes(raw)` returns (policy compat32)."""
    return read_message(raw)[0]


def read_message(raw: bytes, *, max_parts: int | None = None,
                 max_depth: int | None = None) -> tuple[Message, Cut]:
    """That Message as far as the limits let it be read (None: no limit), and what was
    left out."""
    parser = FeedParser(policy=email.policy.compat32, max_parts=max_parts, max_depth=max_depth)
    try:
        for start in range(0, len(raw), CHUNK):
            parser.feed(raw[start:start + CHUNK].decode("ascii", errors="surrogateescape"))
        message = parser.close()
    except _EnoughParts:
        message = parser._msgstack[0]          # the parts read so far, a tree as it stands
    return message, parser.cut
