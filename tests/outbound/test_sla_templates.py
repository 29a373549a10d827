"""SLA escalation mails: what an agent or a manager reads when a clock runs late."""
import copy

import pytest

from templates import SAMPLE_CONTEXTS, TemplateEnvironment

SLA_TEMPLATES = ("sla_warning", "sla_breach")
NO_MESSAGE = "(no message from the customer yet)"
RULE = "-" * 70
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def env():
    return TemplateEnvironment(None)


def context(name, *, sla=None, ticket=None, helpdesk=None, **top):
    """A deep copy of the sample context of `name`, with some values changed."""
    ctx = copy.deepcopy(SAMPLE_CONTEXTS[name])
    ctx["sla"].update(sla or {})
    ctx["ticket"].update(ticket or {})
    ctx["helpdesk"].update(helpdesk or {})
    ctx.update(top)
    return ctx


BREACHED = {"step": "breach", "breached": True, "left": "", "overdue": "2h 5m",
            "used": "10h 5m", "percent_used": 126}
RUNNING = {"step": "80%", "breached": False, "left": "1h 36m", "overdue": "",
           "used": "6h 24m", "percent_used": 80}


# -- the samples --------------------------------------------------------------------

def test_samples_have_the_same_shape_and_differ_in_breach():
    warning, breach = SAMPLE_CONTEXTS["sla_warning"], SAMPLE_CONTEXTS["sla_breach"]
    assert warning.keys() == breach.keys()
    for key in ("helpdesk", "ticket", "recipient", "sla", "last_message"):
        assert warning[key].keys() == breach[key].keys(), key
    assert warning["sla"]["breached"] is False and warning["sla"]["overdue"] == ""
    assert breach["sla"]["breached"] is True and breach["sla"]["left"] == ""


def test_warning_says_how_much_is_used_and_left_and_when_it_is_due(env):
    text = env.render("sla_warning", SAMPLE_CONTEXTS["sla_warning"]).text
    first = text.splitlines()[0]
    assert first == "Ticket #1042 has used 80% of its first response target (8h):"
    assert "1h 36m of business time left, due 2026-12-01 09:30 CET." in text
    assert "[Acme #1042] Printer on floor 3 is jammed" in text
    assert "2026-12-01 08:30 UTC" in text
    assert "overdue" not in text
    assert "Assignee    alice@example.com" in text
    assert text.endswith("-- \nAcme Support <support@example.com>, for Alice Agent\n")


def test_breach_says_how_long_overdue(env):
    text = env.render("sla_breach", SAMPLE_CONTEXTS["sla_breach"]).text
    assert text.startswith("Ticket #1042 breached its first response target (8h, policy "
                           "standard):\noverdue by 2h 5m of business time, it was due "
                           "2026-12-01 09:30 CET.\n")
    assert "Used        10h 5m of business time (126%), overdue by 2h 5m" in text
    assert "[Acme #1042]" in text
    assert "still overdue" not in text
    assert " left" not in text
    assert text.endswith(", for bob@example.com\n")          # a plain address


def test_breach_reminder_says_still_overdue(env):
    ctx = context("sla_breach", sla={"step": "breach+2h", "overdue": "4h 5m",
                                     "clock": "resolution", "clock_label": "resolution"})
    rendered = env.render("sla_breach", ctx)
    assert rendered.text.startswith("Ticket #1042 is still overdue on its resolution target\n")
    assert "overdue by 4h 5m of business time now" in rendered.text
    assert "still overdue" in rendered.html
    assert "4h 5m" in rendered.html


@pytest.mark.parametrize("name", SLA_TEMPLATES)
def test_each_template_follows_breached_not_its_name(env, name):
    """An admin may name either template at any step: the facts come from `breached`."""
    late = env.render(name, context(name, sla=BREACHED))
    assert "breached its first response target" in late.text
    assert "overdue by 2h 5m" in late.text and "overdue by <strong>2h 5m</strong>" in late.html
    on_time = env.render(name, context(name, sla=RUNNING))
    assert "has used 80% of its first response target" in on_time.text
    assert "1h 36m of business time left" in on_time.text
    assert "<strong>1h 36m</strong> of business time left" in on_time.html
    assert "overdue" not in on_time.text and "overdue" not in on_time.html


# -- what the reader checks -----------------------------------------------------------

@pytest.mark.parametrize("name", SLA_TEMPLATES)
def test_both_parts_carry_ticket_clock_due_time_and_the_customers_words(env, name):
    rendered = env.render(name, SAMPLE_CONTEXTS[name])
    summary = SAMPLE_CONTEXTS[name]["last_message"]["summary"]
    for part in (rendered.text, rendered.html):
        assert "#1042" in part and "[Acme #1042]" in part
        assert "first response" in part
        assert "2026-12-01 09:30 CET" in part
        assert "policy standard" in part
        assert "2026-12-01 08:10 UTC" in part
        assert summary in " ".join(part.split())                # text wraps it at 72
    assert rendered.text.count(RULE) == 2
    between = rendered.text.split(RULE)[1]
    assert " ".join(between.split()) == summary                 # wrapped, not changed
    assert "Jörg Müller <joerg@example.org>:" in rendered.text
    assert "Jörg Müller &lt;joerg@example.org&gt;" in rendered.html
    assert summary in rendered.html                             # HTML wraps by itself


@pytest.mark.parametrize("name", SLA_TEMPLATES)
def test_what_the_recipient_can_do(env, name):
    rendered = env.render(name, SAMPLE_CONTEXTS[name])
    for part in (rendered.text, rendered.html.replace("&lt;", "<").replace("&gt;", ">")):
        assert "#assign <agent>" in part
        assert "#status pending" in part and "the SLA clocks" in part
        assert "#note" in part
        assert "support+comment@example.com" in part
        assert "(it stops this clock)" in part                  # first response


@pytest.mark.parametrize("name", SLA_TEMPLATES)
def test_without_comment_address_and_on_the_resolution_clock(env, name):
    ctx = context(name, helpdesk={"comment_address": ""},
                  sla={"clock": "resolution", "clock_label": "resolution"})
    rendered = env.render(name, ctx)
    for part in (rendered.text, rendered.html):
        assert "resolution" in part
        assert "stops this clock" not in part                   # a reply doesn't resolve
        assert "support+comment" not in part
        assert "start your mail with a line" in part


@pytest.mark.parametrize("name", SLA_TEMPLATES)
def test_no_customer_message_yet(env, name):
    rendered = env.render(name, context(name, last_message=None))
    assert NO_MESSAGE in rendered.text and NO_MESSAGE in rendered.html
    assert RULE not in rendered.text
    assert "last message" not in rendered.text and "last message" not in rendered.html


@pytest.mark.parametrize("name", SLA_TEMPLATES)
def test_unassigned_ticket(env, name):
    rendered = env.render(name, context(name, ticket={"assignee": ""}))
    assert "Assignee    nobody yet" in rendered.text
    assert "<td>nobody yet</td>" in rendered.html


@pytest.mark.parametrize("name", SLA_TEMPLATES)
def test_calendar_in_utc_shows_the_due_time_once(env, name):
    ctx = context(name, sla={"calendar": "", "due_at": "2026-12-01 08:30 UTC"})
    rendered = env.render(name, ctx)
    for part in (rendered.text, rendered.html):
        assert part.count("2026-12-01 08:30 UTC") == 2          # headline and Due line
        assert "calendar" not in part


# -- safety and form -------------------------------------------------------------------

@pytest.mark.parametrize("name", SLA_TEMPLATES)
@pytest.mark.parametrize("breached", [False, True], ids=["running", "breached"])
def test_html_escapes_the_customer_and_has_no_links(env, name, breached):
    last = dict(SAMPLE_CONTEXTS[name]["last_message"],
                from_name='Eve "<b>"', summary=f"Please fix {SCRIPT} & more")
    ctx = context(name, sla=BREACHED if breached else RUNNING, last_message=last,
                  ticket={"subject": "<img src=x onerror=alert(2)>"})
    rendered = env.render(name, ctx)
    assert f"Please fix {SCRIPT} & more" in rendered.text      # the text part is verbatim
    html = rendered.html
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    for needle in ("<a ", "http", "<link", "<style", "url("):
        assert needle not in html


@pytest.mark.parametrize("name", SLA_TEMPLATES)
@pytest.mark.parametrize("variant", [{}, {"last_message": None}, {"sla": BREACHED},
                                     {"sla": dict(BREACHED, step="breach+2h")},
                                     {"sla": {"clock": "next_response",
                                              "clock_label": "next response"}}],
                         ids=["sample", "no-message", "breached", "reminder", "next"])
def test_text_lines_are_short(env, name, variant):
    text = env.render(name, context(name, **variant)).text
    long_lines = [line for line in text.splitlines() if len(line) > 78]
    assert not long_lines
    assert "\n\n\n" not in text
