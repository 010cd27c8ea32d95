"""`NextTokenLoss`: Keras's `ignore_class=0` cross-entropy, computed with one pass over the logits fewer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.training.mle import NextTokenLoss, next_token_loss


def _value_and_gradient(loss, targets, logits, sample_weight=None):
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(targets, logits, sample_weight=sample_weight)
    return value.numpy(), tape.gradient(value, logits).numpy()


@pytest.mark.parametrize("weighted", [False, True])
def test_next_token_loss_matches_keras_ignore_class(weighted):
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(3, 7, 11)) * 5).astype("float32")
    targets = rng.integers(1, 11, size=(3, 7))
    targets[0, 4:] = 0  # a padded row end
    targets[2, :] = 0  # a row of padding only
    sample_weight = rng.random((3, 7)).astype("float32") if weighted else None
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    expected, expected_gradient = _value_and_gradient(keras_loss, targets, logits, sample_weight)
    value, gradient = _value_and_gradient(next_token_loss(), targets, logits, sample_weight)
    if weighted:  # the same products, multiplied in another order
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-8)
    else:
        assert value == expected
        np.testing.assert_array_equal(gradient, expected_gradient)
    # Padded positions get no gradient at all.
    assert not gradient[2].any() and not gradient[0, 4:].any()


def test_next_token_loss_config_round_trip():
    loss = keras.losses.deserialize(keras.losses.serialize(NextTokenLoss(reduction="sum")))
    assert isinstance(loss, NextTokenLoss) and loss.get_config() == NextTokenLoss(reduction="sum").get_config()
