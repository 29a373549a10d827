"""Agents act on a ticket with `#` lines at the top of their mail (DESIGN §5)."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.commands import (COMMANDS, PRIORITIES, STATUSES, Command, CommandBlock,
                              split_commands)

KNOWN = "(known: #status, #priority, #assign, #queue, #tag, #untag, #close, #note)"


def names_and_arguments(block: CommandBlock) -> list[tuple[str, str]]:
    return [(command.name, command.argument) for command in block.commands]


def test_commands_at_the_top_act_and_the_customer_sees_only_the_rest():
    block = split_commands("#status pending\n#priority urgent\n#assign alice\n#queue billing\n"
                           "#tag vip\n\nHello Ms Doe,\nwe are on it.\n")
    assert names_and_arguments(block) == [("status", "pending"), ("priority", "urgent"),
                                          ("assign", "alice"), ("queue", "billing"),
                                          ("tag", "vip")]
    assert block.errors == ()
    assert block.text == "Hello Ms Doe,\nwe are on it.\n"
    assert not block.note


def test_a_note_is_flagged_and_close_takes_no_argument():
    block = split_commands("#note\n#close\nCustomer called, printer replaced.")
    assert names_and_arguments(block) == [("note", ""), ("close", "")]
    assert block.note
    assert block.text == "Customer called, printer replaced."


def test_mail_without_commands_comes_back_unchanged():
    for text in ("Hello,\n#status pending\n", "", "\n\n  Hi\n", "#1042 is still broken\n#close",
                 "# Heading\n#close", "#\n#close", "> #close\n"):
        assert split_commands(text) == CommandBlock((), (), text)


def test_a_ticket_number_or_any_text_line_ends_the_block():
    block = split_commands("#status open\n#1042 is still broken\n#close\n")
    assert names_and_arguments(block) == [("status", "open")]
    assert block.text == "#1042 is still broken\n#close\n"


def test_blank_lines_before_and_between_commands_and_outlook_spaces_are_allowed():
    text = "\r\n \r\n\u00a0#status pending\r\n\r\n\t#TAG VIP\u00a0\r\n\u00a0\r\nHello,\r\nthanks."
    block = split_commands(text)
    assert names_and_arguments(block) == [("status", "pending"), ("tag", "vip")]
    assert [command.line for command in block.commands] == ["#status pending", "#TAG VIP"]
    assert block.text == "Hello,\r\nthanks."


def test_a_byte_order_mark_or_zero_width_space_before_the_hash_is_ignored():
    assert names_and_arguments(split_commands("\ufeff#close\nok")) == [("close", "")]
    assert names_and_arguments(split_commands("\u200b#close\nok")) == [("close", "")]


def test_command_words_are_case_insensitive_and_values_normalized():
    block = split_commands("#Status Resolved\n#PRIORITY High\n#Assign  Alice   Smith \n"
                           "#tag Customer:ACME/EU\n#UnTag old-Thing_2.0")
    assert names_and_arguments(block) == [
        ("status", "resolved"), ("priority", "high"), ("assign", "Alice Smith"),
        ("tag", "customer:acme/eu"), ("untag", "old-thing_2.0")]


def test_commands_may_repeat_and_are_kept_in_order():
    block = split_commands("#tag vip\n#tag billing\n#status open\n#status pending\nHi")
    assert names_and_arguments(block) == [("tag", "vip"), ("tag", "billing"),
                                          ("status", "open"), ("status", "pending")]


def test_a_block_of_commands_only_leaves_no_text():
    assert split_commands("#close\n\n\n").text == ""
    assert split_commands("#close").text == ""


@pytest.mark.parametrize("line, error", [
    ("#stauts pending", f"#stauts: unknown command {KNOWN}"),
    ("#priority asap", "#priority asap: not one of low, normal, high, urgent"),
    ("#status new", "#status new: not one of open, pending, resolved, closed"),
    ("#status", "#status: needs a status (open, pending, resolved, closed)"),
    ("#priority", "#priority: needs a priority (low, normal, high, urgent)"),
    ("#assign", "#assign: needs an agent"),
    ("#queue  ", "#queue: needs a queue name"),
    ("#tag", "#tag: needs a tag"),
    ("#tag vip billing", "#tag vip billing: one tag per line"),
    ("#untag a,b", "#untag a,b: a tag is letters, digits and - _ . : / (at most 64 characters)"),
    ("#tag " + "x" * 65, "#tag " + "x" * 65
     + ": a tag is letters, digits and - _ . : / (at most 64 characters)"),
    ("#close now", "#close now: #close takes no argument"),
    ("#note to self", "#note to self: #note takes no argument"),
])
def test_mistakes_give_one_error_line_each_and_the_line_is_still_removed(line, error):
    block = split_commands(f"{line}\n#tag ok\nDear customer")
    assert block.errors == (error,)
    assert names_and_arguments(block) == [("tag", "ok")]
    assert block.text == "Dear customer"


def test_error_lines_stay_one_short_line_on_absurd_input():
    block = split_commands("#" + "a" * 10_000 + "\n#priority " + "b\tc " * 5_000)
    assert len(block.errors) == 2
    assert all("\n" not in error and len(error) < 250 for error in block.errors)


def test_the_constants_agree_with_the_contract():
    assert STATUSES == ("new", "open", "pending", "resolved", "closed")
    assert PRIORITIES == ("low", "normal", "high", "urgent")
    assert COMMANDS == ("status", "priority", "assign", "queue", "tag", "untag", "close", "note")
    assert Command("close", "", "#close") == split_commands("#close").commands[0]


# -- properties ---------------------------------------------------------------------

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMMANDISH = st.lists(st.sampled_from(
    ["#status pending", "#close", "#tag x", "#stauts", "#", "#1", " ", "", "\u00a0#note",
     "text", "# x", "#priority", "\r", "\u2028", "\ufeff", "#tag a b"]), max_size=8).map("\n".join)


@SETTINGS
@given(st.one_of(st.text(max_size=300), COMMANDISH, st.tuples(COMMANDISH, st.text(max_size=80))
                 .map("".join)))
def test_arbitrary_text_never_raises_and_gives_plain_values(text):
    block = split_commands(text)
    assert all(command.name in COMMANDS for command in block.commands)
    assert all(isinstance(error, str) and not error.splitlines()[1:] for error in block.errors)
    assert text.endswith(block.text)
    if block.commands or block.errors:
        assert not block.text or block.text.splitlines()[0].strip()


ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
TRIM = re.compile(rf"^[\s{ZERO_WIDTH}]+|[\s{ZERO_WIDTH}]+$")


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.tuples(COMMANDISH, st.text(max_size=80)).map("".join)))
def test_text_without_a_leading_command_line_comes_back_unchanged(text):
    first = next(filter(None, (TRIM.sub("", line) for line in text.splitlines())), "")
    if len(first) > 1 and first[0] == "#" and first[1].isalpha():
        return
    assert split_commands(text) == CommandBlock((), (), text)


@SETTINGS
@given(st.text(max_size=200).filter(
    lambda t: not t.lstrip().startswith("#") and not any(c in ZERO_WIDTH for c in t)))
def test_text_after_commands_is_kept_as_written(rest):
    block = split_commands("#status pending\n\n" + rest)
    assert block.commands == (Command("status", "pending", "#status pending"),)
    lines = rest.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    assert block.text == "".join(lines[first:])
