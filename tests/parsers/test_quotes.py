"""visible_text(): agents see what the customer wrote now, not the whole thread."""
from __future__ import annotations

import pytest

from parsers.quotes import DEFAULT_LANGUAGES, SUPPORTED_LANGUAGES, visible_text
from tests.parsers.corpus import read


def corpus_reply(name: str) -> str:
    return read(f"email_reply_parser/{name}").decode("utf-8")


# -- English replies from the corpus (github/email_reply_parser fixtures) ------------

def test_top_posted_reply_keeps_new_text_and_drops_the_quoted_thread():
    visible = visible_text(corpus_reply("email_1_3.txt"))
    assert visible.startswith("Oh thanks.\n\nHaving the function would be great.")
    assert "Russell Brown wrote" not in visible
    assert not any(line.startswith(">") for line in visible.splitlines())
    assert "riak-users mailing list" not in visible


def test_bottom_posted_reply_keeps_the_answer_below_the_quote_with_its_indentation():
    visible = visible_text(corpus_reply("email_1_2.txt"))
    assert visible.startswith("Hi,\n")
    assert "You can list the keys for the bucket" in visible
    assert '        String bucket = "my_bucket";' in visible.splitlines()
    assert "Abhishek Kona wrote" not in visible
    assert "What is the best way to clear" not in visible


def test_inline_answers_between_quotes_are_kept_and_the_signature_dropped():
    visible = visible_text(corpus_reply("email_1_8.txt"))
    assert "I will reply under this one" in visible and "and under this." in visible
    assert "okay?" not in visible and "here's some stuff I can write" not in visible
    assert "Hey there, this is my signature" not in visible


@pytest.mark.parametrize("name, expected", [
    ("email_2_1.txt", "Outlook with a reply"),
    ("email_2_2.txt", "Outlook with a reply directly above line"),
    ("email_2_3.txt", "Outlook with a reply directly above line"),
    ("pathological.txt", "I think you're onto something. I will try to fix the problem as soon as I\n"
                         "get back to a computer."),
    ("email_1_4.txt", "Awesome! I haven't had another problem with it."),
    ("email_1_7.txt", ":+1:"),
])
def test_replies_reduce_to_their_new_text(name, expected):
    assert visible_text(corpus_reply(name)) == expected


def test_a_reply_that_starts_with_on_is_not_mistaken_for_a_quote_header():
    visible = visible_text(corpus_reply("greedy_on.txt"))
    assert visible.startswith("On your remote host you can run:")
    assert "     telnet 127.0.0.1 52698" in visible
    assert "George Plymale wrote" not in visible and "odd issue" not in visible
    assert "One outstanding question I had:" in visible_text(corpus_reply("email_one_is_not_on.txt"))


def test_bullet_lists_and_thanks_lines_are_not_taken_for_signatures():
    visible = visible_text(corpus_reply("email_1_5.txt"))
    assert "- This is the fourth bullet point" in visible
    assert visible.endswith("for a while.")
    bullets = visible_text(corpus_reply("email_bullets.txt"))
    assert "   - and another" in bullets
    assert "Joe Smith" not in bullets and "Give us an example" not in bullets
    assert visible_text("Thanks, but it still fails.\nThe error is E42.") == \
        "Thanks, but it still fails.\nThe error is E42."


@pytest.mark.parametrize("name", ["email_iPhone.txt", "email_BlackBerry.txt",
                                  "email_multi_word_sent_from_my_mobile_device.txt"])
def test_mobile_sent_from_lines_are_dropped(name):
    assert visible_text(corpus_reply(name)) == "Here is another email"


def test_sent_from_in_a_sentence_and_dashes_mid_line_are_kept():
    assert visible_text(corpus_reply("email_sent_from_my_not_signature.txt")).endswith(
        "Sent from my desk, is much easier then my mobile phone.")
    assert "this is not a signature" in visible_text(
        corpus_reply("email_sig_delimiter_in_middle_of_line.txt"))
    assert visible_text(corpus_reply("correct_sig.txt")) == \
        "this is an email with a correct -- signature."


def test_a_huge_quote_does_not_hide_the_new_text():
    visible = visible_text(corpus_reply("email_long_quote.txt"))
    assert visible.startswith("Hi folks\n\nWhat is the best way")
    assert not any(line.lstrip().startswith(">") for line in visible.splitlines())


# -- Hand-written replies in other languages and clients ------------------------------

NEW = "Der Drucker geht wieder.\nDanke!"
QUOTE = "> Bitte starten Sie den Drucker neu.\n> Ihr Support"
OUTLOOK_BODY = "Please restart the printer.\nYour support team"


@pytest.mark.parametrize("attribution", [
    "Am 04.03.2024 um 10:15 schrieb Support <support@example.org>:",                # de
    "Le lun. 4 mars 2024 à 10:15, Support <support@example.org> a écrit :",         # fr
    "El lun., 4 mar. 2024 10:15, Support (<support@example.org>) escribió:",        # es
    "Il giorno lun 4 mar 2024 alle ore 10:15 Support <support@example.org> ha scritto:",  # it
    "Op ma 4 mrt 2024 om 10:15 schreef Support <support@example.org>:",             # nl
    "Em seg., 4 de mar. de 2024 às 10:15, Support <support@example.org> escreveu:",  # pt
    "Den 4. mar. 2024 kl. 10.15 skrev Support <support@example.org>:",              # da
    "Den mån 4 mars 2024 kl 10:15 skrev Support <support@example.org>:",            # sv
    "пн, 4 мар. 2024 г. в 10:15, Support <support@example.org>:",                   # ru (Gmail)
    "04.03.2024 10:15, Support пишет:",                                             # ru (Thunderbird)
    "2024年3月4日(月) 10:15 Support <support@example.org>:",                        # ja
    "On Mon, Mar 4, 2024 at 10:15 AM Support <support@example.org> wrote:",         # en
    "Support wrote:",                                                               # en, short
])
def test_quote_headers_in_many_languages_are_cut(attribution):
    assert visible_text(f"{NEW}\n\n{attribution}\n{QUOTE}\n") == NEW


@pytest.mark.parametrize("header", [
    "-----Original Message-----\nFrom: Support\nSent: Monday, March 4, 2024 10:15 AM\n"
    "To: Alice\nSubject: RE: Printer",
    "________________________________\nFrom: Support <support@example.org>\n"
    "Sent: Monday, March 4, 2024 10:15 AM\nTo: Alice <alice@example.com>\nSubject: Printer",
    "Von: Support <support@example.org>\nGesendet: Montag, 4. März 2024 10:15\n"
    "An: Alice\nBetreff: Drucker",
    "De : Support <support@example.org>\nEnvoyé : lundi 4 mars 2024 10:15\n"
    "À : Alice\nObjet : Imprimante",
    "De: Support <support@example.org>\nEnviado: lunes, 4 de marzo de 2024 10:15\n"
    "Para: Alice\nAsunto: Impresora",
    "Van: Support <support@example.org>\nVerzonden: maandag 4 maart 2024 10:15\n"
    "Aan: Alice\nOnderwerp: Printer",
    "发件人: Support <support@example.org>\n发送时间: 2024年3月4日 10:15\n收件人: Alice\n主题: 打印机",
])
def test_outlook_style_history_without_quote_marks_is_cut(header):
    assert visible_text(f"{NEW}\n\n{header}\n\n{OUTLOOK_BODY}\n") == NEW


def test_polish_outlook_headers_are_opt_in_because_one_field_line_is_enough_to_cut():
    text = "Drukarka nie działa.\n\nOd: Support <s@example.org>\nWysłano: poniedziałek\n" \
           "Do: Alice\nTemat: Drukarka\n\nProszę zrestartować."
    assert "pl" in SUPPORTED_LANGUAGES and "pl" not in DEFAULT_LANGUAGES
    assert visible_text(text, languages=("pl",)) == "Drukarka nie działa."
    english = "Printer broken since Monday.\nData: 2024-03-01 log attached\nStill broken."
    assert visible_text(english) == english


def test_a_message_that_is_all_quote_is_shown_whole_rather_than_empty():
    assert visible_text("> only quoted\n> lines") == "> only quoted\n> lines"
    assert visible_text("-- \nJust a signature") == "-- \nJust a signature"
    assert visible_text("") == "" and visible_text("  \n ") == ""


def test_signature_after_rfc3676_delimiter_and_crlf_line_ends():
    assert visible_text("New text\r\n\r\n-- \r\nAlice\r\nACME Corp\r\n") == "New text"


# -- where quote headers are looked for -------------------------------------------

def _header_haystacks():
    """Every corpus mail's text, and one mail holding every language's sample headers."""
    from parsers.message import parse
    from tests.parsers.corpus import corpus_files

    for path in corpus_files(max_size=200_000):
        try:
            yield parse(path.read_bytes()).text
        except Exception:  # noqa: BLE001 - unparseable corpus items are tested elsewhere
            continue


@pytest.mark.parametrize("languages", [DEFAULT_LANGUAGES, SUPPORTED_LANGUAGES])
def test_header_matches_tried_at_line_starts_equal_finditer_over_the_whole_corpus(languages):
    from parsers.quotes import _codes, _header_regex, _line_start_matches

    header = _header_regex(_codes(languages))
    compared = 0
    for text in _header_haystacks():
        for haystack in (text, "\n" + text, text.replace("\n", "\n\n")):
            expected = [(m.span(), m.group()) for m in header.finditer(haystack)]
            assert [(m.span(), m.group()) for m in _line_start_matches(header, haystack)] == expected
            compared += bool(expected)
    assert compared > 50          # the corpus has quote headers to find
