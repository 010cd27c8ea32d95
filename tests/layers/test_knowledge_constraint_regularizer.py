"""Tests of `KnowledgeConstraintRegularizer`: TransE margin over corrupted facts of the people KG."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.knowledge.graph import KnowledgeGraph
from kfine.layers import KnowledgeConstraintRegularizer, KnowledgeGraphEncoder, KnowledgeInjectionLayer
from layer_test_case import run_layer_test
from people_kg import people_triples


@pytest.fixture(scope="module")
def people_graph():
    return KnowledgeGraph(people_triples(12), name="people")


def translational_table(graph, dim=8, seed=0):
    """A table where every fact holds exactly: objects are subjects plus a per-relation offset."""
    rng = np.random.default_rng(seed)
    table = np.zeros((graph.num_entities + 1, dim), "float32")
    offsets = rng.normal(size=(graph.num_relations, dim)) * 3
    subjects = {subject for subject, _, _ in graph.triples}
    for subject in subjects:
        table[graph.entity_id(subject) + 1] = rng.normal(size=dim) * 0.1
    for _, relation, obj in graph.triples:
        # People share objects: each object is its relation's offset (plus a little noise),
        # so h + r ≈ t holds for every fact.
        table[graph.entity_id(obj) + 1] = offsets[graph.relation_id(relation)] + rng.normal(size=dim) * 0.1
    return table


def test_encoder_with_the_regularizer_passes_the_layer_checks(people_graph):
    run_layer_test(
        KnowledgeGraphEncoder,
        init_kwargs={
            "knowledge_graph": people_graph,
            "embedding_dim": 8,
            "embeddings_regularizer": KnowledgeConstraintRegularizer(people_graph, strength=0.5, seed=0),
        },
        input_data=np.array([[1, 0, 4], [2, 3, 0]], "int32"),
        expected_output_shape=(2, 3, 8),
    )


def test_regularizer_adds_a_loss_and_survives_the_config(people_graph):
    regularizer = KnowledgeConstraintRegularizer(people_graph, strength=0.5, margin=2.0, num_samples=16, seed=3)
    encoder = KnowledgeGraphEncoder(people_graph, embedding_dim=8, embeddings_regularizer=regularizer)
    encoder(np.array([[1, 2]], "int32"))
    assert len(encoder.losses) == 1 and float(encoder.losses[0]) > 0
    config = keras.saving.serialize_keras_object(regularizer)
    revived = keras.saving.deserialize_keras_object(config)
    assert isinstance(revived, KnowledgeConstraintRegularizer)
    assert revived.get_config() == regularizer.get_config()
    revived_encoder = KnowledgeGraphEncoder.from_config(encoder.get_config())
    assert isinstance(revived_encoder.embeddings_regularizer, KnowledgeConstraintRegularizer)


def test_facts_that_hold_cost_less_than_random_embeddings(people_graph):
    regularizer = KnowledgeConstraintRegularizer(people_graph, strength=1.0, margin=1.0, num_samples=64, seed=0)
    exact = float(regularizer(translational_table(people_graph)))
    random_table = np.random.default_rng(1).normal(size=(people_graph.num_entities + 1, 8)).astype("float32")
    # Not 0: people share objects, so a corruption that swaps one person for
    # another (filtered: never one with the same object) is no farther than the fact.
    assert exact < 0.6 * float(regularizer(random_table))


def test_sampling_is_seeded(people_graph):
    table = np.random.default_rng(2).normal(size=(people_graph.num_entities + 1, 8)).astype("float32")
    first = KnowledgeConstraintRegularizer(people_graph, num_samples=8, seed=7)
    second = KnowledgeConstraintRegularizer(people_graph, num_samples=8, seed=7)
    values = [float(first(table)) for _ in range(3)]
    assert values == [float(second(table)) for _ in range(3)]
    assert len(set(values)) > 1  # a new sample every call


def test_gradient_descent_on_the_regularizer_alone_lowers_it(people_graph):
    regularizer = KnowledgeConstraintRegularizer(people_graph, strength=1.0, num_samples=64, seed=0)
    rng = np.random.default_rng(0)
    table = tf.Variable(rng.normal(size=(people_graph.num_entities + 1, 8)).astype("float32"))
    loss = tf.function(lambda: regularizer(table))  # compiled: also checks it traces
    before = np.mean([float(loss()) for _ in range(10)])
    for _ in range(200):
        with tf.GradientTape() as tape:
            value = loss()
        table.assign_sub(0.5 * tf.convert_to_tensor(tape.gradient(value, table)))
    after = np.mean([float(loss()) for _ in range(10)])
    assert after < 0.5 * before


def test_injection_layer_passes_the_regularizer_to_its_encoder(people_graph):
    regularizer = KnowledgeConstraintRegularizer(people_graph, seed=0)
    layer = KnowledgeInjectionLayer(people_graph, entity_dim=8, embeddings_regularizer=regularizer)
    assert layer.encoder.embeddings_regularizer is regularizer
    layer([np.zeros((1, 3, 4), "float32"), np.array([[1, 0, 0]], "int32")])
    assert len(layer.losses) == 1
    with pytest.raises(ValueError, match="embeddings_regularizer"):
        KnowledgeInjectionLayer(people_graph, entity_dim=8, encoder=layer.encoder, embeddings_regularizer=regularizer)


@pytest.mark.parametrize(
    "overrides, quoted",
    [
        ({"strength": -1.0}, "strength=-1.0"),
        ({"margin": 0}, "margin=0"),
        ({"num_samples": 0}, "num_samples=0"),
        ({"score": "rotate"}, "score='rotate'"),
        ({"row_offset": -1}, "row_offset=-1"),
    ],
)
def test_invalid_arguments_quote_the_value(people_graph, overrides, quoted):
    with pytest.raises(ValueError, match=f".*{quoted}"):
        KnowledgeConstraintRegularizer(people_graph, **overrides)


def test_a_table_too_small_for_the_graph_is_refused(people_graph):
    regularizer = KnowledgeConstraintRegularizer(people_graph, seed=0)
    with pytest.raises(ValueError, match="entity table"):
        regularizer(np.zeros((3, 8), "float32"))


def _neighbour_graph():
    """People plus a multi-valued relation: five countries, each the neighbour of every other one."""
    countries = ["Avel", "Brask", "Corin", "Dovia", "Estmark"]
    neighbours = [(a, "neighbour", b) for a in countries for b in countries if a != b]
    return KnowledgeGraph(people_triples(12) + neighbours, name="people_and_neighbours")


def test_no_corruption_is_ever_a_true_fact():
    graph = _neighbour_graph()
    facts = {tuple(row) for row in graph.triple_ids.tolist()}
    regularizer = KnowledgeConstraintRegularizer(graph, num_samples=256, seed=0)
    kept = 0
    for _ in range(20):
        sample = {key: keras.ops.convert_to_numpy(value) for key, value in regularizer.sample().items()}
        corruptions = zip(sample["corrupt_heads"][sample["valid"]], sample["relations"][sample["valid"]],
                          sample["corrupt_tails"][sample["valid"]])
        true_corruptions = [triple for triple in corruptions if tuple(int(i) for i in triple) in facts]
        assert not true_corruptions, f"{len(true_corruptions)} corruptions are facts, e.g. {true_corruptions[0]}"
        kept += int(sample["valid"].sum())
        # The facts themselves are sampled from the graph.
        assert all(tuple(map(int, t)) in facts for t in zip(sample["heads"], sample["relations"], sample["tails"]))
    assert kept > 0.9 * 20 * 256  # the filter drops only what it cannot replace


def test_a_graph_whose_every_corruption_is_a_fact_costs_nothing():
    # Every (x, rel, y) holds: any corruption is a true fact, so nothing may be pushed apart.
    entities = ["Avel", "Brask", "Corin"]
    graph = KnowledgeGraph([(a, "rel", b) for a in entities for b in entities], name="complete")
    regularizer = KnowledgeConstraintRegularizer(graph, strength=1.0, num_samples=32, seed=0)
    table = np.random.default_rng(0).normal(size=(graph.num_entities + 1, 8)).astype("float32")
    assert float(regularizer(table)) == 0.0
    assert float(tf.function(regularizer, jit_compile=True)(table)) == 0.0  # the filter compiles with XLA
