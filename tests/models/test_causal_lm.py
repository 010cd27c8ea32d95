import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.layers import LanguageModelHead
from kfine.models.causal_lm import CausalLanguageModel, build_causal_lm
from kfine.training.mle import train_mle
from layer_test_case import run_layer_test

TOKEN_IDS = np.array([[2, 40, 41, 42, 5, 0], [2, 43, 44, 45, 46, 47]], dtype="int32")


def _logits(model, token_ids=TOKEN_IDS):
    return keras.ops.convert_to_numpy(model(token_ids, training=False))


# === LanguageModelHead ===

INVALID_HEAD_ARGUMENTS = [
    ({"vocabulary_size": 0}, "vocabulary_size=0"),
    ({"vocabulary_size": -3}, "vocabulary_size=-3"),
    ({"vocabulary_size": 2.5}, "vocabulary_size=2.5"),
    ({"vocabulary_size": "7"}, "vocabulary_size=7"),
    ({"vocabulary_size": None}, "vocabulary_size=None"),
    ({"kernel_initializer": "no_such_initializer"}, "no_such_initializer"),
]


@pytest.mark.parametrize(
    "init_kwargs, input_shape, output_shape",
    [
        ({"vocabulary_size": 7}, (2, 3, 4), (2, 3, 7)),
        ({"vocabulary_size": 1, "kernel_initializer": "ones"}, (3, 5, 2), (3, 5, 1)),
        ({"vocabulary_size": 11, "kernel_initializer": {"class_name": "RandomNormal", "config": {"stddev": 0.02}}},
         (2, 8), (2, 11)),
    ],
    ids=["sequence", "single_token_vocabulary", "rank2_serialized_initializer"],
)
def test_language_model_head_layer(init_kwargs, input_shape, output_shape):
    run_layer_test(
        LanguageModelHead,
        init_kwargs=init_kwargs,
        input_data=np.random.default_rng(0).normal(size=input_shape).astype("float32"),
        expected_output_shape=output_shape,
        expected_output_dtype="float32",
        expected_mixed_precision_output_dtype="float32",  # logits stay float32 for the softmax and loss
        invalid_init_kwargs=INVALID_HEAD_ARGUMENTS,
    )


def test_language_model_head_computes_an_affine_projection():
    head = LanguageModelHead(vocabulary_size=3, kernel_initializer="ones")
    hidden = np.array([[[1.0, 2.0], [0.0, -1.0]]], dtype="float32")
    head.build(hidden.shape)
    head.bias.assign([0.5, 0.0, -0.5])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(head(hidden)), [[[3.5, 3.0, 2.5], [-0.5, -1.0, -1.5]]]
    )
    assert [weight.path.split("/")[-1] for weight in head.weights] == ["kernel", "bias"]


def test_language_model_head_output_spec_is_float32_under_mixed_precision():
    head = LanguageModelHead(vocabulary_size=5, dtype="mixed_float16")
    spec = head.compute_output_spec(keras.KerasTensor((None, 4, 8), dtype="float16"))
    assert spec.shape == (None, 4, 5)
    assert spec.dtype == "float32"


# === build_causal_lm ===


@pytest.mark.parametrize(
    "overrides, quoted",
    [
        ({"num_layers": 0}, "num_layers=0"),
        ({"hidden_dim": -8}, "hidden_dim=-8"),
        ({"num_heads": 2.0}, "num_heads=2.0"),
        ({"intermediate_dim": "64"}, "intermediate_dim=64"),
        ({"sequence_length": None}, "sequence_length=None"),
        ({"hidden_dim": 30, "num_heads": 4}, "hidden_dim=30, num_heads=4"),
    ],
)
def test_build_causal_lm_rejects_bad_arguments(people_tokenizer, overrides, quoted):
    arguments = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64, "sequence_length": 32}
    with pytest.raises(ValueError, match=re.escape(quoted)):
        build_causal_lm(people_tokenizer.vocabulary, **{**arguments, **overrides})


def test_build_causal_lm_structure(tiny_model, people_tokenizer):
    assert isinstance(tiny_model, CausalLanguageModel)
    assert isinstance(tiny_model, keras.Sequential)
    assert [type(layer).__name__ for layer in tiny_model.layers] == [
        "TokenAndPositionEmbedding", "TransformerDecoder", "LayerNormalization", "LanguageModelHead"
    ]
    assert tiny_model.head is tiny_model.layers[-1]
    assert tiny_model.head.vocabulary_size == people_tokenizer.vocabulary_size
    assert tiny_model.hidden_dim == 32
    assert tiny_model.sequence_length == 32
    assert tiny_model.vocabulary == people_tokenizer.vocabulary
    assert tiny_model.tokenizer.vocabulary == people_tokenizer.vocabulary
    logits = tiny_model(TOKEN_IDS)
    assert tuple(logits.shape) == (2, 6, people_tokenizer.vocabulary_size)
    assert logits.dtype == "float32"


def test_model_is_causal(tiny_model):
    """Changing a later token leaves the logits of earlier positions unchanged."""
    changed = TOKEN_IDS.copy()
    changed[:, 4:] = 9
    np.testing.assert_allclose(_logits(tiny_model)[:, :4], _logits(tiny_model, changed)[:, :4], atol=1e-5)
    assert not np.allclose(_logits(tiny_model)[:, 4:], _logits(tiny_model, changed)[:, 4:])


def test_hidden_states_are_the_head_input(tiny_model):
    hidden = tiny_model.hidden_states(TOKEN_IDS)
    assert tuple(hidden.shape) == (2, 6, tiny_model.hidden_dim)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(tiny_model.head(hidden)), _logits(tiny_model), rtol=1e-5, atol=1e-5
    )


def test_vocabulary_is_in_the_config(tiny_model):
    config = tiny_model.get_config()
    assert config["vocabulary"] == tiny_model.vocabulary
    revived = CausalLanguageModel.from_config(config)
    assert revived.vocabulary == tiny_model.vocabulary
    assert [layer.name for layer in revived.layers] == [layer.name for layer in tiny_model.layers]
    revived.set_weights(tiny_model.get_weights())
    np.testing.assert_array_equal(_logits(revived), _logits(tiny_model))


@pytest.mark.parametrize("load", [keras.models.load_model, tf.keras.models.load_model], ids=["keras", "tf.keras"])
def test_save_and_load_give_identical_outputs(tiny_model, tmp_path, load):
    path = str(tmp_path / "model.keras")
    tiny_model.save(path)
    reloaded = load(path, safe_mode=True)  # no custom_objects needed
    assert isinstance(reloaded, CausalLanguageModel)
    assert reloaded.vocabulary == tiny_model.vocabulary
    assert reloaded.tokenizer.encode("Alda Varenko") == tiny_model.tokenizer.encode("Alda Varenko")
    np.testing.assert_array_equal(_logits(reloaded), _logits(tiny_model))


def test_functional_use(tiny_model, tmp_path):
    """A CausalLanguageModel is usable as a layer of a functional model, which saves and reloads."""
    token_ids = keras.Input(shape=(None,), dtype="int32")
    logits = tiny_model(token_ids)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    functional = keras.Model(token_ids, probabilities)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(_logits(tiny_model)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(functional(TOKEN_IDS)), expected, rtol=1e-5, atol=1e-7)
    path = str(tmp_path / "functional.keras")
    functional.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert any(isinstance(layer, CausalLanguageModel) for layer in reloaded.layers)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(TOKEN_IDS)), keras.ops.convert_to_numpy(functional(TOKEN_IDS))
    )


# === add ===


class RecordingLayer(keras.layers.Layer):
    """Passes its input through and remembers its last shape."""

    def call(self, inputs):
        self.seen_shape = tuple(inputs.shape)
        return inputs


@keras.saving.register_keras_serializable(package="kfine_tests")
class ScaleLogits(keras.layers.Layer):
    """A layer that works on logits (consumes_logits)."""

    consumes_logits = True

    def call(self, logits):
        self.seen_shape = tuple(logits.shape)
        return logits * 2.0


def test_add_inserts_before_the_head(tiny_model):
    head = tiny_model.head
    recorder = RecordingLayer(name="recorder")
    tiny_model.add(recorder)
    assert [layer.name for layer in tiny_model.layers][-2:] == ["recorder", "language_model_head"]
    assert tiny_model.head is head
    logits = tiny_model(TOKEN_IDS)
    assert recorder.seen_shape[-1] == tiny_model.hidden_dim  # it received hidden states
    assert logits.shape[-1] == head.vocabulary_size


def test_added_layer_feeds_the_head(tiny_model):
    before = _logits(tiny_model)
    zeros = keras.layers.Dense(
        tiny_model.hidden_dim, kernel_initializer="zeros", bias_initializer="zeros", name="zero_hidden"
    )
    tiny_model.add(zeros)
    # With zero hidden states every position's logits are the head's bias.
    after = _logits(tiny_model)
    bias = keras.ops.convert_to_numpy(tiny_model.head.bias)
    np.testing.assert_allclose(after, np.broadcast_to(bias, after.shape), atol=1e-6)
    assert not np.allclose(before, after)


def test_consumes_logits_layer_goes_after_the_head(tiny_model):
    expected = _logits(tiny_model) * 2.0
    scale = ScaleLogits(name="scale_logits")
    tiny_model.add(scale)
    assert tiny_model.layers[-1] is scale
    assert isinstance(tiny_model.layers[-2], LanguageModelHead)
    np.testing.assert_allclose(_logits(tiny_model), expected, rtol=1e-5, atol=1e-5)
    assert scale.seen_shape[-1] == tiny_model.layers[-2].vocabulary_size


def test_add_after_a_logits_layer_still_inserts_before_the_head(tiny_model):
    """The contract holds in any order: hidden-state layers before the head, logit layers after."""
    tiny_model.add(ScaleLogits(name="scale_logits"))
    recorder = RecordingLayer(name="recorder")
    tiny_model.add(recorder)
    names = [layer.name for layer in tiny_model.layers]
    assert names[-3:] == ["recorder", "language_model_head", "scale_logits"], names
    tiny_model(TOKEN_IDS)
    assert recorder.seen_shape[-1] == tiny_model.hidden_dim
    assert tuple(tiny_model.hidden_states(TOKEN_IDS).shape) == (2, 6, tiny_model.hidden_dim)


def test_add_to_a_model_without_head_appends():
    model = CausalLanguageModel([keras.Input(shape=(3,))], vocabulary=None)
    model.add(keras.layers.Dense(2, name="first"))
    model.add(keras.layers.Dense(4, name="second"))
    assert [layer.name for layer in model.layers] == ["first", "second"]
    assert model.head is None
    assert model.tokenizer is None


def test_added_layers_survive_save_and_load(tiny_model, tmp_path):
    tiny_model.add(keras.layers.Dense(tiny_model.hidden_dim, name="adapter"))
    tiny_model.add(ScaleLogits(name="scale_logits"))
    path = str(tmp_path / "extended.keras")
    tiny_model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in tiny_model.layers]
    np.testing.assert_array_equal(_logits(reloaded), _logits(tiny_model))


# === Training ===


def test_fit(tiny_model, people_task, tmp_path):
    before = [weight.copy() for weight in tiny_model.get_weights()]
    history = train_mle(tiny_model, people_task.finetune_sentences, epochs=4, batch_size=16, learning_rate=3e-3,
                        seed=0, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.3, losses
    after = tiny_model.get_weights()
    assert all(not np.array_equal(old, new) for old, new in zip(before, after))
    # A compiled, trained model saves and reloads like a fresh one.
    path = os.path.join(tmp_path, "trained.keras")
    tiny_model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_array_equal(_logits(reloaded), _logits(tiny_model))


def test_fit_step_with_xla(tiny_model, people_task):
    sentences = people_task.finetune_sentences[:8]  # one batch, one bucket: one XLA compilation
    before = [weight.copy() for weight in tiny_model.get_weights()]
    history = train_mle(tiny_model, sentences, epochs=1, batch_size=8, seed=0, verbose=0, jit_compile=True)
    assert tiny_model.jit_compile is True
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(old, new) for old, new in zip(before, tiny_model.get_weights()))
