"""Learning a keras-hub tokenizer (byte-level BPE or SentencePiece) from a corpus.

Both kinds spell any text without an unknown token: byte-level BPE starts
from the 256 bytes, and SentencePiece is trained with `byte_fallback=True`
and `character_coverage=1.0`, so a character the corpus never had (the "ç"
of "Curaçao", the "α" of "α-helix") becomes its UTF-8 bytes. Names of
another domain therefore stay spellable, and copyable, by the model.
"""

import io
import json

from kfine.errors import KfineError

# The GPT-2 end-of-text token; keras-hub's GPT2Tokenizer requires it.
GPT2_END_OF_TEXT = "<|endoftext|>"
# SentencePiece's special pieces as the Llama and Gemma tokenizers expect
# them (keras-hub checks that the start/end/pad tokens are in the vocabulary;
# the ids follow the original checkpoints).
LLAMA_SPECIAL_PIECES = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1,
                        "unk_piece": "<unk>", "bos_piece": "<s>", "eos_piece": "</s>"}
GEMMA_SPECIAL_PIECES = {"pad_id": 0, "eos_id": 1, "bos_id": 2, "unk_id": 3,
                        "pad_piece": "<pad>", "eos_piece": "<eos>", "bos_piece": "<bos>", "unk_piece": "<unk>"}
# 256 byte tokens plus room for the special tokens and some merges.
MIN_VOCABULARY_SIZE = 300


def _check_corpus(sentences, vocabulary_size):
    if vocabulary_size < MIN_VOCABULARY_SIZE:
        raise KfineError(f"vocabulary_size must be at least {MIN_VOCABULARY_SIZE} (256 byte tokens plus special "
                         f"tokens). Received: vocabulary_size={vocabulary_size}")
    sentences = [sentence for sentence in sentences if sentence.strip()]
    if not sentences:
        raise KfineError("cannot learn a tokenizer from an empty corpus (no non-blank sentence)")
    return sentences


def train_byte_level_bpe(sentences, vocabulary_size):
    """Learns GPT-2's byte-level BPE from `sentences`.

    Args:
        sentences: list of str. The corpus.
        vocabulary_size: int. Vocabulary size, the 256 bytes and
            `<|endoftext|>` (the last id) included.

    Returns:
        `(vocabulary, merges)`: a `{token: id}` dict and a list of
        `"left right"` merge rules, as `keras_hub.models.GPT2Tokenizer`
        takes them.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    sentences = _check_corpus(sentences, vocabulary_size)
    tokenizer = Tokenizer(models.BPE())
    # GPT-2's pre-tokenizer: its split regex, spaces kept as a leading "Ġ".
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocabulary_size, special_tokens=[GPT2_END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(sentences, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    # `tokenizers` writes a merge as a pair (newer versions) or as "left right".
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]
    # The trainer puts the special token first, but keras-hub pads GPT-2 with
    # id 0 and generation stops at the end token: at id 0 every padded slot
    # would read as "ended" and nothing would be generated. Like GPT-2's own
    # vocabulary, the end-of-text token goes last.
    tokens = sorted(model["vocab"], key=model["vocab"].get)
    tokens.remove(GPT2_END_OF_TEXT)
    vocabulary = {token: index for index, token in enumerate(tokens + [GPT2_END_OF_TEXT])}
    return vocabulary, merges


def train_sentencepiece(sentences, vocabulary_size, special_pieces):
    """Learns a SentencePiece BPE model with byte fallback from `sentences`.

    Args:
        sentences: list of str. The corpus.
        vocabulary_size: int. Upper bound on the vocabulary size (a small
            corpus may give fewer pieces).
        special_pieces: dict of SentencePiece trainer options naming the
            special pieces and their ids (`LLAMA_SPECIAL_PIECES`,
            `GEMMA_SPECIAL_PIECES`).

    Returns:
        The serialized model proto (bytes), as `keras_hub`'s
        `SentencePieceTokenizer(proto=...)` takes it.
    """
    import sentencepiece

    sentences = _check_corpus(sentences, vocabulary_size)
    proto = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=proto, vocab_size=vocabulary_size, model_type="bpe",
            byte_fallback=True, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
            # Digits one by one and no length cap: numbers and long names stay spellable the same way.
            split_digits=True, max_sentence_length=1 << 16, **special_pieces)
    except RuntimeError as error:
        raise KfineError(f"SentencePiece training failed: {str(error).strip().splitlines()[-1]}") from None
    return proto.getvalue()
