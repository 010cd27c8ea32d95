"""Tests of `FactDatastore`, and of the `model.add` path that adds one for a `KnowledgeInjectionLayer`."""

import os

import keras
import numpy as np
import pytest

from kfine.errors import ModelError
from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.knowledge.graph import KnowledgeGraph
from kfine.layers import FactDatastore, KnowledgeInjectionLayer, LanguageModelHead
from kfine.layers.subject_mentions import spelling_table
from kfine.models.causal_lm import token_windows
from kfine.models.generation import Generator
from kfine.models.loading import load_model
from layer_test_case import run_layer_test


def _add_datastore(pretrained_dir, people_task):
    model = load_model(pretrained_dir)
    model.add(KnowledgeInjectionLayer(people_task.model_graph, templates=people_task.templates, name="injection"))
    return model


@pytest.fixture(scope="module")
def model_with_datastore(pretrained_dir, people_task):
    """Shared by the tests that only read the model."""
    return _add_datastore(pretrained_dir, people_task)


@pytest.fixture
def fresh_model_with_datastore(pretrained_dir, people_task):
    """For tests that train or refresh the model."""
    return _add_datastore(pretrained_dir, people_task)


def _token_ids(model, texts):
    rows = model.tokenizer.encode_batch(texts)
    token_ids = np.zeros((len(rows), max(map(len, rows))), "int32")
    for index, row in enumerate(rows):
        token_ids[index, : len(row)] = row
    return token_ids


def test_model_add_places_a_datastore_after_the_head(model_with_datastore):
    layers = model_with_datastore.layers
    assert isinstance(layers[-2], LanguageModelHead)
    assert isinstance(layers[-1], FactDatastore)
    assert model_with_datastore.get_layer("injection") is layers[-1]  # it takes the added layer's name
    token_ids = _token_ids(model_with_datastore, ["The birthplace of Alda Varenko is"])
    outputs = keras.ops.convert_to_numpy(model_with_datastore(token_ids))
    assert outputs.shape == (1, token_ids.shape[1], model_with_datastore.tokenizer.vocabulary_size)
    # The output is a log-distribution: it sums to one after exp.
    np.testing.assert_allclose(np.exp(outputs).sum(-1), 1.0, atol=1e-4)


def test_datastore_keys_cover_every_fact_and_skip_the_paraphrase(model_with_datastore, people_task):
    datastore = model_with_datastore.layers[-1]
    graph = people_task.model_graph
    # Each (fact, training template) gives at least the name's tokens and one more.
    sentences = sum(len(people_task.templates.training_templates(r)) for _, r, _ in graph.triples)
    assert datastore.size >= 2 * sentences
    assert datastore.kg_fingerprint == graph.fingerprint()


def test_held_out_facts_are_answered_from_the_datastore(pretrained_dir, model_with_datastore, people_task):
    prompts = people_task.evaluation_prompts("heldout")
    plain = load_model(pretrained_dir)
    without = rates(judge_prompts(Generator(plain, plain.tokenizer), people_task.knowledge_graph, prompts))
    with_datastore = rates(
        judge_prompts(
            Generator(model_with_datastore, model_with_datastore.tokenizer), people_task.knowledge_graph, prompts
        )
    )
    # The tiny model (1 layer, d=32) separates subjects' hidden states only
    # partly, so neighbours of other people share the vote; still, the
    # datastore answers far more held-out facts than the model alone.
    print(f"held-out accuracy: {without['accuracy']:.2f} alone, {with_datastore['accuracy']:.2f} with the datastore")
    assert with_datastore["accuracy"] >= without["accuracy"] + 0.3


def test_next_token_logits_match_the_full_forward(model_with_datastore):
    token_ids = _token_ids(model_with_datastore, ["Alda Varenko works for", "The birthplace of Borin Quillby is"])
    full = keras.ops.convert_to_numpy(model_with_datastore(token_ids))
    for index in (3, token_ids.shape[1]):
        one = keras.ops.convert_to_numpy(model_with_datastore.next_token_logits(token_ids, index))
        np.testing.assert_allclose(one, full[:, index - 1], atol=1e-4)


def test_save_load_safe_mode_gives_identical_outputs(model_with_datastore, tmp_path):
    token_ids = _token_ids(model_with_datastore, ["Alda Varenko plays the", "Cela Varenko works for"])
    path = os.path.join(tmp_path, "model.keras")
    model_with_datastore.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.layers[-1], FactDatastore)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(token_ids)), keras.ops.convert_to_numpy(model_with_datastore(token_ids))
    )


def test_jit_compiled_fit_trains_through_the_mixture(fresh_model_with_datastore):
    model_with_datastore = fresh_model_with_datastore
    from kfine.training.mle import next_token_loss

    token_ids = _token_ids(
        model_with_datastore, ["Alda Varenko plays the harp .", "Cela Varenko works for Lumen Freight ."]
    )
    model_with_datastore.compile(optimizer=keras.optimizers.Adam(1e-3), loss=next_token_loss(), jit_compile=True)
    before = [keras.ops.convert_to_numpy(w).copy() for w in model_with_datastore.trainable_weights]
    history = model_with_datastore.fit(token_ids[:, :-1], token_ids[:, 1:], epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = [keras.ops.convert_to_numpy(w) for w in model_with_datastore.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    # The datastore holds no trainable weights: its keys change only by `refresh`.
    assert not model_with_datastore.layers[-1].trainable_weights


def test_refresh_recomputes_keys_and_checks_the_graph(fresh_model_with_datastore, people_task):
    model_with_datastore = fresh_model_with_datastore
    datastore = model_with_datastore.layers[-1]
    keys = keras.ops.convert_to_numpy(datastore.keys).copy()
    first = model_with_datastore.layers[1]  # the first decoder block
    first.set_weights([w * 1.5 for w in first.get_weights()])
    datastore.refresh(model_with_datastore, people_task.model_graph, people_task.templates)
    assert not np.allclose(keras.ops.convert_to_numpy(datastore.keys), keys)
    with pytest.raises(ModelError, match="fingerprint"):
        datastore.refresh(model_with_datastore, KnowledgeGraph([("A", "r", "B")]), people_task.templates)


def test_model_add_without_templates_is_a_clear_error(pretrained_dir, people_task):
    model = load_model(pretrained_dir)
    with pytest.raises(ValueError, match="templates=templates"):
        model.add(KnowledgeInjectionLayer(people_task.model_graph))


def test_layer_checks():
    rng = np.random.default_rng(0)
    run_layer_test(
        FactDatastore,
        init_kwargs={"size": 10, "hidden_dim": 4, "vocabulary_size": 7, "top_k": 3, "temperature": 0.1,
                     "interpolation": 0.5},
        input_data=[rng.normal(size=(2, 3, 4)).astype("float32"), rng.normal(size=(2, 3, 7)).astype("float32"),
                    rng.integers(0, 7, size=(2, 3)).astype("int32")],
        expected_output_shape=(2, 3, 7),
        # A log-distribution, like logits: float32 under mixed precision too.
        expected_mixed_precision_output_dtype="float32",
        invalid_init_kwargs=[
            ({"top_k": 0}, "top_k=0"),
            ({"temperature": 0}, "temperature=0"),
            ({"interpolation": 1.5}, "interpolation=1.5"),
            ({"size": -1}, "size=-1"),
        ],
    )


def test_datastore_votes_for_the_nearest_keys_token():
    datastore = FactDatastore(size=3, hidden_dim=2, vocabulary_size=4, top_k=2, interpolation=1.0)
    datastore.build()
    datastore.assign(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), np.array([1, 2, 3]))
    hidden = np.array([[[0.1, 0.9], [-2.0, 0.1]]], "float32")
    outputs = keras.ops.convert_to_numpy(datastore([hidden, np.zeros((1, 2, 4), "float32"), np.zeros((1, 2), "int32")]))
    assert outputs.argmax(-1).tolist() == [[2, 3]]


def test_a_key_inside_a_name_votes_only_after_the_token_it_followed():
    # Two keys at the same place: a name's first token (value 1, open to any
    # query) and a key inside a name that followed token 5 (value 2).
    datastore = FactDatastore(size=2, hidden_dim=2, vocabulary_size=6, top_k=2, temperature=0.01, interpolation=1.0)
    datastore.build()
    datastore.assign(np.array([[1.0, 0.0], [1.0, 0.01]]), np.array([1, 2]), followed=np.array([-1, 5]))
    hidden_states = np.array([[[1.0, 0.01], [1.0, 0.01]]], "float32")
    logits = np.zeros((1, 2, 6), "float32")
    token_ids = np.array([[5, 3]], "int32")
    probabilities = np.exp(keras.ops.convert_to_numpy(datastore([hidden_states, logits, token_ids])))[0]
    assert probabilities[0, 2] > 0.5  # after token 5 the nearer continuation key wins
    assert probabilities[1, 1] > 0.99 and probabilities[1, 2] < 1e-6  # after token 3 it does not vote


def test_layer_checks_with_a_subject_table():
    rng = np.random.default_rng(0)
    run_layer_test(
        FactDatastore,
        init_kwargs={"size": 10, "hidden_dim": 4, "vocabulary_size": 7, "top_k": 3, "context": 4,
                     "mention_table_size": 16, "max_mention_length": 2, "mention_hash_bases": [3, 5],
                     "num_entities": 5},
        input_data=[rng.normal(size=(2, 3, 4)).astype("float32"), rng.normal(size=(2, 3, 7)).astype("float32"),
                    rng.integers(0, 7, size=(2, 3, 4)).astype("int32")],
        expected_output_shape=(2, 3, 7),
        expected_mixed_precision_output_dtype="float32",
        invalid_init_kwargs=[({"context": 0}, "context=0"), ({"mention_table_size": -1}, "-1"),
                             ({"mention_hash_bases": None}, "mention_hash_bases=None")],
    )


def test_keys_of_the_subject_the_tokens_name_outrank_nearer_keys():
    # Key 0 (subject 0, value 1) lies nearer the query than key 1 (subject 1, value 2).
    table = spelling_table({(4,): 0, (5,): 1})
    datastore = FactDatastore(size=2, hidden_dim=2, vocabulary_size=6, top_k=2, interpolation=1.0, context=3,
                              mention_table_size=len(table["check"]), max_mention_length=table["max_length"],
                              mention_hash_bases=list(table["bases"]), num_entities=2)
    datastore.build()
    datastore.assign(np.array([[1.0, 0.0], [0.8, 0.6]]), np.array([1, 2]), key_subjects=np.array([0, 1]))
    datastore.assign_spellings(table)
    hidden_states = np.array([[[1.0, 0.05]] * 3], "float32")
    logits = np.zeros((1, 3, 6), "float32")
    # Windows of 3 tokens: nothing named, then subject 1 ("5"), then subject 0 only ("4", "3").
    windows = np.array([[[0, 1, 3], [1, 5, 3], [0, 4, 3]]], "int32")
    outputs = keras.ops.convert_to_numpy(datastore([hidden_states, logits, windows]))
    assert outputs.argmax(-1).tolist() == [[1, 2, 1]]


def test_each_key_knows_its_facts_subject(model_with_datastore, people_task):
    datastore = model_with_datastore.layers[-1]
    graph = people_task.model_graph
    key_subjects = keras.ops.convert_to_numpy(datastore.key_subjects)
    assert set(key_subjects.tolist()) == {graph.entity_id(subject) for subject, _, _ in graph.triples}
    # A prompt naming a subject makes the layer find that subject.
    subject = graph.triples[0][0]
    token_ids = _token_ids(model_with_datastore, [f"Everyone knows {subject}"])
    found = keras.ops.convert_to_numpy(datastore.named_subjects(token_windows(token_ids, datastore.context)))
    assert found[0, -1] == graph.entity_id(subject)
    assert found[0, 0] == -1


def test_the_output_at_a_position_never_reads_a_later_token(model_with_datastore, people_task):
    subject = people_task.model_graph.triples[0][0]
    token_ids = _token_ids(model_with_datastore, [f"{subject} works for", f"{subject} works for {subject}"])
    shared = len(model_with_datastore.tokenizer.encode_batch([f"{subject} works for"])[0])
    outputs = keras.ops.convert_to_numpy(model_with_datastore(token_ids))
    np.testing.assert_allclose(outputs[0, :shared], outputs[1, :shared], atol=1e-5)


def test_a_datastore_without_a_spelling_table_keeps_the_earlier_weights():
    # What a datastore saved before subject matching holds, so such a .keras file still loads.
    datastore = FactDatastore(size=3, hidden_dim=2, vocabulary_size=4)
    datastore.build()
    assert [weight.name for weight in datastore.weights] == ["keys", "values", "followed"]
    assert datastore.get_config()["mention_table_size"] == 0
