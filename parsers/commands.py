"""Command lines at the top of an agent's mail: `#status pending`, `#assign alice`, ...

    block = split_commands("#status pending\\n#tag vip\\n\\nHello, we are on it.")
    block.commands   # (Command('status', 'pending', '#status pending'),
                     #  Command('tag', 'vip', '#tag vip'))
    block.errors     # ()
    block.text       # 'Hello, we are on it.'  -- what the customer sees
    block.note       # False: no '#note' line, so the text is a public reply

How agents write commands (this is the manual; DESIGN §5):
- Commands go at the very top of the new text, one per line, before anything else.
  Blank lines before and between them are fine.  The first other line ends the block:
  a `#` further down is ordinary text.
- A command line is `#` directly followed by a letter, after optional leading spaces
  (also the no-break spaces that Outlook and HTML conversion produce).  `#1042 is still
  broken` is text, not a command, and ends the block.  The command word is
  case-insensitive (`#Status Pending` works).
- The commands:
    #status open|pending|resolved|closed   ("new" is maild's to set, not an agent's)
    #priority low|normal|high|urgent
    #assign <agent>                        (resolved against the configured agents)
    #queue <queue>                         (resolved against the configured queues)
    #tag <tag>  /  #untag <tag>            one tag per line: letters, digits and - _ . : /,
                                           at most 64 characters; repeat the line for more
    #close                                 close the ticket
    #note                                  the mail is an internal note, not sent to the
                                           customer
- Every line of the block is removed from the text, including lines with a mistake
  (`#stauts pending`, `#priority asap`): each mistake gives one line in `errors`, to be
  sent back to the agent, and the other commands still apply.

This module is pure syntax.  Whether "alice" is an agent or "billing" a queue, and what
to do with two `#status` lines, is decided by the caller with the rules at hand.  It
never raises on any str, and a text without a command block comes back unchanged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

STATUSES = ("new", "open", "pending", "resolved", "closed")
AGENT_STATUSES = ("open", "pending", "resolved", "closed")   # what #status may set
PRIORITIES = ("low", "normal", "high", "urgent")
COMMANDS = ("status", "priority", "assign", "queue", "tag", "untag", "close", "note")

MAX_TAG = 64
MAX_ERROR_LINE = 120      # a line quoted in an error is cut to this many characters

_KNOWN = ", ".join(f"#{name}" for name in COMMANDS)
_TAG = re.compile(rf"(?:[^\W_]|[-_.:/]){{1,{MAX_TAG}}}")
# Leading and trailing blanks: Unicode whitespace (str.strip() covers U+00A0) plus the
# invisible characters HTML conversion and editors leave: zero-width space/joiners,
# word joiner, BOM.
# Anchored at the start only (used on the reversed line for the end), so trimming stays
# linear on a hostile line of a million spaces.
_BLANKS = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]*")


@dataclass(frozen=True)
class Command:
    name: str        # one of COMMANDS
    argument: str    # normalized: status/priority/tag lower-cased; '' for close/note
    line: str        # the line as written (stripped)


@dataclass(frozen=True)
class CommandBlock:
    commands: tuple[Command, ...]
    errors: tuple[str, ...]   # one line each, for the agent
    text: str                 # the text without the command block (leading blank lines dropped)

    @property
    def note(self) -> bool:
        """A `#note` command is present: the mail is an internal note."""
        return any(command.name == "note" for command in self.commands)


def split_commands(text: str) -> CommandBlock:
    """The command block at the top of `text`, its errors, and the rest of the text."""
    commands: list[Command] = []
    errors: list[str] = []
    seen_command_line = False
    offset = 0
    for raw in text.splitlines(keepends=True):
        line = _trim(raw)
        if line and not _is_command_line(line):
            break
        if line:
            seen_command_line = True
            result = _command(line)
            (commands if isinstance(result, Command) else errors).append(result)
        offset += len(raw)
    if not seen_command_line:
        return CommandBlock((), (), text)
    return CommandBlock(tuple(commands), tuple(errors), text[offset:])


def _trim(line: str) -> str:
    start = _BLANKS.match(line).end()
    if start == len(line):
        return ""
    return line[start:len(line) - _BLANKS.match(line[::-1]).end()]


def _is_command_line(line: str) -> bool:
    return len(line) > 1 and line[0] == "#" and line[1].isalpha()


def _command(line: str) -> Command | str:
    """One command line (trimmed, starting with '#' and a letter): a Command or an error."""
    word, argument = _split_word(line[1:])
    name = word.lower()
    shown = _shorten(line)
    if name not in COMMANDS:
        return f"#{_shorten(word)}: unknown command (known: {_KNOWN})"
    if name in ("close", "note"):
        if argument:
            return f"{shown}: #{name} takes no argument"
        return Command(name, "", line)
    if not argument:
        return f"{shown}: needs {_WANTS[name]}"
    if name == "status":
        value = argument.lower()
        if value not in AGENT_STATUSES:
            return f"{shown}: not one of {', '.join(AGENT_STATUSES)}"
        return Command(name, value, line)
    if name == "priority":
        value = argument.lower()
        if value not in PRIORITIES:
            return f"{shown}: not one of {', '.join(PRIORITIES)}"
        return Command(name, value, line)
    if name in ("tag", "untag"):
        if len(argument.split()) > 1:
            return f"{shown}: one tag per line"
        tag = argument.lower()
        if not _TAG.fullmatch(tag):
            return (f"{shown}: a tag is letters, digits and - _ . : / "
                    f"(at most {MAX_TAG} characters)")
        return Command(name, tag, line)
    return Command(name, " ".join(argument.split()), line)      # assign, queue


_WANTS = {
    "status": f"a status ({', '.join(AGENT_STATUSES)})",
    "priority": f"a priority ({', '.join(PRIORITIES)})",
    "assign": "an agent",
    "queue": "a queue name",
    "tag": "a tag",
    "untag": "a tag",
}


def _split_word(body: str) -> tuple[str, str]:
    """('status', 'pending') from 'status   pending'; any whitespace separates."""
    parts = body.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _shorten(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= MAX_ERROR_LINE else value[:MAX_ERROR_LINE - 1] + "…"


__all__ = ["STATUSES", "AGENT_STATUSES", "PRIORITIES", "COMMANDS", "Command", "CommandBlock",
           "split_commands"]
