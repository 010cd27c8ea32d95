"""`build_optimizer`: the first `fit` traces the train step once, and an unbuilt model is left to Keras."""

import keras
import numpy as np

from kfine.models.causal_lm import build_causal_lm
from kfine.models.optimizer import build_optimizer
from kfine.training.mle import next_token_loss

VOCABULARY = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", *(f"w{index}" for index in range(20))]


def traced_steps(prebuild):
    """How many times a tiny LM's first `fit` traces its train step."""
    model = build_causal_lm(VOCABULARY, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16,
                            sequence_length=8)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=next_token_loss())
    traces = []
    train_step = model.train_step

    def counting(data):
        traces.append(1)
        return train_step(data)

    model.train_step = counting
    if prebuild:
        build_optimizer(model)
        assert model.optimizer.built
    tokens = np.random.default_rng(0).integers(4, len(VOCABULARY), (4, 8)).astype("int32")
    model.fit(tokens, tokens, batch_size=4, epochs=1, verbose=0)
    return len(traces)


def test_a_built_optimizer_saves_the_first_fit_a_trace():
    assert traced_steps(prebuild=False) == 2  # what the helper is for: Keras builds it in the first trace
    assert traced_steps(prebuild=True) == 1


def test_an_unbuilt_model_keeps_its_optimizer_unbuilt():
    class Head(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, inputs):
            return self.dense(inputs)

    model = Head()
    model.compile(optimizer="adam", loss="mse")
    build_optimizer(model)  # its Dense kernel does not exist yet
    assert not model.optimizer.built
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), verbose=0)
    assert len(model.optimizer.variables) > 1
