"""Templates: what a customer sees, and what a broken template can't do."""
import asyncio
import threading
import time

import pytest

import templates
from templates import (SAMPLE_CONTEXTS, Rendered, TemplateEnvironment, TemplateInvalid,
                       TemplateNotFound, TemplateRenderError, TemplateTimeout)

LOOP = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
FORK_BOMB = ("{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
             "{{ m(60) }}")


def ack_context(**message):
    context = {k: dict(v) for k, v in SAMPLE_CONTEXTS["ack"].items()}
    context["message"].update(message)
    return context


@pytest.fixture
def site(tmp_path):
    """site({'file.txt.j2': source, ...}) -> an environment with those site templates."""
    def make(files, timeout=0.3):
        for filename, source in files.items():
            (tmp_path / filename).write_text(source)
        return TemplateEnvironment(tmp_path, timeout=timeout)
    return make


# -- the acknowledgement ----------------------------------------------------------------

def test_ack_says_ticket_number_and_token_and_quotes_the_customer():
    rendered = templates.render("ack", SAMPLE_CONTEXTS["ack"])
    assert isinstance(rendered, Rendered)
    assert "#1042" in rendered.text
    assert "keep\n[Acme #1042] in the subject" in rendered.text
    assert "> the printer on floor 3 jams on every page" in rendered.text
    assert "Hello Jörg Müller," in rendered.text
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert "<strong>#1042</strong>" in rendered.html
    assert "the printer on floor 3 jams" in rendered.html


def test_ack_html_uses_no_external_resources():
    html = templates.render("ack", SAMPLE_CONTEXTS["ack"]).html
    for needle in ("<link", "<img", "<script", "http://", "https://", "<style", "url("):
        assert needle not in html


def test_ack_quotes_only_the_first_lines():
    text = "\n".join(f"line {i}" for i in range(1, 30))
    rendered = templates.render("ack", ack_context(text=text))
    assert "> line 8\n> [...]\n" in rendered.text
    assert "line 9" not in rendered.text


def test_ack_without_customer_text_has_no_empty_quote():
    rendered = templates.render("ack", ack_context(text="  \n"))
    assert "You wrote" not in rendered.text
    assert "You wrote" not in rendered.html


def test_missing_context_key_raises():
    context = ack_context()
    del context["ticket"]["token"]
    with pytest.raises(TemplateRenderError, match="token"):
        templates.render("ack", context)


def test_html_escapes_customer_markup_while_text_keeps_it():
    rendered = templates.render("ack", ack_context(text='<script>alert("x")</script> & more'))
    assert '> <script>alert("x")</script> & more' in rendered.text
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more" in rendered.html


def test_sample_contexts_cover_every_packaged_template():
    env = templates.default_environment()
    assert env.names() == sorted(SAMPLE_CONTEXTS)
    for name, context in SAMPLE_CONTEXTS.items():
        assert env.render(name, context).text


# -- the site's templates ---------------------------------------------------------------

def test_override_directory_wins_file_by_file(site):
    env = site({"ack.txt.j2": "Site ack for {{ ticket.token }}\n"})
    rendered = env.render("ack", SAMPLE_CONTEXTS["ack"])
    assert rendered.text == "Site ack for [Acme #1042]\n"
    assert "<strong>#1042</strong>" in rendered.html          # packaged HTML part kept


def test_template_without_html_part(site):
    env = site({"note.txt.j2": "{{ x }}"})
    assert env.render("note", {"x": "<b>"}) == Rendered(text="<b>", html=None)
    assert env.names() == sorted({*SAMPLE_CONTEXTS, "note"})


def test_unknown_template(site):
    with pytest.raises(TemplateNotFound):
        site({}).render("nope", {})


def test_broken_site_template_is_refused_when_the_environment_is_built(site):
    with pytest.raises(TemplateInvalid, match=r"reply\.html\.j2:2"):
        site({"reply.txt.j2": "ok\n", "reply.html.j2": "ok\n{% if %}\n"})


def test_override_directory_must_exist(tmp_path):
    with pytest.raises(ValueError):
        TemplateEnvironment(tmp_path / "missing")


def test_sandbox_refuses_internals(site):
    env = site({"evil.txt.j2": "{{ x.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(TemplateRenderError):
        env.render("evil", {"x": ""})


# -- the time bound ---------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    LOOP, FORK_BOMB,
    "{% for a in range(99999) %}{% for b in range(99999) %}{% for c in range(99999) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
], ids=["loop", "recursion", "three_loops", "loop_with_output"])
def test_runaway_template_is_stopped(site, source):
    env = site({"slow.txt.j2": source})
    env.render("ack", SAMPLE_CONTEXTS["ack"])                  # the watchdog is running
    threads = threading.active_count()
    started = time.monotonic()
    with pytest.raises(TemplateTimeout):
        env.render("slow", {})
    assert time.monotonic() - started < 2
    # The render was stopped where it ran, not abandoned in a thread that keeps burning
    # a core; and the next render works.
    assert threading.active_count() == threads
    assert "#1042" in env.render("ack", SAMPLE_CONTEXTS["ack"]).text


async def test_runaway_template_is_stopped_in_a_worker_thread(site):
    """The daemon renders in an executor; the bound holds there, other renders go on."""
    env = site({"slow.txt.j2": LOOP})
    slow = asyncio.to_thread(env.render, "slow", {})
    fast = asyncio.to_thread(env.render, "ack", SAMPLE_CONTEXTS["ack"])
    results = await asyncio.gather(slow, fast, return_exceptions=True)
    assert isinstance(results[0], TemplateTimeout)
    assert "#1042" in results[1].text


@pytest.mark.parametrize("source", [
    "{{ 2 ** 100000 }}", "{{ 'x' * 1000000000 }}", "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(10**9, 0, -1) %}x{% endfor %}", "{{ 'x'.center(10**10) }}",
    "{{ 'x'.zfill(width=10**10) }}", "{{ 'a\tb'.expandtabs(10**10) }}",
    "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",     # endless recursion
])
def test_single_huge_operations_are_refused(site, source):
    env = site({"huge.txt.j2": source})
    with pytest.raises(TemplateRenderError):
        env.render("huge", {})


def test_output_is_bounded(site):
    env = site({"big.txt.j2": "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}"})
    with pytest.raises(TemplateRenderError, match="output exceeds"):
        env.render("big", {})


def test_errors_are_also_what_they_mean_to_python():
    assert issubclass(TemplateTimeout, TimeoutError)
    assert issubclass(TemplateNotFound, LookupError)
