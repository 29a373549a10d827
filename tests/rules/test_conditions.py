"""An admin's `when:` conditions: what they match, why, and what is wrong with them."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rules.conditions import ALWAYS, compile_condition
from rules.facts import Contact, Facts

WHEN = ("rules", 2, "when")


class OfficeHours:
    """Open Monday to Friday, 09:00 to 17:00 UTC."""

    def is_open(self, at: datetime) -> bool:
        return at.weekday() < 5 and 9 <= at.hour < 17


class Watched:
    """A calendar that notes every time it is asked."""

    def __init__(self):
        self.asked: list[datetime] = []

    def is_open(self, at: datetime) -> bool:
        self.asked.append(at)
        return True


CALENDARS = {"office": OfficeHours(), "always": Watched()}

# Ana, a gold customer, writes a new mail on a Monday morning.
ANA = Facts(
    from_address="ana@customer.example",
    to=("support@example.com", "ops@example.com"),
    cc=("boss@customer.example",),
    recipient="support@example.com",
    subject="Invoice 42 overdue",
    body="Hello,\nplease refund my order.\nThanks, Ana",
    headers=(("X-Priority", "1"), ("Received", "from a"), ("Received", "from b"),
             ("X-Spam-Flag", "NO")),
    attachments=(("Rechnung.PDF", "application/pdf"),),
    is_reply=False,
    received_at=datetime(2026, 11, 23, 10, 5, tzinfo=timezone.utc),
    contact=Contact("ana@customer.example", "Ana", org="Straße GmbH", tier="Gold"),
)
# A stranger answers a ticket on a Sunday night: no cc, no attachment, no contacts: entry.
STRANGER = Facts(
    from_address="someone@mail.example",
    to=("support@example.com",),
    recipient="support@example.com",
    subject="Hello",
    body="Thanks!",
    is_reply=True,
    received_at=datetime(2026, 11, 22, 3, 0, tzinfo=timezone.utc),
)


def when(data, calendars=CALENDARS):
    condition, problems = compile_condition(data, WHEN, calendars=calendars)
    assert problems == []
    assert condition is not None
    return condition


def problems(data, calendars=CALENDARS):
    condition, found = compile_condition(data, WHEN, calendars=calendars)
    assert condition is None
    return found


def problem(data, calendars=CALENDARS):
    (only,) = problems(data, calendars)
    return only


# --- what matches ------------------------------------------------------------------------

CASES = [
    # addresses and domains, case-insensitive
    ({"from": "ANA@Customer.Example"}, ANA, True),
    ({"from": "ana@customer.example"}, STRANGER, False),
    ({"from_domain": "customer.example"}, ANA, True),
    ({"from_domain": "CUSTOMER.example"}, STRANGER, False),
    ({"to": "ops@example.com"}, ANA, True),                    # any of several values
    ({"to": "ops@example.com"}, STRANGER, False),
    ({"to": {"contains": "OPS@"}}, ANA, True),
    ({"cc": "boss@customer.example"}, ANA, True),
    ({"cc": "boss@customer.example"}, STRANGER, False),        # no value: false
    ({"cc": {"exists": True}}, ANA, True),
    ({"cc": {"exists": True}}, STRANGER, False),
    ({"cc": {"exists": False}}, STRANGER, True),
    ({"cc": {"exists": False}}, ANA, False),
    ({"recipient": "Support@Example.com"}, ANA, True),
    ({"recipient": {"matches": "^billing@"}}, ANA, False),
    # subject and body
    ({"subject": "invoice 42 OVERDUE"}, ANA, True),            # bare value: equals
    ({"subject": "invoice"}, ANA, False),                      # equals is the whole value
    ({"subject": {"equals": "hello"}}, STRANGER, True),
    ({"subject": {"contains": "INVOICE"}}, ANA, True),
    ({"subject": {"contains": "42"}}, ANA, True),
    ({"subject": {"contains": "refund"}}, ANA, False),
    ({"subject": {"matches": "invoice"}}, ANA, False),         # matches is case-sensitive
    ({"subject": {"matches": r"(?i)\binvoice\b"}}, ANA, True),
    ({"subject": ["hello", "hi"]}, STRANGER, True),            # bare list: in
    ({"subject": ["hello", "hi"]}, ANA, False),
    ({"subject": {"in": ["HELLO"]}}, STRANGER, True),
    ({"body": {"contains": "Refund"}}, ANA, True),
    ({"body": {"contains": "refund"}}, STRANGER, False),
    ({"body": {"matches": "(?m)^please"}}, ANA, True),
    # attachments: each file name and content type
    ({"attachment": "rechnung.pdf"}, ANA, True),
    ({"attachment": "application/pdf"}, ANA, True),
    ({"attachment": {"matches": r"\.pdf$"}}, ANA, False),      # the name says .PDF
    ({"attachment": {"matches": r"(?i)\.pdf$"}}, ANA, True),
    ({"attachment": {"exists": True}}, STRANGER, False),
    # the contacts: entry
    ({"customer_tier": "gold"}, ANA, True),
    ({"customer_tier": "gold"}, STRANGER, False),
    ({"customer_tier": {"exists": False}}, STRANGER, True),
    ({"customer_tier": ["silver", "gold"]}, ANA, True),
    ({"from_org": "STRASSE GMBH"}, ANA, True),                 # casefold: ß is ss
    ({"from_org": {"contains": "gmbh"}}, STRANGER, False),
    # headers: names and values case-insensitive, every instance a value
    ({"header": {"x-priority": "1"}}, ANA, True),
    ({"header": {"X-Priority": "1"}}, ANA, True),
    ({"header": {"X-Priority": ["1", "2"]}}, ANA, True),
    ({"header": {"X-Priority": {"in": ["3", "4"]}}}, ANA, False),
    ({"header": {"X-Spam-Flag": "no"}}, ANA, True),
    ({"header": {"X-Spam-Flag": {"matches": "^no$"}}}, ANA, False),
    ({"header": {"Received": {"contains": "from b"}}}, ANA, True),
    ({"header": {"X-Priority": {"exists": True}}}, ANA, True),
    ({"header": {"X-Priority": {"exists": True}}}, STRANGER, False),
    ({"header": {"X-Priority": {"exists": False}}}, STRANGER, True),
    ({"header": {"X-Priority": "1"}}, STRANGER, False),        # missing header
    ({"header": {"X-Priority": "1", "X-Spam-Flag": "yes"}}, ANA, False),   # all names
    ({"header": {"X-Priority": "1", "X-Spam-Flag": "no"}}, ANA, True),
    # flags and calendars
    ({"is_reply": True}, STRANGER, True),
    ({"is_reply": True}, ANA, False),
    ({"is_reply": False}, ANA, True),
    ({"is_new": True}, ANA, True),
    ({"is_new": True}, STRANGER, False),
    ({"is_new": False}, STRANGER, True),
    ({"business_hours": "office"}, ANA, True),
    ({"business_hours": "office"}, STRANGER, False),
    # several operators, several keys, all / any / not
    ({"subject": {"contains": "invoice", "matches": r"\d+"}}, ANA, True),
    ({"subject": {"contains": "invoice", "matches": r"^\d+$"}}, ANA, False),
    ({"cc": {"exists": True, "contains": "boss@"}}, ANA, True),
    ({"from_domain": "customer.example", "subject": {"contains": "invoice"}}, ANA, True),
    ({"from_domain": "customer.example", "subject": "hello"}, ANA, False),
    ({"all": [{"customer_tier": "gold"}, {"is_new": True}]}, ANA, True),
    ({"all": [{"customer_tier": "gold"}, {"is_new": False}]}, ANA, False),
    ({"all": [{"subject": "hello"}]}, STRANGER, True),
    ({"any": [{"from_domain": "partner.example"}, {"subject": "hello"}]}, STRANGER, True),
    ({"any": [{"from_domain": "partner.example"}, {"subject": "hello"}]}, ANA, False),
    ({"not": {"is_reply": True}}, ANA, True),
    ({"not": {"is_reply": True}}, STRANGER, False),
    ({"not": {"cc": {"exists": True}}}, STRANGER, True),
    ({"any": [{"from_domain": "partner.example"},
              {"all": [{"customer_tier": "gold"}, {"not": {"is_reply": True}},
                       {"business_hours": "office"}]}]}, ANA, True),
    ({"any": [{"from_domain": "partner.example"},
              {"all": [{"customer_tier": "gold"}, {"not": {"is_reply": True}},
                       {"business_hours": "office"}]}]}, STRANGER, False),
    ({"not": {"any": [{"cc": {"exists": True}}, {"attachment": {"exists": True}}]},
      "is_reply": True}, STRANGER, True),
]


def _case_id(case):
    data, facts, expected = case
    return f"{'ANA' if facts is ANA else 'STRANGER'}-{expected}-{data}"


@pytest.mark.parametrize("data, facts, expected", CASES, ids=[_case_id(c) for c in CASES])
def test_each_condition_decides_and_explain_agrees(data, facts, expected):
    condition = when(data)
    assert condition.test(facts) is expected
    ok, reason = condition.explain(facts)
    assert ok is expected
    assert reason and "\n" not in reason


def test_no_condition_matches_every_message():
    assert ALWAYS.test(ANA) and ALWAYS.test(STRANGER)
    assert ALWAYS.explain(STRANGER) == (True, "no condition: every message")


def test_keys_are_tested_in_the_order_written_and_stop_at_the_first_false():
    watched = Watched()
    calendars = {"watched": watched}
    when({"subject": "invoice", "business_hours": "watched"}, calendars).test(STRANGER)
    assert watched.asked == []
    when({"any": [{"subject": "hello"}, {"business_hours": "watched"}]}, calendars).test(STRANGER)
    assert watched.asked == []
    when({"business_hours": "watched", "subject": "invoice"}, calendars).test(STRANGER)
    assert watched.asked == [STRANGER.received_at]


# --- why it matched ----------------------------------------------------------------------

def reason(data, facts):
    return when(data).explain(facts)


def test_a_field_test_quotes_the_value_and_the_test():
    assert reason({"subject": {"matches": r"(?i)\binvoice\b"}}, ANA) == \
        (True, r"subject 'Invoice 42 overdue' matches '(?i)\binvoice\b'")
    assert reason({"subject": {"matches": r"(?i)\binvoice\b"}}, STRANGER) == \
        (False, r"subject 'Hello' does not match '(?i)\binvoice\b'")
    assert reason({"subject": ["hello", "hi"]}, STRANGER) == \
        (True, "subject 'Hello' is one of 'hello', 'hi'")
    assert reason({"from": {"contains": "q"}}, STRANGER) == \
        (False, "from 'someone@mail.example' does not contain 'q'")


def test_a_multi_valued_field_names_the_value_that_matched_or_lists_them():
    assert reason({"to": "OPS@example.com"}, ANA) == \
        (True, "to 'ops@example.com' equals 'OPS@example.com'")
    assert reason({"to": "billing@example.com"}, ANA) == \
        (False, "no to address equals 'billing@example.com' "
                "(to: 'support@example.com', 'ops@example.com')")
    assert reason({"attachment": "application/pdf"}, ANA) == \
        (True, "attachment 'application/pdf' equals 'application/pdf'")
    assert reason({"header": {"Received": "from c"}}, ANA) == \
        (False, "no Received header equals 'from c' (header Received: 'from a', 'from b')")


def test_an_empty_field_says_so():
    assert reason({"cc": "boss@customer.example"}, STRANGER) == (False, "cc is empty")
    assert reason({"cc": {"exists": False}}, STRANGER) == (True, "cc is empty")
    assert reason({"cc": {"exists": False}}, ANA) == \
        (False, "cc is not empty ('boss@customer.example')")
    assert reason({"customer_tier": "gold"}, STRANGER) == \
        (False, "customer_tier is empty (the sender is not in contacts:)")
    assert reason({"header": {"X-Priority": "1"}}, STRANGER) == \
        (False, "there is no X-Priority header")
    assert reason({"header": {"X-Priority": {"exists": True}}}, ANA) == \
        (True, "header X-Priority is present ('1')")


def test_a_long_body_is_quoted_on_one_line_around_what_matched():
    facts = Facts(body="Dear team,\n" + "blah " * 100 + "please refund me\n" + "more " * 50)
    ok, why = when({"body": {"contains": "REFUND"}}).explain(facts)
    assert ok
    assert why.startswith("body '…") and why.endswith("…' contains 'REFUND'")
    assert "refund" in why and "\n" not in why
    assert len(why) < 100
    ok, why = when({"body": {"matches": "refund"}}).explain(facts)
    assert ok and "refund" in why.split("matches")[0]
    ok, why = when({"body": {"contains": "invoice"}}).explain(facts)
    assert why.startswith("body 'Dear team, blah") and "…' does not contain 'invoice'" in why


def test_several_operators_give_every_reason_or_the_failing_one():
    assert reason({"subject": {"contains": "invoice", "matches": r"\d"}}, ANA) == \
        (True, r"subject 'Invoice 42 overdue' contains 'invoice' and "
               r"subject 'Invoice 42 overdue' matches '\d'")
    assert reason({"subject": {"contains": "invoice", "matches": "^x"}}, ANA) == \
        (False, "subject 'Invoice 42 overdue' does not match '^x'")


def test_all_any_and_not_name_the_deciding_conditions():
    both = {"all": [{"customer_tier": "gold"}, {"is_new": True}]}
    assert reason(both, ANA) == \
        (True, "all of: customer_tier 'Gold' equals 'gold'; the mail opens a new ticket")
    assert reason(both, STRANGER) == \
        (False, "customer_tier is empty (the sender is not in contacts:)")
    either = {"any": [{"from_domain": "partner.example"}, {"subject": "hello"}]}
    assert reason(either, STRANGER) == (True, "subject 'Hello' equals 'hello'")
    assert reason(either, ANA) == \
        (False, "none of: from_domain 'customer.example' does not equal 'partner.example'; "
                "subject 'Invoice 42 overdue' does not equal 'hello'")
    assert reason({"not": {"is_reply": True}}, STRANGER) == \
        (False, "the mail answers a ticket")
    several_keys = {"from_domain": "customer.example", "subject": "hello"}
    assert reason(several_keys, ANA) == \
        (False, "subject 'Invoice 42 overdue' does not equal 'hello'")


def test_business_hours_name_the_time_and_the_calendar():
    assert reason({"business_hours": "office"}, ANA) == \
        (True, "received 2026-11-23 10:05 UTC is within calendar 'office'")
    assert reason({"business_hours": "office"}, STRANGER) == \
        (False, "received 2026-11-22 03:00 UTC is outside calendar 'office'")


def test_reply_flags_say_what_the_mail_does():
    assert reason({"is_reply": True}, STRANGER) == (True, "the mail answers a ticket")
    assert reason({"is_new": True}, STRANGER) == (False, "the mail answers a ticket")
    assert reason({"is_reply": True}, ANA) == (False, "the mail opens a new ticket")


# --- what is wrong with it ---------------------------------------------------------------

def test_an_unknown_field_is_refused_with_a_hint():
    path, message = problem({"subjet": "x"})
    assert path == (*WHEN, "subjet")
    assert message.startswith("unknown field 'subjet'; did you mean 'subject'? (fields: from, "
                              "from_domain, to, cc,")
    assert message.endswith("business_hours, all, any, not)")
    assert problem({"priority": "x"})[1].startswith("unknown field 'priority' (fields: from,")


def test_an_unknown_operator_is_refused_with_a_hint():
    assert problem({"any": [{"subject": {"contain": "x"}}]}) == (
        (*WHEN, "any", 0, "subject", "contain"),
        "unknown operator 'contain'; did you mean 'contains'? "
        "(operators: equals, contains, matches, in, exists)")


@pytest.mark.parametrize("text, detail", [
    (r"(a)\1", r"invalid escape sequence: \1"),
    ("(?<=x)y", "invalid perl operator: (?<="),
    ("(?=a)", "invalid perl operator: (?="),
])
def test_a_pattern_re2_refuses_is_reported_at_its_matches_key(text, detail):
    assert problem({"any": [{"subject": {"matches": text}}]}) == (
        (*WHEN, "any", 0, "subject", "matches"),
        f"RE2 cannot compile '{text}': {detail} — "
        "RE2 has no backreferences or lookaround (see docs/rules.md)")


def test_empty_conditions_are_refused():
    hint = "empty condition; write at least one field"
    assert problem({}) == (WHEN, hint + ", or leave out `when:` to match every message")
    assert problem(None) == (WHEN, hint + ", or leave out `when:` to match every message")
    assert problem({"any": [{"subject": "x"}, {}]}) == ((*WHEN, "any", 1), hint)
    assert problem({"not": None}) == ((*WHEN, "not"), hint)


def test_a_condition_is_a_mapping():
    assert problem("subject") == \
        (WHEN, "expected a condition (a mapping of fields to tests), got string 'subject'")
    assert problem([{"subject": "x"}]) == \
        (WHEN, "expected a condition (a mapping of fields to tests), got a list")
    assert problem({"all": [{"subject": "x"}, "is_reply"]}) == \
        ((*WHEN, "all", 1), "expected a condition (a mapping) in 'all', got string 'is_reply'")
    assert problem({"not": "is_reply"}) == \
        ((*WHEN, "not"), "expected a condition (a mapping) for 'not', got string 'is_reply'")
    assert problem({"not": [{"is_reply": True}]}) == \
        ((*WHEN, "not"), "expected a condition (a mapping) for 'not', got a list; "
                         "to negate several, write not: {any: [...]}")


def test_all_and_any_take_a_non_empty_list():
    assert problem({"any": {"subject": "x"}}) == \
        ((*WHEN, "any"), "expected a list of conditions for 'any', got a mapping")
    assert problem({"all": "subject"}) == \
        ((*WHEN, "all"), "expected a list of conditions for 'all', got string 'subject'")
    assert problem({"any": []}) == \
        ((*WHEN, "any"), "expected at least one condition in the list for 'any'")


def test_a_text_field_wants_text():
    assert problem({"subject": True}) == (
        (*WHEN, "subject"),
        "expected text, a list or a mapping of operators for 'subject', got boolean true "
        "(quote it, as in 'true', if you mean the word)")
    assert problem({"subject": None}) == (
        (*WHEN, "subject"),
        "expected text, a list or a mapping of operators for 'subject', got an empty value")
    assert problem({"subject": {}}) == (
        (*WHEN, "subject"),
        "expected at least one operator for 'subject' "
        "(operators: equals, contains, matches, in, exists)")
    assert problem({"subject": {"equals": ["a", "b"]}}) == (
        (*WHEN, "subject", "equals"),
        "expected text for 'equals', got a list; to accept any of several values write in: [...]")
    assert problem({"subject": {"contains": False}})[0] == (*WHEN, "subject", "contains")
    assert problem({"subject": {"matches": {"re": "x"}}}) == (
        (*WHEN, "subject", "matches"), "expected text for 'matches', got a mapping")


def test_empty_text_and_empty_lists_are_refused():
    assert problem({"subject": ""}) == (
        (*WHEN, "subject"),
        "empty text never matches (an empty value counts as missing); "
        "to test that there is none write exists: false")
    assert problem({"subject": {"contains": ""}}) == (
        (*WHEN, "subject", "contains"),
        "contains needs at least one character; to test that there is a value write exists: true")
    assert problem({"to": []}) == ((*WHEN, "to"), "empty list for 'to'; list at least one value")
    assert problem({"to": {"in": []}}) == (
        (*WHEN, "to", "in"), "expected a non-empty list of texts for 'in', got an empty list")
    assert problem({"to": {"in": "a@x.org"}}) == (
        (*WHEN, "to", "in"), "expected a non-empty list of texts for 'in', got string 'a@x.org'")


def test_each_bad_list_item_is_reported_at_its_index():
    assert problems({"from_domain": ["a.example", ["b.example"], "c.example", None]}) == [
        ((*WHEN, "from_domain", 1), "expected text in the list, got a list"),
        ((*WHEN, "from_domain", 3), "expected text in the list, got an empty value"),
    ]
    assert problem({"customer_tier": {"in": ["gold", True]}}) == (
        (*WHEN, "customer_tier", "in", 1),
        "expected text in the list, got boolean true (quote it, as in 'true', if you mean the word)")


def test_exists_and_reply_flags_take_yaml_booleans():
    assert problem({"cc": {"exists": "yes"}}) == \
        ((*WHEN, "cc", "exists"), "exists takes true or false, got string 'yes'")
    assert problem({"is_reply": "yes"}) == \
        ((*WHEN, "is_reply"), "is_reply takes true or false, got string 'yes'")
    assert problem({"is_new": 1}) == ((*WHEN, "is_new"), "is_new takes true or false, got integer 1")


def test_business_hours_need_a_defined_calendar():
    assert problem({"business_hours": "ofice"}) == (
        (*WHEN, "business_hours"),
        "no calendar 'ofice'; did you mean 'office'? (calendars: office, always)")
    assert problem({"business_hours": "office"}, calendars={}) == (
        (*WHEN, "business_hours"), "no calendar 'office' (no calendars are defined)")
    assert problem({"business_hours": True}) == (
        (*WHEN, "business_hours"),
        "business_hours takes a calendar name, got boolean true; "
        "for outside hours write not: {business_hours: NAME}")


def test_header_wants_names_and_tests():
    assert problem({"header": "X-Priority"}) == (
        (*WHEN, "header"),
        "expected a mapping of header names to tests for 'header', got string 'X-Priority'")
    assert problem({"header": {}}) == (
        (*WHEN, "header"),
        "expected a mapping of header names to tests for 'header', got an empty mapping")
    assert problem({"header": {"X Priority": "1"}}) == (
        (*WHEN, "header", "X Priority"),
        "not a header name: 'X Priority' (write it as in the mail, e.g. X-Priority)")
    assert problem({"header": {"X-Priority": {"exist": True}}}) == (
        (*WHEN, "header", "X-Priority", "exist"),
        "unknown operator 'exist'; did you mean 'exists'? "
        "(operators: equals, contains, matches, in, exists)")


def test_every_problem_in_a_tree_is_reported_in_order():
    data = {
        "subjet": "invoice",
        "any": [
            {"from_domain": ["a.example", {}]},
            {"subject": {"matches": r"(a)\1", "contain": "x"}},
            {"not": {"is_reply": "no"}},
        ],
        "business_hours": "ofice",
        "header": {"X-Spam-Flag": {"exists": "yes"}},
        "cc": {"exists": True},                                  # fine
    }
    found = problems(data)
    assert [path for path, _ in found] == [
        (*WHEN, "subjet"),
        (*WHEN, "any", 0, "from_domain", 1),
        (*WHEN, "any", 1, "subject", "matches"),
        (*WHEN, "any", 1, "subject", "contain"),
        (*WHEN, "any", 2, "not", "is_reply"),
        (*WHEN, "business_hours"),
        (*WHEN, "header", "X-Spam-Flag", "exists"),
    ]
    assert found[2][1].startswith("RE2 cannot compile")


def test_unquoted_numbers_are_refused_because_yaml_changed_their_spelling():
    for data, path in (({"subject": {"contains": 7}}, ("when", "subject", "contains")),
                       ({"subject": 2.1}, ("when", "subject")),
                       ({"header": {"X-Priority": 1}}, ("when", "header", "X-Priority"))):
        condition, problems = compile_condition(data, ("when",), calendars={})
        assert condition is None
        [(where, message)] = problems
        assert where == path
        assert message.startswith("expected text, got ") and "quote it" in message
