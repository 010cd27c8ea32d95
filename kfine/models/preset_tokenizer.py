"""A keras-hub preset's own tokenizer behind the interface kfine uses."""

import base64
import unicodedata

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kfine.errors import ModelError

PADDING_TOKEN = "<|kfine_padding|>"
"""The token of id 0, which pads kfine batches; no preset token has that id (see `PresetTokenizer`)."""


class PresetTokenizer:
    """A keras-hub tokenizer (byte-level BPE, SentencePiece) with the interface of `WordPieceTokenizer`.

    kfine pads batches with id 0 and tells padding from text by it (losses
    ignore id-0 targets, attention masks id-0 keys). A preset's own ids
    cannot promise that: GPT-2 starts, ends and pads with the same
    `<|endoftext|>`, and Llama pads with `<unk>`. So kfine ids are the
    preset's ids plus one, and id 0 is a padding token of kfine's own;
    `KerasHubBackboneLayer` subtracts the one before the backbone and
    `BackboneOutputHead` gives padding no probability. The `vocabulary` is
    `[PADDING_TOKEN] + ` the preset's tokens in id order.

    Decoding joins the tokens as the preset does (byte-level BPE and
    SentencePiece are lossless), so "America/New_York" stays as written;
    the space a continuation starts with ("ĠParis", "▁Paris") is stripped.

    `get_config` holds the tokenizer's keras-hub config and its vocabulary
    (BPE vocabulary and merges, or the SentencePiece model, base64), so a
    model config is self-contained: `from_config(get_config())` copies keep
    the tokenizer, and loading needs no pickle and no file outside the
    `.keras` archive.

    Args:
        tokenizer: `keras_hub.tokenizers.BytePairTokenizer` or
            `SentencePieceTokenizer` with start and end tokens (e.g.
            `GPT2Tokenizer`, `LlamaTokenizer`, `GemmaTokenizer`).

    Example:

    >>> tokenizer = PresetTokenizer(keras_hub.tokenizers.Tokenizer.from_preset(folder))
    >>> tokenizer.decode(tokenizer.encode("The capital of France is Paris."))
    'The capital of France is Paris.'
    """

    def __init__(self, tokenizer):
        if not isinstance(
            tokenizer, (keras_hub.tokenizers.BytePairTokenizer, keras_hub.tokenizers.SentencePieceTokenizer)
        ):
            raise ModelError(
                "kfine reads byte-level BPE and SentencePiece keras-hub tokenizers. "
                f"Received: tokenizer of type {type(tokenizer).__name__}"
            )
        for attribute in ("start_token_id", "end_token_id"):
            if getattr(tokenizer, attribute, None) is None:
                raise ModelError(
                    f"a keras-hub tokenizer used by kfine needs a start and an end token; "
                    f"{type(tokenizer).__name__} has no {attribute}"
                )
        self.preset_tokenizer = tokenizer
        self.vocabulary = [PADDING_TOKEN] + _preset_vocabulary(tokenizer)
        self._token_ids = {token: index for index, token in enumerate(self.vocabulary)}
        self.pad_id = 0
        self.bos_id = tokenizer.start_token_id + 1
        self.eos_id = tokenizer.end_token_id + 1
        # Byte-level BPE spells every text (no unknown id); SentencePiece maps
        # characters it lacks to its `<unk>` unless it falls back to bytes.
        self.unk_id = None
        if isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
            import sentencepiece

            model = sentencepiece.SentencePieceProcessor(model_proto=tokenizer.proto)
            self.unk_id = model.unk_id() + 1
        self._special_ids = np.array(
            sorted({0, self.bos_id, self.eos_id} | {i + 1 for i in getattr(tokenizer, "special_token_ids", ())}),
            "int64",
        )

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def token_to_id(self, token):
        return self._token_ids[token]

    def tokenize(self, texts):
        """Tokenizes a string tensor in-graph; returns int32 ids (ragged for a batch).

        A graph that calls it (a `tf.data` map) keeps working after a later
        `keras.utils.set_random_seed` only if it was traced after that call.
        """
        texts = tf.convert_to_tensor(texts)
        sentence_piece = isinstance(self.preset_tokenizer, keras_hub.tokenizers.SentencePieceTokenizer)
        if sentence_piece and not tf.executing_eagerly():
            # `keras.utils.set_random_seed` clears TensorFlow's kernel caches,
            # freeing the SentencePiece op the tokenizer built eagerly: a graph
            # (tf.data) traced after a reseed would name a freed resource
            # ("SentencepieceResource does not exist"). Rebuild it, outside the
            # graph, each time one is traced.
            with tf.init_scope():
                self.preset_tokenizer.set_proto(self.preset_tokenizer.proto)
        ids = self.preset_tokenizer.tokenize(texts)
        if not isinstance(ids, (tf.Tensor, tf.RaggedTensor)):
            # Eagerly keras-hub tokenizes in Python (lists); in a graph it uses TensorFlow ops.
            ids = tf.ragged.constant(ids, tf.int32) if texts.shape.rank else tf.constant(ids, tf.int32)
        return tf.cast(ids, tf.int32) + 1

    def encode(self, text, add_bos=True, add_eos=False):
        """Returns the token ids of one str as a Python list."""
        return self.encode_batch([text], add_bos=add_bos, add_eos=add_eos)[0]

    def encode_batch(self, texts, add_bos=True, add_eos=False):
        """Returns the token ids of each str in `texts` as Python lists."""
        if not texts:
            return []
        prefix = [self.bos_id] if add_bos else []
        suffix = [self.eos_id] if add_eos else []
        return [prefix + [int(i) + 1 for i in row] + suffix for row in _rows(self.preset_tokenizer(list(texts)))]

    def encode_in_context(self, texts):
        """Returns the ids of each text as a sentence spells it after a space ("ĠParis", "▁Paris").

        Without `[BOS]`; what a name copied into an answer is made of.
        """
        return self.encode_batch([" " + text for text in texts], add_bos=False)

    def word_continuation_ids(self):
        """Returns the ids of tokens that go on with the word before them ("ian" after "ĠParis").

        A byte-level BPE or SentencePiece token starts a word with its
        space marker ("Ġ", "▁") and otherwise continues the word before it
        when its first character is a letter, digit or mark.
        """
        return frozenset(
            index
            for index, token in enumerate(self.vocabulary)
            if index not in self._special_ids and _continues_word(token)
        )

    def decode(self, ids):
        """Returns the text of `ids`, without special tokens."""
        return self.decode_batch([ids])[0]

    def decode_batch(self, rows):
        rows = [np.asarray(row, "int64").reshape(-1) for row in rows]
        for row in rows:
            outside = row[(row < 0) | (row >= self.vocabulary_size)]
            if outside.size:
                raise ModelError(f"token id {outside[0]} is outside the vocabulary of {self.vocabulary_size} tokens")
        rows = [row[~np.isin(row, self._special_ids)] - 1 for row in rows]
        texts = []
        for row in rows:
            text = self.preset_tokenizer.detokenize(row) if row.size else ""
            if not isinstance(text, str):
                text = np.asarray(text).item()
                text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
            texts.append(text.strip())
        return texts

    def get_config(self):
        tokenizer = self.preset_tokenizer
        config = {"tokenizer": keras.saving.serialize_keras_object(tokenizer)}
        if isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
            config["proto"] = base64.b64encode(tokenizer.proto).decode("ascii")
        else:
            config["vocabulary"] = dict(tokenizer.vocabulary)
            config["merges"] = list(tokenizer.merges)
        return config

    @classmethod
    def from_config(cls, config):
        # Safe mode: a tokenizer config naming a Lambda or an unregistered class is refused.
        tokenizer = keras.saving.deserialize_keras_object(config["tokenizer"], safe_mode=True)
        if "proto" in config:
            tokenizer.set_proto(base64.b64decode(config["proto"]))
        else:
            tokenizer.set_vocabulary_and_merges(config["vocabulary"], config["merges"])
        return cls(tokenizer)


def _preset_vocabulary(tokenizer):
    vocabulary = tokenizer.get_vocabulary()
    if isinstance(vocabulary, list):
        return vocabulary
    return [tokenizer.id_to_token(index) for index in range(tokenizer.vocabulary_size())]


# How byte-level BPE spells a space, newline, tab and carriage return, and
# SentencePiece's space: letters to `isalnum`, but they start a new word.
_WHITESPACE_MARKERS = frozenset("ĠĊĉč▁")


def _continues_word(token):
    first = token[:1]
    if not first or first in _WHITESPACE_MARKERS:
        return False
    return first.isalnum() or unicodedata.category(first).startswith("M")


def _rows(ids):
    """Ragged/dense tensor, array or nested lists of ids -> list of lists of ints."""
    if isinstance(ids, tf.RaggedTensor):
        return ids.to_list()
    if hasattr(ids, "numpy"):
        ids = ids.numpy()
    return [list(row) for row in ids]
