"""The stdlib's MIME parse (`email.message_from_bytes`), without a regex compiled per boundary.

    message = message_from_bytes(raw)     # the same Message the stdlib gives (compat32)

`email.feedparser` compiles a new regular expression for every multipart boundary it
meets (~0.1 ms each), and as every real mail has boundaries of its own, `re`'s cache
never helps.  Here the feed parser's own code runs unchanged, except that its boundary
pattern -- always "the separator, then `(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>...)?$`"
-- is matched as `line.startswith(separator)` plus one precompiled pattern for the rest:
the same matches, the same groups (`sep` aside, which the parser never reads).  A
pattern of any other shape is compiled as before.
"""
from __future__ import annotations

import email.feedparser
import email.policy
import re
import types
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


class FeedParser(email.feedparser.FeedParser):
    _parsegen = _with_boundary_re(email.feedparser.FeedParser._parsegen)


def message_from_bytes(raw: bytes) -> Message:
    """What `email.message_from_bytes(raw)` returns (policy compat32)."""
    parser = FeedParser(policy=email.policy.compat32)
    parser.feed(raw.decode("ascii", errors="surrogateescape"))
    return parser.close()
