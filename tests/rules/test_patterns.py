"""An admin's `matches:` pattern: RE2 semantics, linear time, and clear refusals."""
import pytest

from rules.patterns import Pattern, PatternRefused, compile_pattern


def test_a_pattern_searches_anywhere_and_keeps_its_text():
    pattern = compile_pattern(r"\binvoice \d+")
    assert isinstance(pattern, Pattern)
    assert pattern.text == r"\binvoice \d+"
    assert pattern.search("Re: your invoice 42 is overdue")
    assert not pattern.search("Re: your invoices are overdue")
    assert pattern.span("my invoice 7") == (3, 12)
    assert pattern.span("nothing") is None


def test_anchors_are_needed_for_a_whole_value():
    assert compile_pattern("^urgent$").search("urgent")
    assert not compile_pattern("^urgent$").search("not urgent")


def test_case_matters_unless_the_pattern_says_i():
    assert not compile_pattern("invoice").search("INVOICE")
    assert compile_pattern("(?i)invoice").search("INVOICE")


def test_i_folds_case_beyond_ascii():
    assert compile_pattern("(?i)émile").search("Bonjour ÉMILE")
    assert compile_pattern("(?i)ωμέγα").search("ΩΜΈΓΑ")
    assert not compile_pattern("émile").search("ÉMILE")


def test_w_is_ascii_only_but_p_l_matches_any_script():
    assert not compile_pattern(r"\w").search("é")
    assert compile_pattern(r"^\p{L}+$").search("Ωμέγα")
    assert compile_pattern(r"^[\p{L}\p{N}_]+$").search("Ωμέγα_42")
    assert not compile_pattern(r"^\w+$").search("Ωμέγα")


def test_nested_quantifiers_on_a_megabyte_do_not_backtrack():
    # A backtracking engine would never return from this search; RE2 answers at once.
    text = "a" * 1_000_000 + "b"
    assert compile_pattern("(a+)+$").search(text) is False
    assert compile_pattern("(a+)+b$").search(text) is True


@pytest.mark.parametrize("text, detail", [
    (r"(a)\1", "invalid escape sequence: \\1"),
    ("(?P<x>a)(?P=x)", "invalid perl operator: (?P"),
    ("(?<=x)y", "invalid perl operator: (?<="),
    ("(?<!x)y", "invalid perl operator: (?<!"),
    ("(?=a)", "invalid perl operator: (?="),
    ("x(?!y)", "invalid perl operator: (?!"),
])
def test_backreferences_and_lookaround_are_refused_with_the_reason(text, detail):
    with pytest.raises(PatternRefused) as refused:
        compile_pattern(text)
    assert str(refused.value) == (f"RE2 cannot compile '{text}': {detail} — "
                                  "RE2 has no backreferences or lookaround (see docs/rules.md)")


@pytest.mark.parametrize("text, says", [
    ("[abc", "missing ]: [abc"),
    ("x\\Z", "RE2 writes end of text as \\z"),
    ("a{1001}", "at most {1000} repetitions"),
    ("\\pL{1000}", "pattern too large"),
])
def test_other_refusals_say_what_is_wrong(text, says):
    with pytest.raises(PatternRefused) as refused:
        compile_pattern(text)
    assert str(refused.value).startswith(f"RE2 cannot compile '{text}': ")
    assert says in str(refused.value)


def test_refusal_is_a_value_error_and_nothing_reaches_stderr(capfd):
    with pytest.raises(ValueError):
        compile_pattern("(?=a)")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("value", [42, None, b"bytes", ["a"]])
def test_a_pattern_must_be_text(value):
    with pytest.raises(PatternRefused, match="a pattern is text"):
        compile_pattern(value)
