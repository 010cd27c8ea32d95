"""Training plumbing: next-token batches, the method registry, pretraining artifacts."""

import os

import numpy as np
import pytest

from kfine.errors import KfineError
from kfine.models.batches import token_batches
from kfine.models.loading import load_metadata, load_model
from kfine.training import methods
from kfine.training.baseline import fine_tune_baseline
from kfine.training.pretrain import pretrain
from people_kg import TINY_ARCHITECTURE

SENTENCES = [
    "Alda Varenko plays the harp.",
    "Borin Quillby works for Lumen Freight.",
    "Cela Marsh was born in Dunmoor.",
]


def _rows(dataset):
    return [(inputs, targets) for batch_inputs, batch_targets in dataset.as_numpy_iterator()
            for inputs, targets in zip(batch_inputs, batch_targets)]


def test_token_batches_shift_inputs_and_targets(people_tokenizer):
    rows = _rows(token_batches(people_tokenizer, SENTENCES, sequence_length=32, batch_size=2))
    assert len(rows) == len(SENTENCES)
    expected = sorted(tuple(people_tokenizer.encode(sentence, add_bos=True, add_eos=True)) for sentence in SENTENCES)
    found = []
    for inputs, targets in rows:
        assert inputs.dtype == np.int32 and inputs.shape == targets.shape
        length = int(np.count_nonzero(targets))  # [PAD] (0) targets carry no loss
        assert inputs[0] == people_tokenizer.bos_id and targets[length - 1] == people_tokenizer.eos_id
        np.testing.assert_array_equal(inputs[1:length], targets[: length - 1])
        assert not targets[length:].any()
        found.append(tuple(inputs[:length]) + (targets[length - 1],))
    assert sorted(found) == expected


def test_token_batches_pad_to_a_few_lengths(people_tokenizer, people_task):
    sentences = people_task.finetune_sentences + ["Alda " * 40]
    widths = {batch.shape[1] for batch, _ in token_batches(people_tokenizer, sentences, 32, 8).as_numpy_iterator()}
    assert max(widths) <= 32  # long sentences are cut to the model's length
    assert len(widths) <= 3


def test_token_batches_shuffle_with_a_seed(people_tokenizer, people_task):
    sentences = people_task.finetune_sentences

    def order(seed):
        return [tuple(inputs) for inputs, _ in _rows(token_batches(people_tokenizer, sentences, 32, 4, seed))]

    assert order(3) == order(3)
    assert order(3) != order(None)
    assert sorted(order(3)) == sorted(order(None))


def test_method_table_and_user_registration(monkeypatch):
    monkeypatch.setattr(methods, "_USER_METHODS", {})
    assert methods.available_methods() == sorted(methods.BUILTIN_METHODS)
    assert methods.get_method("baseline") is fine_tune_baseline
    with pytest.raises(KfineError, match="--methods: unknown method 'nope'; known methods: .*baseline"):
        methods.get_method("nope")

    @methods.register_method("test_only")
    def fine_tune(task, pretrained, seed, log_dir, quick=False, verbose=0):
        return None

    assert methods.get_method("test_only") is fine_tune
    assert "test_only" in methods.available_methods()
    for taken in ("test_only", "baseline"):
        with pytest.raises(ValueError, match=f"{taken!r} is already registered"):
            methods.register_method(taken)(fine_tune)

    @methods.register_method("no_seed")
    def fine_tune_without_seed(task, pretrained, log_dir, quick=False, verbose=0):
        return None

    with pytest.raises(KfineError, match=r"^method 'no_seed': .*fine_tune_without_seed is registered but cannot be "
                                         r"called as a method \(.*seed.*\); a method takes task, pretrained, seed"):
        methods.get_method("no_seed")


def test_pretrain_writes_a_documented_model(pretrained_dir, people_task):
    metadata = load_metadata(pretrained_dir)
    model = load_model(pretrained_dir)
    assert metadata["kind"] == "kfine-causal-lm"
    assert metadata["kg_fingerprint"] == people_task.knowledge_graph.fingerprint()
    assert metadata["architecture"] == TINY_ARCHITECTURE
    assert metadata["vocabulary_size"] == model.tokenizer.vocabulary_size
    assert metadata["parameters"] == model.count_params()
    pretrain_triples = people_task.splits.training_triples("pretrain")
    assert metadata["corpus_facts"] == len(pretrain_triples)
    # The LM learns every wording, the reserved paraphrase ones too (no fine-tuning method sees those).
    assert metadata["corpus_templates"] == "all"
    assert metadata["corpus_sentences"] == len(people_task.verbalizer.sentences(pretrain_triples, which="all"))
    assert 0.0 <= metadata["seen_fact_accuracy"] <= 1.0 and np.isfinite(metadata["final_loss"])
    with open(os.path.join(pretrained_dir, "README.md"), encoding="utf-8") as stream:
        card = stream.read()
    assert f"{metadata['parameters']:,} parameters" in card and "Exact command: `pytest`" in card


def test_pretrain_can_leave_the_paraphrase_wording_out(people_task, tmp_path):
    out_dir = str(tmp_path / "lm")
    metadata = pretrain(people_task, out_dir, epochs=1, architecture=TINY_ARCHITECTURE, vocabulary_size=200,
                        verbose=0, corpus_templates="training")
    pretrain_triples = people_task.splits.training_triples("pretrain")
    assert metadata["corpus_sentences"] == len(people_task.verbalizer.sentences(pretrain_triples, which="training"))
    assert metadata["corpus_sentences"] < len(people_task.verbalizer.sentences(pretrain_triples, which="all"))
    with open(os.path.join(out_dir, "README.md"), encoding="utf-8") as stream:
        assert "the paraphrase wording is new to the LM" in stream.read()


def test_pretrain_rejects_an_unknown_corpus_choice(people_task, tmp_path):
    with pytest.raises(ValueError, match="corpus_templates='paraphrase'"):
        pretrain(people_task, str(tmp_path / "lm"), corpus_templates="paraphrase")
    assert not os.path.exists(tmp_path / "lm")


def test_pretrained_tokenizer_covers_every_kg_name(pretrained_dir, people_task):
    tokenizer = load_model(pretrained_dir).tokenizer
    graph = people_task.knowledge_graph
    for entity in graph.entities:
        for name in graph.names(entity):
            assert tokenizer.unk_id not in tokenizer.encode(name), name
