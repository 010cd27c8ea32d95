"""Tests of `KnowledgeInjectionLayer`: entity carry-forward, the fact memory, fusion modes, saving."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.errors import ModelError
from kfine.knowledge.graph import KnowledgeGraph
from kfine.layers import KnowledgeGraphEncoder, KnowledgeInjectionLayer, knowledge_graph_encoder, layer_utils
from layer_test_case import run_layer_test

# Entities sort as France=0, French=1, Lyon=2, Paris=3 (rows 1..4);
# relations as capital=0, country=1, language=2.
FACTS = [
    ("France", "capital", "Paris"),
    ("France", "language", "French"),
    ("Paris", "country", "France"),
    ("Lyon", "country", "France"),
]
FRANCE, FRENCH, LYON, PARIS = 1, 2, 3, 4
CAPITAL, COUNTRY, LANGUAGE = 0, 1, 2
HIDDEN_DIM, ENTITY_DIM = 16, 8


@pytest.fixture(scope="module")
def kg():
    return KnowledgeGraph(FACTS, name="france")


def inputs(batch=2, length=5, hidden_dim=HIDDEN_DIM):
    hidden = np.random.default_rng(0).normal(size=(batch, length, hidden_dim)).astype("float32")
    entity_ids = np.zeros((batch, length), "int32")
    entity_ids[0, 1], entity_ids[0, 3], entity_ids[1, 0] = FRANCE, PARIS, LYON
    return [hidden, entity_ids]


def output_dim(mode):
    return HIDDEN_DIM + 2 * ENTITY_DIM if mode == "concat" else HIDDEN_DIM


@pytest.mark.parametrize("mode", ["concat", "gated", "add"])
def test_layer_checks(kg, mode):
    run_layer_test(
        KnowledgeInjectionLayer,
        init_kwargs={"knowledge_graph": kg, "mode": mode, "entity_dim": ENTITY_DIM},
        input_data=inputs(),
        expected_output_shape=(2, 5, output_dim(mode)),
        invalid_init_kwargs=[
            ({"mode": "sum"}, "mode='sum'"),
            ({"entity_dim": 0}, "entity_dim=0"),
            ({"max_facts": 0}, "max_facts=0"),
            ({"dropout": -0.1}, "dropout=-0.1"),
            ({"carry_entities": "yes"}, "carry_entities='yes'"),
            ({"knowledge_graph": None}, "knowledge_graph=None"),
            ({"num_entities": 9}, "num_entities=9"),
            ({"templates": {"capital": ["{subject} has {object}"]}}, "templates={'capital'"),
        ],
    )


def test_encoder_and_entity_scores_under_mixed_precision(kg):
    layer = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM, dtype="mixed_float16")
    layer(inputs())
    assert layer.encoder.compute_dtype == "float16"
    # Scores feed a softmax over every entity: float32, as logits are.
    scores = layer.entity_scores(inputs()[0])
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"


def test_hidden_states_only_is_refused(kg):
    layer = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM)
    with pytest.raises(ValueError, match="needs the linker's entity ids"):
        layer(inputs()[0])
    with pytest.raises(ValueError, match="needs the linker's entity ids"):
        layer(keras.Input((None, HIDDEN_DIM)))


def test_carry_forward(kg):
    entity_ids = np.array([[0, FRANCE, FRANCE, 0, 0, PARIS, 0], [LYON, 0, 0, 0, 0, 0, FRENCH]], "int32")
    carried = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM).entity_rows(entity_ids)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(carried),
        [[0, FRANCE, FRANCE, FRANCE, FRANCE, PARIS, PARIS], [LYON, LYON, LYON, LYON, LYON, LYON, FRENCH]],
    )
    uncarried = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM, carry_entities=False).entity_rows(entity_ids)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(uncarried), entity_ids)

    # The concat output holds the carried entity's encoder row right after the hidden state.
    layer = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM)
    hidden = np.zeros((2, 7, HIDDEN_DIM), "float32")
    outputs = keras.ops.convert_to_numpy(layer([hidden, entity_ids]))
    table = keras.ops.convert_to_numpy(layer.encoder.entity_table())
    np.testing.assert_allclose(
        outputs[..., HIDDEN_DIM : HIDDEN_DIM + ENTITY_DIM], table[keras.ops.convert_to_numpy(carried)]
    )


def test_memory_read_picks_the_queried_fact(kg):
    layer = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM, carry_entities=False)
    layer.build([(None, None, ENTITY_DIM), (None, None)])
    # Relation r's key is the unit vector e_r and the query is 50 * hidden, so a
    # hidden state e_r scores the facts of relation r ~17.7 above the others.
    layer.encoder.relation_embeddings.assign(np.eye(6, ENTITY_DIM, dtype="float32"))
    layer.memory_query.kernel.assign(50 * np.eye(ENTITY_DIM, dtype="float32"))
    layer.memory_query.bias.assign(np.zeros(ENTITY_DIM, "float32"))
    queries = np.eye(ENTITY_DIM, dtype="float32")[[CAPITAL, LANGUAGE, CAPITAL, LANGUAGE, CAPITAL]]
    entity_ids = np.array([[FRANCE, FRANCE, PARIS, FRENCH, 0]], "int32")
    outputs = keras.ops.convert_to_numpy(layer([queries[None], entity_ids]))
    read = outputs[0, :, ENTITY_DIM + ENTITY_DIM :]
    table = keras.ops.convert_to_numpy(layer.encoder.entity_table())
    keys = np.eye(6, ENTITY_DIM)
    np.testing.assert_allclose(read[0], table[PARIS] + keys[CAPITAL], atol=1e-4)  # France, capital -> Paris
    np.testing.assert_allclose(read[1], table[FRENCH] + keys[LANGUAGE], atol=1e-4)  # France, language -> French
    np.testing.assert_allclose(read[2], table[FRANCE] + keys[COUNTRY], atol=1e-4)  # Paris's only fact
    np.testing.assert_array_equal(read[3], 0.0)  # French has no outgoing fact
    np.testing.assert_array_equal(read[4], 0.0)  # no entity


def test_memory_read_is_a_softmax_over_every_fact_of_the_entity():
    # Several facts share a relation, so the grouped computation must weigh
    # each fact, not each relation, as a softmax over the facts does.
    triples = [("S", "a", f"x{index}") for index in range(3)] + [("S", "b", "y"), ("S", "c", "z0"), ("S", "c", "z1")]
    triples += [("x0", "b", "y"), ("y", "a", "S")]
    graph = KnowledgeGraph(triples)
    rng = np.random.default_rng(0)
    # max_facts caps the fact pointer's table only; the read still covers all six facts of S.
    layer = KnowledgeInjectionLayer(graph, entity_dim=ENTITY_DIM, carry_entities=False, max_facts=2)
    layer.build([(None, None, HIDDEN_DIM), (None, None)])
    layer.encoder.relation_embeddings.assign(rng.normal(size=(6, ENTITY_DIM)).astype("float32"))
    hidden = rng.normal(size=(1, 4, HIDDEN_DIM)).astype("float32")
    rows = {name: graph.entity_id(name) + 1 for name in ("S", "x0", "y", "z1")}
    entity_ids = np.array([[rows["S"], rows["x0"], rows["z1"], 0]], "int32")

    read = keras.ops.convert_to_numpy(layer([hidden, entity_ids]))[0, :, HIDDEN_DIM + ENTITY_DIM :]
    table = keras.ops.convert_to_numpy(layer.encoder.entity_table())
    keys = layer.encoder.relation_embeddings.numpy()
    queries = keras.ops.convert_to_numpy(layer.memory_query(hidden))[0]
    for position, row in enumerate(entity_ids[0]):
        facts = [
            (graph.relation_id(r), graph.entity_id(o) + 1)
            for s, r, o in triples
            if row and graph.entity_id(s) + 1 == row
        ]
        if not facts:
            np.testing.assert_array_equal(read[position], 0.0)
            continue
        scores = np.array([queries[position] @ keys[relation] for relation, _ in facts]) / np.sqrt(ENTITY_DIM)
        weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        expected = sum(weight * (table[obj] + keys[relation]) for weight, (relation, obj) in zip(weights, facts))
        np.testing.assert_allclose(read[position], expected, atol=1e-5)


def test_fact_table_and_max_facts():
    triples = [("S", "a", f"x{index}") for index in range(3)] + [("S", "b", "y"), ("S", "c", "z0"), ("S", "c", "z1")]
    graph = KnowledgeGraph(triples)
    full = KnowledgeInjectionLayer(graph, entity_dim=4)
    assert full.max_degree == 6
    capped = KnowledgeInjectionLayer(graph, entity_dim=4, max_facts=3)
    capped.build([(None, None, 4), (None, None)])
    subject_row = graph.entity_id("S") + 1
    # Round-robin over relations: the cap keeps one fact of each relation.
    np.testing.assert_array_equal(capped.fact_relations.numpy()[subject_row], [0, 1, 2])
    objects = [graph.entities[row - 1] for row in capped.fact_objects.numpy()[subject_row]]
    assert objects == ["x0", "y", "z0"]
    assert capped.get_config()["max_degree"] == 3


@pytest.mark.parametrize("mode", ["gated", "add"])
def test_positions_without_entity_pass_through(kg, mode):
    layer = KnowledgeInjectionLayer(kg, mode=mode, entity_dim=ENTITY_DIM, carry_entities=False)
    hidden, entity_ids = inputs()
    outputs = keras.ops.convert_to_numpy(layer([hidden, entity_ids]))
    np.testing.assert_allclose(outputs[entity_ids == 0], hidden[entity_ids == 0], rtol=1e-6)
    assert not np.allclose(outputs[entity_ids > 0], hidden[entity_ids > 0])


def test_entity_scores(kg):
    layer = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM)
    hidden, entity_ids = inputs()
    layer([hidden, entity_ids])
    scores = keras.ops.convert_to_numpy(layer.entity_scores(hidden))
    assert scores.shape == (2, 5, kg.num_entities + 1)
    np.testing.assert_array_equal(scores[..., 0], -1e9)
    projected = keras.ops.convert_to_numpy(layer.entity_projection(hidden))
    table = keras.ops.convert_to_numpy(layer.encoder.entity_table())
    np.testing.assert_allclose(scores[..., 1:], (projected @ table.T)[..., 1:], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="entity_head=False"):
        KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM, entity_head=False).entity_scores(hidden)


def language_model(kg, mode, vocabulary_size=12):
    """A functional model: tokens -> masked embedding -> injection -> logits."""
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    entity_ids = keras.Input((None,), dtype="int32", name="entity_ids")
    hidden = keras.layers.Embedding(vocabulary_size, HIDDEN_DIM, mask_zero=True)(token_ids)
    fused = KnowledgeInjectionLayer(kg, mode=mode, entity_dim=ENTITY_DIM, name="injection")([hidden, entity_ids])
    assert fused._keras_mask is not None  # The embedding's mask passes through.
    return keras.Model([token_ids, entity_ids], keras.layers.Dense(vocabulary_size)(fused))


def test_jit_compiled_fit_in_functional_model(kg):
    model = language_model(kg, "gated")
    token_ids = np.array([[3, 4, 5, 6, 0], [7, 8, 9, 0, 0]], "int32")
    entity_ids = inputs()[1]
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    encoder = model.get_layer("injection").encoder
    before = encoder.entity_embeddings.numpy()
    history = model.fit([token_ids, entity_ids], np.roll(token_ids, -1, axis=1), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.array_equal(encoder.entity_embeddings.numpy(), before)


def output_and_gradients(layer, hidden, entity_ids):
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        output = layer([hidden, entity_ids], training=True)
        loss = keras.ops.sum(keras.ops.tanh(output) * keras.ops.arange(output.shape[-1], dtype="float32"))
    return output, tape.gradient(loss, [hidden, *layer.trainable_weights])


def test_training_tables_compiled_with_xla_match_the_plain_ones(kg, monkeypatch):
    # On a large graph, training makes the encoder's table and the fact sums in one XLA function.
    layer = KnowledgeInjectionLayer(kg, mode="gated", entity_dim=ENTITY_DIM, entity_head=False)
    hidden, entity_ids = inputs()
    hidden = tf.constant(hidden)
    layer([hidden, entity_ids])
    monkeypatch.setattr(knowledge_graph_encoder, "XLA_MIN_EDGES", 10**9)
    plain_output, plain_gradients = output_and_gradients(layer, hidden, entity_ids)
    assert layer not in layer_utils._XLA_FUNCTIONS
    monkeypatch.setattr(knowledge_graph_encoder, "XLA_MIN_EDGES", 0)
    compiled_output, compiled_gradients = output_and_gradients(layer, hidden, entity_ids)
    assert layer in layer_utils._XLA_FUNCTIONS and layer.encoder in layer_utils._XLA_FUNCTIONS
    np.testing.assert_allclose(compiled_output, plain_output, rtol=1e-5, atol=1e-6)
    for name, compiled, plain in zip(["hidden"] + [w.path for w in layer.trainable_weights], compiled_gradients,
                                     plain_gradients):
        np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-6, err_msg=name)


def test_mask_passes_through(kg):
    layer = KnowledgeInjectionLayer(kg, entity_dim=ENTITY_DIM)
    hidden, entity_ids = inputs()
    mask = entity_ids >= 0
    mask[:, -2:] = False
    outputs = layer([hidden, entity_ids], mask=[mask, None])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs._keras_mask), mask)
    assert layer.compute_mask([hidden, entity_ids], None) is None


def test_given_encoder(kg):
    encoder = KnowledgeGraphEncoder(kg, embedding_dim=ENTITY_DIM, num_layers=2)
    layer = KnowledgeInjectionLayer(kg, encoder=encoder, entity_dim=ENTITY_DIM)
    revived = KnowledgeInjectionLayer.from_config(layer.get_config())
    assert revived.encoder.num_layers == 2 and revived.kg_fingerprint == kg.fingerprint()
    with pytest.raises(ValueError, match="entity_dim=4"):
        KnowledgeInjectionLayer(kg, encoder=encoder, entity_dim=4)
    with pytest.raises(ValueError, match="another knowledge graph"):
        KnowledgeInjectionLayer(KnowledgeGraph(FACTS[:2]), encoder=encoder, entity_dim=ENTITY_DIM)


def test_saved_model_keeps_graph_and_checks_fingerprint(kg, tmp_path):
    model = language_model(kg, "concat")
    token_ids, entity_ids = np.array([[3, 4, 5, 6, 0], [7, 8, 9, 0, 0]], "int32"), inputs()[1]
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded([token_ids, entity_ids])),
        keras.ops.convert_to_numpy(model([token_ids, entity_ids])),
    )
    layer = reloaded.get_layer("injection")
    assert layer.get_config()["kg_fingerprint"] == kg.fingerprint()
    np.testing.assert_array_equal(layer.fact_objects.numpy(), model.get_layer("injection").fact_objects.numpy())
    layer.check_knowledge_graph(KnowledgeGraph(list(reversed(FACTS))))
    with pytest.raises(ModelError) as raised:
        layer.check_knowledge_graph(KnowledgeGraph(FACTS[:3], name="other"))
    assert "'other'" in str(raised.value) and "\n" not in str(raised.value)
