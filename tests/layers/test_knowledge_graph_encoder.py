"""Tests of `KnowledgeGraphEncoder`: R-GCN message passing over a toy knowledge graph."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.errors import ModelError
from kfine.knowledge.graph import KnowledgeGraph
from kfine.layers import KnowledgeGraphEncoder, knowledge_graph_encoder, layer_utils
from layer_test_case import check_invalid_init_kwargs, run_layer_test

# Entities sort as Ada=0, Bo=1, Cy=2, Dee=3; relations as knows=0, likes=1.
TOY_TRIPLES = [
    ("Ada", "knows", "Bo"),
    ("Ada", "knows", "Cy"),
    ("Bo", "likes", "Cy"),
    ("Dee", "likes", "Ada"),
    ("Dee", "knows", "Cy"),
]


@pytest.fixture(scope="module")
def toy_kg():
    return KnowledgeGraph(TOY_TRIPLES, name="toy")


def entity_ids():
    return np.array([[1, 0, 4], [2, 3, 0]], "int32")


def test_layer_checks(toy_kg):
    run_layer_test(
        KnowledgeGraphEncoder,
        init_kwargs={"knowledge_graph": toy_kg, "embedding_dim": 8},
        input_data=entity_ids(),
        expected_output_shape=(2, 3, 8),
        invalid_init_kwargs=[
            ({"embedding_dim": 0}, "embedding_dim=0"),
            ({"num_layers": -1}, "num_layers=-1"),
            ({"dropout": 1.5}, "dropout=1.5"),
            ({"num_entities": 7}, "num_entities=7"),
            ({"kg_fingerprint": "abc"}, "kg_fingerprint='abc'"),
            ({"initial_embeddings": np.zeros((3, 8))}, "shape=(3, 8)"),
        ],
    )


def test_edges_stay_int32_under_mixed_precision(toy_kg):
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=8, dtype="mixed_float16")
    encoder(entity_ids())
    assert {weight.dtype for weight in encoder.non_trainable_weights} == {"int32"}


def test_counts_are_required_without_a_graph():
    with pytest.raises(ValueError, match="num_entities=None"):
        KnowledgeGraphEncoder(embedding_dim=8)
    check_invalid_init_kwargs(
        KnowledgeGraphEncoder,
        {"num_entities": 4, "num_relations": 2, "num_edges": 5, "edges_per_relation": [3, 2]},
        [
            ({"num_relations": 0}, "num_relations=0"),
            ({"num_edges": -1}, "num_edges=-1"),
            ({"edges_per_relation": [3, 1]}, "edges_per_relation=[3, 1]"),
            ({"edges_per_relation": [5]}, "edges_per_relation=[5]"),
        ],
    )


def test_whole_table_and_no_entity_row(toy_kg):
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=8)
    table = keras.ops.convert_to_numpy(encoder())
    assert table.shape == (5, 8) == encoder.compute_output_shape()
    np.testing.assert_array_equal(table[0], 0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder.entity_table()), table)
    looked_up = keras.ops.convert_to_numpy(encoder(entity_ids()))
    np.testing.assert_allclose(looked_up, table[entity_ids()])
    assert tuple(encoder.relation_embeddings.shape) == (4, 8)


def test_config_holds_counts_not_edges(toy_kg):
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=8)
    encoder.build()
    config = encoder.get_config()
    assert (config["num_entities"], config["num_relations"], config["num_edges"]) == (4, 2, 5)
    assert config["edges_per_relation"] == [3, 2]  # knows, likes
    assert config["kg_fingerprint"] == toy_kg.fingerprint()
    assert "knowledge_graph" not in config and "initial_embeddings" not in config
    json.dumps(config)
    # The same facts, sorted by relation (each relation's messages are one slice).
    edges = (encoder.edge_sources, encoder.edge_relations, encoder.edge_targets)
    stored = list(zip(*(weight.numpy().tolist() for weight in edges)))
    assert sorted(stored) == sorted(zip(*(column.tolist() for column in toy_kg.adjacency())))
    assert [relation for _, relation, _ in stored] == [0, 0, 0, 1, 1]
    assert not any(weight.trainable for weight in (encoder.edge_sources, encoder.edge_targets))


def reference_round(states, triples, num_relations, self_kernel, relation_kernels, bias):
    """One R-GCN round with a residual, written out entity by entity (tanh activation)."""
    incoming = {}  # (receiver row, directed relation) -> sender rows
    for subject, relation, obj in triples:
        incoming.setdefault((obj + 1, relation), []).append(subject + 1)
        incoming.setdefault((subject + 1, relation + num_relations), []).append(obj + 1)
    result = np.zeros_like(states)
    for row in range(1, len(states)):
        total = states[row] @ self_kernel + bias
        for (receiver, relation), senders in incoming.items():
            if receiver == row:
                total += np.mean([states[sender] @ relation_kernels[relation] for sender in senders], axis=0)
        result[row] = states[row] + np.tanh(total)
    return result


@pytest.mark.parametrize("num_layers", [1, 2])
def test_message_passing_matches_numpy(toy_kg, num_layers):
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=4, num_layers=num_layers, activation="tanh")
    encoder.build()
    rng = np.random.default_rng(0)
    for weight in encoder.trainable_weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.5)
    states = encoder.entity_embeddings.numpy() * (np.arange(5) > 0)[:, None]
    for index in range(num_layers):
        states = reference_round(
            states,
            toy_kg.triple_ids,
            toy_kg.num_relations,
            encoder.self_kernels[index].numpy(),
            encoder.relation_kernels[index].numpy(),
            encoder.biases[index].numpy(),
        )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder()), states, rtol=1e-5, atol=1e-5)


def test_initial_embeddings(toy_kg):
    initial = np.arange(4 * 3, dtype="float32").reshape(4, 3)
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=3, num_layers=0, initial_embeddings=initial)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(encoder()), np.concatenate([np.zeros((1, 3)), initial]))
    assert "initial_embeddings" not in encoder.get_config()


def test_check_knowledge_graph(toy_kg):
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=4)
    encoder.check_knowledge_graph(KnowledgeGraph(list(reversed(TOY_TRIPLES))))
    with pytest.raises(ModelError, match="fingerprint"):
        encoder.check_knowledge_graph(KnowledgeGraph(TOY_TRIPLES[:-1], name="smaller"))
    unchecked = KnowledgeGraphEncoder(
        num_entities=4, num_relations=2, num_edges=5, edges_per_relation=[3, 2], embedding_dim=4
    )
    with pytest.raises(ModelError, match="without a knowledge-graph fingerprint"):
        unchecked.check_knowledge_graph(toy_kg)


def table_and_gradients(encoder):
    with tf.GradientTape() as tape:
        table = encoder.entity_table(training=True)
        loss = keras.ops.sum(keras.ops.tanh(table) * keras.ops.arange(table.shape[-1], dtype="float32"))
    return table, tape.gradient(loss, encoder.trainable_weights)


def test_training_table_compiled_with_xla_matches_the_plain_one(toy_kg, monkeypatch):
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=4, num_layers=2)  # no dropout: both paths agree exactly
    encoder.build()
    monkeypatch.setattr(knowledge_graph_encoder, "XLA_MIN_EDGES", 10**9)
    plain_table, plain_gradients = table_and_gradients(encoder)
    assert encoder not in layer_utils._XLA_FUNCTIONS
    monkeypatch.setattr(knowledge_graph_encoder, "XLA_MIN_EDGES", 0)
    compiled_table, compiled_gradients = table_and_gradients(encoder)
    assert encoder in layer_utils._XLA_FUNCTIONS
    np.testing.assert_allclose(compiled_table, plain_table, rtol=1e-5, atol=1e-6)
    for weight, compiled, plain in zip(encoder.trainable_weights, compiled_gradients, plain_gradients):
        if weight is encoder.relation_embeddings:  # the injection layer's keys; the table does not read them
            assert compiled is None and plain is None
        else:
            np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-6, err_msg=weight.path)


# The relation embeddings are the injection layer's keys; the table alone leaves them without gradients.
@pytest.mark.filterwarnings("ignore:Gradients do not exist")
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_with_the_xla_compiled_training_table(toy_kg, monkeypatch, jit_compile):
    monkeypatch.setattr(knowledge_graph_encoder, "XLA_MIN_EDGES", 0)
    entity_input = keras.Input((3,), dtype="int32")
    encoder = KnowledgeGraphEncoder(toy_kg, embedding_dim=4, dropout=0.1)
    model = keras.Model(entity_input, keras.layers.Dense(1)(encoder(entity_input)))
    model.compile(optimizer="adam", loss="mse", jit_compile=jit_compile)
    before = encoder.entity_embeddings.numpy()
    history = model.fit(entity_ids(), np.ones((2, 3, 1), "float32"), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(encoder.entity_embeddings.numpy(), before)
    assert encoder in layer_utils._XLA_FUNCTIONS
