"""Text matching of `EntityLinker`: surface forms as sequences of words, found with Aho-Corasick.

Text is split into words and punctuation characters (see `_token_patterns`);
each distinct word of any surface form gets one character of its own, so a
text becomes a string of one character per word and pyahocorasick's
`iter_long` finds the leftmost-longest, non-overlapping surface forms in C.

That scan is slow on big graphs: pyahocorasick looks up a node's children
one by one, and the root has a child per distinct first word. So ASCII
texts whose words are apart by single spaces, the common case, take a
second automaton over the characters of the surface forms instead (see
`_spellings`), and keep the matches that start and end at word boundaries.
"""

import functools
import itertools
import re
import unicodedata

import ahocorasick

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# For ASCII text without `_` the token patterns below reduce to this one,
# which `re` runs ~1.4x faster in ASCII mode; ASCII mode does not count the
# separators U+001C-U+001F as whitespace, so texts holding one keep the others.
_ASCII_PATTERN = re.compile(r"(\w+|[^\w\s])", re.ASCII)
_ASCII_SEPARATORS = re.compile("[\x1c-\x1f]")
# The character of a word in no surface form; surface-form words get
# characters from _FIRST_WORD_CODE on, skipping the surrogates pyahocorasick
# cannot hold.
_OTHER_WORD = "\x01"
_FIRST_WORD_CODE = 0x100
# Runs of ASCII whitespace other than a single space: texts holding one take
# the word-coded path. (`in` is a memchr; one regex search costs ~3x more.)
_NOT_SINGLE_SPACE = ("  ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f")
# Maps an ASCII byte to 1 for letters and digits, the ASCII word characters.
_ALNUM_BYTES = bytes(int(chr(code).isalnum()) for code in range(256))
# A form with more junctions next to punctuation than this has too many
# spellings (2 ** junctions) to list; its presence turns the character path off.
_MAX_PUNCTUATION_JUNCTIONS = 6


class TextMatcher:
    """Finds surface forms in text: whole words, leftmost-longest, never overlapping.

    Words compare after NFC normalization, and after case folding without
    `case_sensitive`; whitespace between words, or next to punctuation, may
    differ ("Guinea - Bissau" is "Guinea-Bissau").

    Args:
        surface_forms: iterable of `(form, entity_id)`; the first form to claim a
            word sequence keeps it.
        case_sensitive: bool.
    """

    def __init__(self, surface_forms, case_sensitive):
        self.case_sensitive = case_sensitive
        self._basic_pattern, self._pattern = _token_patterns()
        self._word_codes = {}
        self._automaton = ahocorasick.Automaton()
        self._characters = ahocorasick.Automaton()
        for form, entity_id in surface_forms:
            keys = [self.key(word) for word in self._pattern.findall(form)]
            coded = "".join(map(self._word_code, keys))
            if not coded or coded in self._automaton:
                continue
            self._automaton.add_word(coded, (len(coded), entity_id))
            spellings = _spellings(keys) if self._characters is not None else ()
            if spellings is None:
                self._characters = None
                spellings = ()
            for spelling in spellings:
                self._characters.add_word(spelling, (len(spelling), entity_id))
        if len(self._automaton):
            self._automaton.make_automaton()
            if self._characters is not None and len(self._characters):
                self._characters.make_automaton()

    def key(self, word):
        """The form `word` is compared in."""
        if not word.isascii():
            word = unicodedata.normalize("NFC", word)
        return word if self.case_sensitive else word.casefold()

    def _word_code(self, key):
        code = self._word_codes.get(key)
        if code is None:
            number = _FIRST_WORD_CODE + len(self._word_codes)
            code = chr(number if number < 0xD800 else number + 0x800)
            self._word_codes[key] = code
        return code

    def match(self, text):
        """Returns `(start, end, entity_id)` of the mentions in `text` (a str), by character offsets."""
        if not len(self._automaton):
            return []
        is_ascii = text.isascii()
        if is_ascii and self._characters is not None and not any(map(text.__contains__, _NOT_SINGLE_SPACE)):
            return self._match_characters(text if self.case_sensitive else text.lower())
        basic = "_" not in text and (is_ascii or not _ASTRAL.search(text))
        if basic and is_ascii and not _ASCII_SEPARATORS.search(text):
            pattern = _ASCII_PATTERN
        else:
            pattern = self._basic_pattern if basic else self._pattern
        if is_ascii:
            # ASCII lowercasing keeps every length and character class, so
            # the offsets of the lowered text are those of `text`.
            parts = pattern.split(text if self.case_sensitive else text.lower())
            keys = parts[1::2]
        else:
            parts = pattern.split(text)
            keys = map(self.key, parts[1::2])
        coded = "".join(map(self._word_codes.get, keys, itertools.repeat(_OTHER_WORD)))
        matches = list(self._automaton.iter_long(coded))
        if not matches:
            return []
        # `parts` alternates whitespace and words, so running lengths give
        # each word's offsets: word k spans offsets[2k]..offsets[2k + 1].
        offsets = list(itertools.accumulate(map(len, parts)))
        return [
            (offsets[2 * (last + 1 - length)], offsets[2 * last + 1], entity_id)
            for last, (length, entity_id) in matches
        ]

    def _match_characters(self, text):
        """`match` of an ASCII text whose words are apart by single spaces."""
        if not len(self._characters):
            return []
        # Every occurrence, so that one starting inside a word cannot hide a
        # later one as leftmost-longest over characters would; ASCII words
        # are runs of letters and digits, and each other non-space character
        # is a token of its own.
        # inside[i] is 1 where characters i - 1 and i are both letters or
        # digits: no word boundary at offset i (padded, so offset 0 and the
        # end are boundaries).
        alnum = b"\0" + text.encode("ascii").translate(_ALNUM_BYTES) + b"\0"
        inside = (int.from_bytes(alnum[:-1], "big") & int.from_bytes(alnum[1:], "big")).to_bytes(len(text) + 1, "big")
        found = [
            (end - length + 1, -end - 1, entity_id)
            for end, (length, entity_id) in self._characters.iter(text)
            if not inside[end - length + 1] and not inside[end + 1]
        ]
        found.sort()
        mentions = []
        covered = 0
        for start, negative_end, entity_id in found:
            if start >= covered:
                covered = -negative_end
                mentions.append((start, covered, entity_id))
        return mentions


def _spellings(keys):
    """The ways an ASCII text with single spaces can spell the word keys `keys`.

    Two words are apart by one space; next to punctuation the space may be
    there or not. Returns `()` where no ASCII text can match (a key that is
    no single ASCII token) and None where there are too many spellings.
    """
    for key in keys:
        if not key.isascii() or not (key.isalnum() or (len(key) == 1 and not key.isspace())):
            return ()
    junctions = [" " if keys[i].isalnum() and keys[i + 1].isalnum() else None for i in range(len(keys) - 1)]
    free = junctions.count(None)
    if free > _MAX_PUNCTUATION_JUNCTIONS:
        return None
    spellings = []
    for gaps in itertools.product(("", " "), repeat=free):
        gaps = iter(gaps)
        separators = [junction if junction is not None else next(gaps) for junction in junctions] + [""]
        spellings.append("".join(itertools.chain.from_iterable(zip(keys, separators))))
    return spellings


@functools.cache
def _token_patterns():
    """Returns the regexes that split text into words and punctuation, capturing them.

    Words are runs of letters, digits and combining marks (Python's `\\w`
    leaves out marks such as Devanagari vowel signs, which would otherwise
    split words, and takes in `_`, which the tokenizer splits off); a
    punctuation token is one other non-space character with the marks that
    follow it, so NFC never composes across tokens.

    The second regex is that definition. The first, about twice as fast,
    gives the same tokens for texts without `_` and without characters
    beyond the Basic Multilingual Plane: it counts `_` as a word character
    and knows only the marks of that plane (`re` checks a character class
    holding astral ranges about 3x slower). Built on first use, since
    scanning the Unicode tables takes ~50 ms.
    """

    def marks_class(codes):
        marks = [code for code in codes if unicodedata.category(chr(code)).startswith("M")]
        ranges = []
        for _, run in itertools.groupby(enumerate(marks), key=lambda pair: pair[1] - pair[0]):
            run = [code for _, code in run]
            ranges.append(f"{re.escape(chr(run[0]))}-{re.escape(chr(run[-1]))}")
        return "".join(ranges)

    basic = marks_class(range(0x10000))
    marks = basic + marks_class(itertools.chain(range(0x10000, 0x20000), range(0xE0000, 0xE0200)))
    return (
        re.compile(rf"([\w{basic}]+|[^\w\s{basic}][{basic}]*)"),
        re.compile(rf"((?:[^\W_]|[{marks}])+|(?:_|[^\w\s{marks}])[{marks}]*)"),
    )
