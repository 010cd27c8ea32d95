"""Every weight of every kfine layer starts from its own random draw.

A Keras 3 initializer with `seed=None` picks its seed once, when it is made,
and returns the same values on every call: one initializer object shared by
two weights makes them start equal (e.g. a gate and a projection of the same
shape), and two weights of different shapes start from the same random stream.
"""

import inspect
import itertools

import keras
import numpy as np
import pytest

import kfine.layers
from kfine.knowledge.graph import KnowledgeGraph

TRIPLES = [
    ("France", "capital", "Paris"),
    ("France", "language", "French"),
    ("Paris", "country", "France"),
    ("Lyon", "country", "France"),
    ("Lyon", "near", "Paris"),
]
HIDDEN_DIM, ENTITY_DIM = 8, 8


def _graph():
    return KnowledgeGraph(TRIPLES, name="france")


def _built(layer, *call_inputs):
    layer(*call_inputs)
    return layer


def _hidden_and_entity_ids():
    return [np.zeros((1, 3, HIDDEN_DIM), "float32"), np.array([[1, 0, 3]], "int32")]


# One built instance per exported layer, configured so that it has as many
# weights of equal shape as it can (several encoder rounds, every sublayer).
LAYER_FACTORIES = {
    "FactDatastore": lambda: _built(
        kfine.layers.FactDatastore(size=4, hidden_dim=HIDDEN_DIM, vocabulary_size=5),
        [np.zeros((1, 3, HIDDEN_DIM), "float32"), np.zeros((1, 3, 5), "float32"), np.zeros((1, 3), "int32")],
    ),
    "KnowledgeGraphEncoder": lambda: _built(
        kfine.layers.KnowledgeGraphEncoder(_graph(), embedding_dim=ENTITY_DIM, num_layers=3)
    ),
    "KnowledgeInjectionLayer": lambda: _built(
        kfine.layers.KnowledgeInjectionLayer(
            _graph(),
            mode="gated",
            entity_dim=ENTITY_DIM,
            encoder=kfine.layers.KnowledgeGraphEncoder(_graph(), embedding_dim=ENTITY_DIM, num_layers=2),
        ),
        _hidden_and_entity_ids(),
    ),
    "KnowledgeInjectionLayer.add": lambda: _built(
        kfine.layers.KnowledgeInjectionLayer(_graph(), mode="add", entity_dim=ENTITY_DIM), _hidden_and_entity_ids()
    ),
    "LanguageModelHead": lambda: _built(
        kfine.layers.LanguageModelHead(vocabulary_size=HIDDEN_DIM), np.zeros((1, 3, HIDDEN_DIM), "float32")
    ),
}


def _exported_layers():
    return [
        name
        for name in kfine.layers.__all__
        if inspect.isclass(getattr(kfine.layers, name)) and issubclass(getattr(kfine.layers, name), keras.layers.Layer)
    ]


def test_every_exported_layer_is_covered():
    covered = {name.split(".")[0] for name in LAYER_FACTORIES}
    assert set(_exported_layers()) == covered, "add a factory for each layer kfine.layers exports"


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_no_two_weights_start_from_the_same_draw(name):
    layer = LAYER_FACTORIES[name]()
    # Weights with one value throughout (zeros biases, all-zero keys) are constants, not draws.
    drawn = [
        (weight.path, keras.ops.convert_to_numpy(weight).ravel())
        for weight in layer.weights
        if "float" in weight.dtype and np.ptp(keras.ops.convert_to_numpy(weight)) > 0
    ]
    assert drawn or name == "FactDatastore", f"{name} has no randomly initialized weight to check"
    for (path, values), (other_path, other_values) in itertools.combinations(drawn, 2):
        # Equal shapes must not start equal; different shapes must not share the
        # start of one random stream (same seed, longer draw).
        length = min(len(values), len(other_values))
        assert not np.array_equal(values[:length], other_values[:length]), f"{path} and {other_path} start equal"
