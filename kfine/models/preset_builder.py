"""Building keras-hub CausalLM presets (GPT-2, Llama, Gemma) from a corpus.

A preset written here is an ordinary keras-hub preset folder: it loads with
`keras_hub.models.CausalLM.from_preset(folder)` in a process that never
imports kfine, with its own tokenizer (learned from the corpus, see
`kfine.models.tokenizer_training`) and preprocessor.

Example:

```python
from kfine.models.preset_builder import build_preset

sentences = [f"City {i} lies in country {i % 7}." for i in range(300)]
causal_lm = build_preset("llama", sentences, "tiny_llama")  # random weights
# elsewhere, without kfine:
# keras_hub.models.CausalLM.from_preset("tiny_llama").generate("City 3 lies")
```
"""

import os

import keras

from kfine.errors import KfineError
from kfine.io import atomic_directory, write_json
from kfine.models.tokenizer_training import (
    GEMMA_SPECIAL_PIECES,
    LLAMA_SPECIAL_PIECES,
    train_byte_level_bpe,
    train_sentencepiece,
)

ARCHITECTURES = ("gpt2", "llama", "gemma")
# Small enough that a test builds, saves and reloads a preset in seconds.
TINY_DIMS = {"num_layers": 2, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64}
TINY_VOCABULARY_SIZE = 400
TINY_SEQUENCE_LENGTH = 32
# Files kfine writes beside the preset's own (keras-hub ignores them).
METADATA_FILE = "training.json"
CARD_FILE = "README.md"


def check_architecture(architecture):
    """Raises a one-line `KfineError` unless `architecture` is one of `ARCHITECTURES`."""
    if architecture not in ARCHITECTURES:
        raise KfineError(f"architecture must be one of {', '.join(ARCHITECTURES)}. "
                         f"Received: architecture={architecture!r}")


def train_tokenizer(architecture, sentences, vocabulary_size=TINY_VOCABULARY_SIZE):
    """Learns the tokenizer of `architecture` from `sentences`.

    Args:
        architecture: str. One of `ARCHITECTURES`.
        sentences: list of str. The corpus.
        vocabulary_size: int. Vocabulary size (at most, for SentencePiece).

    Returns:
        A `keras_hub.models.GPT2Tokenizer` (byte-level BPE), `LlamaTokenizer`
        or `GemmaTokenizer` (SentencePiece with byte fallback). None of them
        ever produces an unknown token.
    """
    import keras_hub

    check_architecture(architecture)
    if architecture == "gpt2":
        vocabulary, merges = train_byte_level_bpe(sentences, vocabulary_size)
        return keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)
    if architecture == "llama":
        return keras_hub.models.LlamaTokenizer(proto=train_sentencepiece(sentences, vocabulary_size,
                                                                         LLAMA_SPECIAL_PIECES))
    return keras_hub.models.GemmaTokenizer(proto=train_sentencepiece(sentences, vocabulary_size,
                                                                     GEMMA_SPECIAL_PIECES))


def _check_dims(num_layers, hidden_dim, num_heads, intermediate_dim, num_key_value_heads, sequence_length, dropout):
    for name, value in (("num_layers", num_layers), ("hidden_dim", hidden_dim), ("num_heads", num_heads),
                        ("intermediate_dim", intermediate_dim), ("num_key_value_heads", num_key_value_heads),
                        ("sequence_length", sequence_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KfineError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if hidden_dim % num_heads:
        raise KfineError(f"hidden_dim must be divisible by num_heads. Received: hidden_dim={hidden_dim}, "
                         f"num_heads={num_heads}")
    if num_heads % num_key_value_heads:
        raise KfineError(f"num_heads must be divisible by num_key_value_heads. Received: num_heads={num_heads}, "
                         f"num_key_value_heads={num_key_value_heads}")
    if not 0 <= dropout < 1:
        raise KfineError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")


def build_hub_causal_lm(architecture, tokenizer, num_layers=TINY_DIMS["num_layers"],
                        hidden_dim=TINY_DIMS["hidden_dim"], num_heads=TINY_DIMS["num_heads"],
                        intermediate_dim=TINY_DIMS["intermediate_dim"], num_key_value_heads=None,
                        sequence_length=TINY_SEQUENCE_LENGTH, dropout=0.0):
    """A freshly initialized keras-hub CausalLM of `architecture` with its preprocessor.

    Args:
        architecture: str. One of `ARCHITECTURES`.
        tokenizer: the keras-hub tokenizer of that architecture
            (`train_tokenizer`); its vocabulary size sizes the embedding.
        num_layers: int. Transformer blocks.
        hidden_dim: int. Model width.
        num_heads: int. Attention (query) heads.
        intermediate_dim: int. Feed-forward width.
        num_key_value_heads: int or None. Llama/Gemma grouped-query heads
            (default `num_heads`); GPT-2 has none.
        sequence_length: int. The preprocessor's packed length (and GPT-2's
            position table).
        dropout: float.

    Returns:
        A `GPT2CausalLM`, `LlamaCausalLM` or `GemmaCausalLM`.
    """
    import keras_hub

    check_architecture(architecture)
    num_key_value_heads = num_heads if num_key_value_heads is None else num_key_value_heads
    _check_dims(num_layers, hidden_dim, num_heads, intermediate_dim, num_key_value_heads, sequence_length, dropout)
    vocabulary_size = tokenizer.vocabulary_size()
    if architecture == "gpt2":
        if num_key_value_heads != num_heads:
            raise KfineError(f"GPT-2 has no grouped-query attention. Received: num_key_value_heads="
                             f"{num_key_value_heads} with num_heads={num_heads}")
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim, dropout=dropout, max_sequence_length=sequence_length)
        preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=sequence_length)
        return keras_hub.models.GPT2CausalLM(backbone, preprocessor)
    if architecture == "llama":
        backbone = keras_hub.models.LlamaBackbone(
            vocabulary_size=vocabulary_size, num_layers=num_layers, num_query_heads=num_heads, hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim, num_key_value_heads=num_key_value_heads, dropout=dropout)
        preprocessor = keras_hub.models.LlamaCausalLMPreprocessor(tokenizer, sequence_length=sequence_length)
        return keras_hub.models.LlamaCausalLM(backbone, preprocessor)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=vocabulary_size, num_layers=num_layers, num_query_heads=num_heads,
        num_key_value_heads=num_key_value_heads, hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
        head_dim=hidden_dim // num_heads, dropout=dropout)
    preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(tokenizer, sequence_length=sequence_length)
    return keras_hub.models.GemmaCausalLM(backbone, preprocessor)


def save_preset(causal_lm, folder, metadata=None, card=None):
    """Writes `causal_lm` as a keras-hub preset folder, atomically.

    Args:
        causal_lm: a keras-hub `CausalLM` with its preprocessor.
        folder: str. Created or replaced as a whole.
        metadata: dict or None. Written beside the preset as `training.json`.
        card: str or None. Markdown model card, written as `README.md`.
    """
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise KfineError(f"{folder}: is a file; a preset is a folder")
    with atomic_directory(folder) as staging:
        causal_lm.save_to_preset(staging)
        if metadata is not None:
            write_json(os.path.join(staging, METADATA_FILE), metadata)
        if card is not None:
            with open(os.path.join(staging, CARD_FILE), "w", encoding="utf-8") as stream:
                stream.write(card)


def build_preset(architecture, sentences, folder, vocabulary_size=TINY_VOCABULARY_SIZE, seed=0, **dims):
    """Writes a preset of `architecture` with random weights and a tokenizer learned from `sentences`.

    The fast path for tests: with the tiny defaults and a few hundred
    sentences it takes a few seconds.

    Args:
        architecture: str. One of `ARCHITECTURES`.
        sentences: list of str. The tokenizer's corpus.
        folder: str. The preset folder (created or replaced atomically).
        vocabulary_size: int.
        seed: int. Seeds the weight initialization.
        **dims: `build_hub_causal_lm` arguments (`num_layers`, `hidden_dim`,
            `num_heads`, `intermediate_dim`, `num_key_value_heads`,
            `sequence_length`, `dropout`).

    Returns:
        The keras-hub `CausalLM` that was saved.
    """
    check_architecture(architecture)
    # Seeding first: `keras.utils.set_random_seed` clears TensorFlow's kernel
    # cache, which drops the SentencePiece op of a tokenizer made before it
    # (its tf.data use then fails with "SentencepieceResource does not exist").
    keras.utils.set_random_seed(seed)
    tokenizer = train_tokenizer(architecture, sentences, vocabulary_size)
    causal_lm = build_hub_causal_lm(architecture, tokenizer, **dims)
    save_preset(causal_lm, folder)
    return causal_lm
