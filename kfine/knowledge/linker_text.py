"""Text matching of `EntityLinker`: surface forms as sequences of words, found with Aho-Corasick.

Text is split into words and punctuation characters (see `_token_patterns`);
each distinct word of any surface form gets one character of its own, so a
text becomes a string of one character per word and pyahocorasick finds
every occurrence of a surface form in C.

That scan is slow on big graphs: pyahocorasick looks up a node's children
one by one, and the root has a child per distinct first word. So ASCII
texts whose words are apart by single spaces, the common case, take a
second automaton over the characters of the surface forms instead (see
`_spellings`), and keep the occurrences that start and end at word
boundaries.

Both paths then choose leftmost-longest, non-overlapping occurrences with
numpy (`_leftmost_longest`). pyahocorasick's own `iter_long` is no
substitute: it can miss a shorter form that a longer one hides ("Cy" in
"Ana Bo Cy Xu" with the forms "Ana Bo Cy Dy" and "Bo Cy Dy Ex").
"""

import functools
import itertools
import re
import unicodedata

import ahocorasick
import numpy as np

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
# Maps an ASCII byte to True for letters and digits, the ASCII word characters.
_ALNUM_BYTES = np.array([chr(code).isalnum() for code in range(256)])
# Texts shorter than this (in characters) are matched without numpy,
# whose per-call costs outweigh its speed on a few occurrences.
_SHORT_TEXT = 2000
# `spans` of a text without mentions (read-only: `Mentions` hands them out).
_NO_SPANS = (np.zeros(0, np.int64),) * 3
_NO_SPANS[0].flags.writeable = False
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
        # Both automata store the index of a key in a list of its
        # `(length, entity_id)`, so that matches come out as pairs of ints
        # that numpy reads in one pass (`_columns` holds the same as arrays).
        self._automaton, self._coded = ahocorasick.Automaton(ahocorasick.STORE_INTS), []
        self._characters, self._spellings = ahocorasick.Automaton(ahocorasick.STORE_INTS), []
        for form, entity_id in surface_forms:
            keys = [self.key(word) for word in self._pattern.findall(form)]
            coded = "".join(map(self._word_code, keys))
            if not coded or coded in self._automaton:
                continue
            self._automaton.add_word(coded, len(self._coded))
            self._coded.append((len(coded), entity_id))
            spellings = _spellings(keys) if self._characters is not None else ()
            if spellings is None:
                self._characters = None
                spellings = ()
            for spelling in spellings:
                self._characters.add_word(spelling, len(self._spellings))
                self._spellings.append((len(spelling), entity_id))
        self._coded_columns, self._spelling_columns = _columns(self._coded), _columns(self._spellings)
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
        return list(zip(*(column.tolist() for column in self.spans(text))))

    def spans(self, text):
        """The mentions in `text` (a str) as three int64 arrays: `(starts, ends, entity_ids)`, in text order."""
        if not len(self._automaton):
            return _NO_SPANS
        is_ascii = text.isascii()
        if is_ascii and self._characters is not None and not any(map(text.__contains__, _NOT_SINGLE_SPACE)):
            return self._spans_of_characters(text if self.case_sensitive else text.lower())
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
        # `parts` alternates whitespace and words, so running lengths give
        # each word's offsets: word k spans offsets[2k]..offsets[2k + 1].
        if len(text) < _SHORT_TEXT:
            offsets = list(itertools.accumulate(map(len, parts)))
            spans = []
            for last, index in self._automaton.iter(coded):
                length, entity_id = self._coded[index]
                spans.append((offsets[2 * (last + 1 - length)], offsets[2 * last + 1], entity_id))
            return _leftmost_longest_few(spans)
        found = _found(self._automaton, coded)
        last, lengths, entity_ids = found[0], *self._coded_columns[:, found[1]]
        offsets = np.cumsum(np.fromiter(map(len, parts), np.int64, len(parts)))
        return _leftmost_longest(offsets[2 * (last + 1 - lengths)], offsets[2 * last + 1], entity_ids)

    def _spans_of_characters(self, text):
        """`spans` of an ASCII text whose words are apart by single spaces."""
        if not len(self._characters):
            return _NO_SPANS
        # Every occurrence, so that one starting inside a word cannot hide a
        # later one as leftmost-longest over characters would; ASCII words
        # are runs of letters and digits, and each other non-space character
        # is a token of its own.
        if len(text) < _SHORT_TEXT:
            spans = []
            for last, index in self._characters.iter(text):
                length, entity_id = self._spellings[index]
                start = last + 1 - length
                if not _inside_word(text, start) and not _inside_word(text, last + 1):
                    spans.append((start, last + 1, entity_id))
            return _leftmost_longest_few(spans)
        found = _found(self._characters, text)
        ends, (lengths, entity_ids) = found[0] + 1, self._spelling_columns[:, found[1]]
        starts = ends - lengths
        # Offset i is no word boundary when characters i - 1 and i, at
        # i and i + 1 of the padded bytes, are both letters or digits
        # (the padding makes offset 0 and the end boundaries).
        padded = np.frombuffer(b"\0" + text.encode("ascii") + b"\0", np.uint8)
        inside_at_start = _ALNUM_BYTES[padded[starts]] & _ALNUM_BYTES[padded[starts + 1]]
        whole = ~(inside_at_start | (_ALNUM_BYTES[padded[ends]] & _ALNUM_BYTES[padded[ends + 1]]))
        return _leftmost_longest(starts[whole], ends[whole], entity_ids[whole])


def _inside_word(text, offset):
    """Whether `offset` of the ASCII `text` lies between two letters or digits (`_ALNUM_BYTES`)."""
    return 0 < offset < len(text) and text[offset - 1 : offset + 1].isalnum()


def _columns(pairs):
    """`(length, entity_id)` pairs as a `(2, n)` int64 array."""
    return np.array(pairs, np.int64).reshape(-1, 2).T


def _found(automaton, text):
    """Every occurrence of a key of `automaton` in `text`: a `(2, n)` int64 array of last offsets and key indices."""
    found = np.fromiter(itertools.chain.from_iterable(automaton.iter(text)), np.int64)
    return found.reshape(-1, 2).T


def _leftmost_longest_few(spans):
    """`_leftmost_longest` of a short list of `(start, end, entity_id)` (numpy costs more than it saves there)."""
    spans.sort(key=lambda span: (span[0], -span[1]))
    chosen, covered = [], 0
    for span in spans:
        if span[0] >= covered:
            covered = span[1]
            chosen.append(span)
    return tuple(np.array(column, np.int64) for column in zip(*chosen)) if chosen else _NO_SPANS


def _leftmost_longest(starts, ends, entity_ids):
    """Chooses among occurrences (int64 span arrays): leftmost first, the longest at each start, none overlapping."""
    # By start, the longest first. The occurrences come by end, so the keys
    # are nearly sorted, and numpy's stable sort takes ~0.1 ms for 24k of
    # them where its default sort takes ~2 ms.
    order = np.argsort(starts * (ends.max(initial=0) + 1) - ends, kind="stable")
    starts, ends, entity_ids = starts[order], ends[order], entity_ids[order]
    longest = np.ones(len(starts), bool)
    longest[1:] = starts[1:] != starts[:-1]
    starts, ends, entity_ids = starts[longest], ends[longest], entity_ids[longest]
    # A span starting after every earlier one ends is taken whatever was
    # taken before it. The others (a few: names sharing words) run the
    # greedy choice, from the last such clear span on.
    reach = np.maximum.accumulate(ends)
    overlapping = np.flatnonzero(starts[1:] < reach[:-1]) + 1
    if not len(overlapping):
        return starts, ends, entity_ids
    clear = np.ones(len(starts), bool)
    clear[overlapping] = False
    heads = np.maximum.accumulate(np.where(clear, np.arange(len(starts)), 0))[overlapping]
    keep = np.ones(len(starts), bool)
    head = covered = -1
    for index, cluster in zip(overlapping.tolist(), heads.tolist()):
        if cluster != head:
            head, covered = cluster, ends[cluster]
        if starts[index] >= covered:
            covered = ends[index]
        else:
            keep[index] = False
    return starts[keep], ends[keep], entity_ids[keep]


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
