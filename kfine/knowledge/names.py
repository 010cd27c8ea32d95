"""Name normalization shared by the metrics, the fact checker and the entity linker.

Tokenizers split punctuation off words, so a decoded "Guinea - Bissau" must
compare equal to the KG's "Guinea-Bissau". Names therefore compare after case
folding, whitespace collapsing and removal of whitespace next to punctuation.
"""

import re
import unicodedata

# The phrase a model says when the KG has no answer; metrics count it as an
# abstention and constrained decoding always allows it.
DEFAULT_ABSTENTION = "unknown"

_WHITESPACE = re.compile(r"\s+")
# Punctuation is anything but letters, digits and spaces; `_` counts as
# punctuation (the tokenizer splits it off, as in "America/New_York").
_SPACE_BEFORE_PUNCT = re.compile(r" (?=[^\w ]|_)")
_SPACE_AFTER_PUNCT = re.compile(r"(?<=[^\w ]|_) ")


def normalize_name(text):
    """Returns the comparison key of a name or a generated answer.

    Example:

    >>> normalize_name("  Guinea - Bissau ")
    'guinea-bissau'
    """
    text = unicodedata.normalize("NFC", text).casefold()
    text = _WHITESPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    return _SPACE_AFTER_PUNCT.sub("", text)


def ends_at_word_boundary(text, length):
    """Whether `text[:length]` ends a word: "Paris" in "Paris." does, in "Parisian" not."""
    return length == len(text) or not (text[length].isalnum() and text[length - 1].isalnum())
