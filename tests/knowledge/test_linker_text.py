"""`TextMatcher` against a word-by-word reference: the character path must find what the words define."""

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfine.knowledge import linker_text
from kfine.knowledge.linker_text import TextMatcher, _token_patterns

WORDS = ["Ana", "ana", "Bo", "bo", "Cy", "x", "-", ".", "_", "'", "Éva", "ß", "ss", "SS", "12", "a1"]
forms = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join), min_size=1, max_size=8)
# Mostly single-spaced ASCII (the character path), sometimes other whitespace or joined tokens.
texts = st.lists(st.sampled_from(WORDS + ["Anax", "Bo-Cy", "x.x", "  ", "\n"]), max_size=14).flatmap(
    lambda words: st.lists(st.sampled_from([" ", " ", " ", ""]), min_size=len(words), max_size=len(words)).map(
        lambda gaps: "".join(itertools.chain.from_iterable(zip(words, gaps)))))


def reference(surface_forms, case_sensitive, text):
    """Leftmost-longest whole-word matching, one word at a time."""
    pattern = _token_patterns()[1]
    matcher = TextMatcher([], case_sensitive)
    table = {}
    for form, entity_id in surface_forms:
        table.setdefault(tuple(map(matcher.key, pattern.findall(form))), entity_id)
    spans = [match.span() for match in pattern.finditer(text)]
    keys = [matcher.key(text[start:end]) for start, end in spans]
    mentions, index = [], 0
    while index < len(keys):
        for last in range(len(keys), index, -1):
            if tuple(keys[index:last]) in table:
                mentions.append((spans[index][0], spans[last - 1][1], table[tuple(keys[index:last])]))
                index = last
                break
        else:
            index += 1
    return mentions


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forms=forms, text=texts, case_sensitive=st.booleans())
def test_text_matcher_equals_word_reference(forms, text, case_sensitive):
    surface_forms = list(zip(forms, range(len(forms))))
    assert TextMatcher(surface_forms, case_sensitive).match(text) == reference(surface_forms, case_sensitive, text)


def test_character_path_keeps_whole_words_and_punctuation_spacing():
    matcher = TextMatcher([("New York", 0), ("York", 1), ("Guinea-Bissau", 2)], case_sensitive=True)
    assert matcher._characters is not None
    text = "New Yorker in York, Guinea - Bissau and Guinea-Bissau"
    assert [(text[start:end], entity_id) for start, end, entity_id in matcher.match(text)] == [
        ("York", 1), ("Guinea - Bissau", 2), ("Guinea-Bissau", 2)]


def test_forms_with_many_punctuation_junctions_turn_the_character_path_off():
    matcher = TextMatcher([("A.B.C.D.E", 0)], case_sensitive=True)
    assert matcher._characters is None
    text = "see A. B.C.D. E here"
    assert [text[start:end] for start, end, _ in matcher.match(text)] == ["A. B.C.D. E"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(forms=forms, text=texts, case_sensitive=st.booleans())
def test_long_text_path_equals_word_reference(monkeypatch, forms, text, case_sensitive):
    # Texts from `_SHORT_TEXT` characters on choose among occurrences with numpy.
    monkeypatch.setattr(linker_text, "_SHORT_TEXT", 0)
    surface_forms = list(zip(forms, range(len(forms))))
    assert TextMatcher(surface_forms, case_sensitive).match(text) == reference(surface_forms, case_sensitive, text)


@pytest.mark.parametrize("short_text", [10**9, 0])
@pytest.mark.parametrize("gap", [" ", "  "])
def test_a_longer_form_does_not_hide_a_shorter_one(monkeypatch, short_text, gap):
    # pyahocorasick's `iter_long` returns nothing here: "Ana Bo Cy" leads towards the first
    # form, and "Cy" is reached only through failure links it does not report.
    monkeypatch.setattr(linker_text, "_SHORT_TEXT", short_text)
    matcher = TextMatcher([("Ana Bo Cy Dy", 0), ("Bo Cy Dy Ex", 1), ("Cy", 2)], case_sensitive=True)
    assert matcher.match(f"Ana Bo{gap}Cy Xu") == [(6 + len(gap), 8 + len(gap), 2)]


def test_long_texts_find_what_their_pieces_do():
    # Pieces apart by a word in no form, so that no mention crosses them; single-spaced ASCII takes
    # the character path, the rest the word path.
    rng = random.Random(0)
    matcher = TextMatcher([(" ".join(rng.choices(WORDS, k=rng.randint(1, 3))), i) for i in range(40)], True)
    for words, gap in ([word for word in WORDS if word.isascii()], " "), (WORDS, "  "):
        pieces = [gap.join(rng.choices(words, k=12)) for _ in range(300)]
        separator = f"{gap}Zq{gap}"
        expected, offset = [], 0
        for piece in pieces:
            expected += [(start + offset, end + offset, entity_id) for start, end, entity_id in matcher.match(piece)]
            offset += len(piece) + len(separator)
        text = separator.join(pieces)
        assert len(text) > linker_text._SHORT_TEXT and len(expected) > 1000
        assert matcher.match(text) == expected
