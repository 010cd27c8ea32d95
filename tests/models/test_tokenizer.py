import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from kfine.errors import ModelError
from kfine.models.tokenizer import RESERVED_TOKENS, WordPieceTokenizer

# Repeated: the vocabulary learner keeps only words seen often enough.
CORPUS = [
    "The capital of France is Paris.",
    "The capital of Spain is Madrid.",
    "Paris lies on the Seine.",
    "Madrid lies in the centre of Spain.",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.learn(CORPUS, vocabulary_size=100, coverage_texts=["Zürich", "Ωmega Σ", "東京"])


def _tokens(tokenizer, text):
    return [tokenizer.vocabulary[index] for index in tokenizer.encode(text, add_bos=False)]


def test_reserved_tokens_come_first(tokenizer):
    assert tuple(tokenizer.vocabulary[:4]) == RESERVED_TOKENS == ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.vocabulary_size == len(tokenizer.vocabulary) == len(set(tokenizer.vocabulary))
    assert tokenizer.token_to_id("[EOS]") == 3


def test_learns_frequent_words_as_single_tokens(tokenizer):
    assert _tokens(tokenizer, "The capital of Spain is Madrid .") == ["The", "capital", "of", "Spain", "is", "Madrid",
                                                                     "."]


def test_case_is_kept(tokenizer):
    assert tokenizer.encode("Paris") != tokenizer.encode("paris")
    assert tokenizer.decode(tokenizer.encode("paris")) == "paris"


@pytest.mark.parametrize(
    "text, decoded",
    [
        ("Paris lies on the Seine.", "Paris lies on the Seine ."),
        ("Madrid", "Madrid"),
        ("Quixotic Zebras!", "Quixotic Zebras !"),  # unseen words: built from covered characters
        ("", ""),
    ],
)
def test_encode_decode_round_trip(tokenizer, text, decoded):
    ids = tokenizer.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    assert tokenizer.decode(ids) == decoded  # special tokens dropped, words space-joined


def test_encode_flags(tokenizer):
    plain = tokenizer.encode("Paris", add_bos=False)
    assert tokenizer.encode("Paris") == [tokenizer.bos_id, *plain]
    assert tokenizer.encode("Paris", add_bos=False, add_eos=True) == [*plain, tokenizer.eos_id]


def test_batch_methods_match_single_ones(tokenizer):
    texts = ["Paris lies on the Seine.", "Madrid", "Zürich"]
    assert tokenizer.encode_batch(texts, add_eos=True) == [tokenizer.encode(text, add_eos=True) for text in texts]
    assert tokenizer.encode_batch([]) == []
    rows = tokenizer.encode_batch(texts)
    assert tokenizer.decode_batch(rows) == [tokenizer.decode(row) for row in rows]
    assert tokenizer.decode_batch([]) == []


def test_tokenize_runs_in_graph(tokenizer):
    """`tokenize` works on string tensors inside tf.data and tf.function."""
    dataset = tf.data.Dataset.from_tensor_slices(["Paris lies on the Seine.", "Madrid"]).map(tokenizer.tokenize)
    rows = [row.tolist() for row in dataset.as_numpy_iterator()]
    assert rows == [tokenizer.encode(text, add_bos=False) for text in ("Paris lies on the Seine.", "Madrid")]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def lengths(texts):
        return tokenizer.tokenize(texts).row_lengths()

    np.testing.assert_array_equal(lengths(tf.constant(["Madrid", "Paris lies"])), [1, 2])
    ragged = tokenizer.tokenize(tf.constant(["Madrid", "Paris lies"]))
    assert isinstance(ragged, tf.RaggedTensor) and ragged.dtype == tf.int32


@pytest.mark.parametrize(
    "text",
    [
        "Żółć, Ærøskøbing, Ålesund, straße, œuvre, Ŧŋ",  # Latin-1 supplement and Latin extended-A
        "“quoted” – dash — ‘single’",  # typographic punctuation
        "~`^|{}[]<>@#$%&*+=\\/",  # printable ASCII
        "Zürich Ωmega Σ 東京",  # characters of the coverage texts
    ],
)
def test_covered_characters_never_become_unknown(tokenizer, text):
    ids = tokenizer.encode(text, add_bos=False)
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids).replace(" ", "") == text.replace(" ", "")


def test_characters_outside_the_coverage_are_unknown(tokenizer):
    assert tokenizer.encode("Привет", add_bos=False) == [tokenizer.unk_id]


def test_coverage_is_of_single_characters_and_continuations(tokenizer):
    vocabulary = set(tokenizer.vocabulary)
    for character in "aZ0ßŸ東Ω":
        assert character in vocabulary and "##" + character in vocabulary


def test_config_round_trip(tokenizer):
    revived = WordPieceTokenizer.from_config(tokenizer.get_config())
    assert revived.vocabulary == tokenizer.vocabulary
    assert revived.encode("Paris et Zürich") == tokenizer.encode("Paris et Zürich")


def test_learning_is_deterministic():
    first = WordPieceTokenizer.learn(CORPUS, vocabulary_size=100)
    second = WordPieceTokenizer.learn(list(CORPUS), vocabulary_size=100)
    assert first.vocabulary == second.vocabulary


def test_vocabulary_size_bounds_the_learned_part():
    small = WordPieceTokenizer.learn(CORPUS, vocabulary_size=20)
    large = WordPieceTokenizer.learn(CORPUS, vocabulary_size=400)
    assert small.vocabulary_size < large.vocabulary_size


@pytest.mark.parametrize(
    "vocabulary",
    [["a", "b"], ["[UNK]", "[PAD]", "[BOS]", "[EOS]", "a"], ["[PAD]", "[UNK]", "[BOS]"]],
    ids=["no_reserved", "wrong_order", "missing_eos"],
)
def test_vocabulary_must_start_with_the_reserved_tokens(vocabulary):
    with pytest.raises(ModelError, match=r"must start with \['\[PAD\]', '\[UNK\]', '\[BOS\]', '\[EOS\]'\]"):
        WordPieceTokenizer(vocabulary)


def test_learning_from_an_empty_corpus_fails():
    with pytest.raises(ModelError, match="empty corpus"):
        WordPieceTokenizer.learn([])


def test_decoding_an_id_outside_the_vocabulary_fails_cleanly():
    """An id past the vocabulary (e.g. sampled from a larger LM head) must not crash the process.

    Raising a Python exception or decoding it as [UNK] are both fine. Run in a
    subprocess, so a crash of the native detokenizer does not take pytest with it.
    """
    script = textwrap.dedent(
        """
        from kfine.models.tokenizer import RESERVED_TOKENS, WordPieceTokenizer
        tokenizer = WordPieceTokenizer(list(RESERVED_TOKENS) + ["a", "b", "##a"])
        assert tokenizer.decode([4, 5]) == "a b"
        try:
            print("decoded", repr(tokenizer.decode([4, 650])))
        except Exception as error:
            print("raised", type(error).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit status {result.returncode} (negative: killed by signal {-result.returncode})"
    assert result.stdout.startswith(("decoded", "raised")), result.stdout
