"""WordPiece tokenizer learned with tensorflow-text, usable inside tf.data."""

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

from kfine.errors import ModelError

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
RESERVED_TOKENS = (PAD, UNK, BOS, EOS)

# Characters every vocabulary covers, so names from another domain's KG in a
# Latin script never become [UNK]; characters of the corpus and of the
# coverage texts (the KG's names) are added on top. Each covered character
# costs two rows of the output layer, hence Latin only by default.
_COVERED_RANGES = (
    (0x21, 0x7E),  # printable ASCII
    (0xA1, 0x17F),  # Latin-1 supplement, Latin extended A
    (0x2013, 0x2014),  # dashes
    (0x2018, 0x201D),  # curly quotes
)


def _coverage_characters(texts):
    characters = {chr(code) for start, end in _COVERED_RANGES for code in range(start, end + 1)}
    for text in texts:
        characters.update(character for character in text if not character.isspace())
    return sorted(characters)


class WordPieceTokenizer:
    """Subword tokenizer with a fixed WordPiece vocabulary.

    Splits text on whitespace and punctuation (BERT pre-tokenization, case
    kept) and then into WordPiece units with tensorflow-text's
    `FastWordpieceTokenizer`, so `tokenize` runs in-graph in a `tf.data`
    pipeline. Every single character of the covered scripts is in the
    vocabulary (alone and as a `##` continuation), so no character of a KG
    name maps to `[UNK]`.

    Args:
        vocabulary: list of str. The tokens; the first four must be
            `[PAD]`, `[UNK]`, `[BOS]`, `[EOS]` in that order.

    Example:

    >>> tokenizer = WordPieceTokenizer.learn(["The capital of France is Paris."])
    >>> tokenizer.decode(tokenizer.encode("Paris is here."))
    'Paris is here .'
    """

    def __init__(self, vocabulary):
        vocabulary = list(vocabulary)
        if tuple(vocabulary[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            raise ModelError(
                f"A tokenizer vocabulary must start with {list(RESERVED_TOKENS)}. "
                f"Received: {vocabulary[:len(RESERVED_TOKENS)]}"
            )
        self.vocabulary = vocabulary
        self._token_ids = {token: index for index, token in enumerate(vocabulary)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = range(len(RESERVED_TOKENS))
        self._fast = tf_text.FastWordpieceTokenizer(
            vocab=vocabulary,
            token_out_type=tf.int32,
            unknown_token=UNK,
            no_pretokenization=False,
            support_detokenization=True,
        )

    @classmethod
    def learn(cls, corpus, vocabulary_size=4000, coverage_texts=()):
        """Learns a vocabulary from `corpus` (an iterable of str).

        Args:
            corpus: iterable of str. Training sentences.
            vocabulary_size: int. Target size of the learned part; character
                coverage adds to it.
            coverage_texts: iterable of str. Extra texts (e.g. every KG name and
                alias) whose characters must be covered.
        """
        corpus = list(corpus)
        if not corpus:
            raise ModelError("Cannot learn a vocabulary from an empty corpus.")
        dataset = tf.data.Dataset.from_tensor_slices(corpus).batch(1024)
        learned = bert_vocab_from_dataset.bert_vocab_from_dataset(
            dataset,
            vocab_size=vocabulary_size,
            reserved_tokens=list(RESERVED_TOKENS),
            bert_tokenizer_params={"lower_case": False},
            learn_params={},
        )
        vocabulary = list(learned)
        known = set(vocabulary)
        for character in _coverage_characters([*corpus, *coverage_texts]):
            for token in (character, "##" + character):
                if token not in known:
                    vocabulary.append(token)
                    known.add(token)
        return cls(vocabulary)

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def token_to_id(self, token):
        return self._token_ids[token]

    def tokenize(self, texts):
        """Tokenizes a string tensor in-graph; returns int32 ids (ragged for a batch)."""
        return self._fast.tokenize(texts)

    def encode(self, text, add_bos=True, add_eos=False):
        """Returns the token ids of one str as a Python list."""
        ids = self._fast.tokenize(tf.constant([text]))[0].numpy().tolist()
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def encode_batch(self, texts, add_bos=True, add_eos=False):
        """Returns the token ids of each str in `texts` as Python lists."""
        if not texts:
            return []
        rows = self._fast.tokenize(tf.constant(list(texts))).to_list()
        prefix = [self.bos_id] if add_bos else []
        suffix = [self.eos_id] if add_eos else []
        return [prefix + row + suffix for row in rows]

    def encode_in_context(self, texts):
        """Returns the ids of each text as a sentence spells it after a space, without `[BOS]`.

        WordPiece splits on whitespace first, so a name has the same ids
        alone and inside a sentence; `PresetTokenizer` differs.
        """
        return self.encode_batch(texts, add_bos=False)

    def word_continuation_ids(self):
        """Returns the ids of the `##` pieces, which go on with the word before them."""
        return frozenset(index for index, token in enumerate(self.vocabulary) if token.startswith("##"))

    def decode(self, ids):
        """Returns the text of `ids`, without special tokens, words space-joined."""
        return self.decode_batch([ids])[0]

    def decode_batch(self, rows):
        rows = [[int(i) for i in row] for row in rows]
        for row in rows:
            outside = [i for i in row if not 0 <= i < self.vocabulary_size]
            if outside:
                # tensorflow-text would crash the process on such an id.
                raise ModelError(f"token id {outside[0]} is outside the vocabulary of {self.vocabulary_size} tokens")
        rows = [[i for i in row if i >= len(RESERVED_TOKENS)] for row in rows]
        if not rows:
            return []
        ragged = tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)
        return [text.decode("utf-8") for text in self._fast.detokenize(ragged).numpy()]

    def get_config(self):
        return {"vocabulary": self.vocabulary}

    @classmethod
    def from_config(cls, config):
        return cls(config["vocabulary"])
