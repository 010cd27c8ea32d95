import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.models.discriminator import SequenceDiscriminator, build_discriminator

TOKEN_IDS = np.array([[2, 40, 41, 42, 5, 0, 0], [2, 43, 44, 45, 46, 47, 3]], dtype="int32")
VOCABULARY_SIZE = 60


def _discriminator(**kwargs):
    discriminator = SequenceDiscriminator(vocabulary_size=VOCABULARY_SIZE, sequence_length=16, hidden_dim=16,
                                          num_heads=2, intermediate_dim=32, dropout=0.0, **kwargs)
    discriminator.build((None, None))
    return discriminator


def test_soft_one_hot_inputs_match_ids_and_carry_gradients():
    discriminator = _discriminator()
    from_ids = discriminator(TOKEN_IDS)
    one_hot = tf.one_hot(TOKEN_IDS, VOCABULARY_SIZE)
    with tf.GradientTape() as tape:
        tape.watch(one_hot)
        from_probabilities = discriminator(one_hot, padding_mask=TOKEN_IDS != 0)
        total = tf.reduce_sum(from_probabilities)
    assert from_ids.shape == (2,) and from_ids.dtype == "float32"
    np.testing.assert_allclose(from_ids, from_probabilities, atol=1e-5)
    gradient = tape.gradient(total, one_hot).numpy()
    assert np.isfinite(gradient).all()
    assert np.abs(gradient[TOKEN_IDS != 0]).sum() > 0
    assert not gradient[TOKEN_IDS == 0].any()  # masked positions do not count


def test_padding_is_ignored():
    discriminator = _discriminator()
    longer = np.pad(TOKEN_IDS, ((0, 0), (0, 3)))
    np.testing.assert_allclose(discriminator(TOKEN_IDS), discriminator(longer), atol=1e-5)


def test_saves_and_loads_identically_in_safe_mode(tmp_path):
    discriminator = _discriminator()
    path = os.path.join(tmp_path, "discriminator.keras")
    discriminator.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert isinstance(restored, SequenceDiscriminator)
    assert restored.get_config() == discriminator.get_config()
    np.testing.assert_allclose(discriminator(TOKEN_IDS), restored(TOKEN_IDS), atol=1e-6)


def test_build_discriminator_sizes_to_the_language_model(tiny_model):
    discriminator = build_discriminator(tiny_model, hidden_dim=16, intermediate_dim=32)
    assert discriminator.vocabulary_size == tiny_model.tokenizer.vocabulary_size
    assert discriminator.sequence_length == tiny_model.sequence_length
    assert discriminator(TOKEN_IDS).shape == (2,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_size": 0}, "vocabulary_size=0"),
        ({"sequence_length": None}, "sequence_length=None"),
        ({"hidden_dim": 15}, "hidden_dim=15, num_heads=2"),
        ({"dropout": 1.0}, "dropout=1.0"),
    ],
)
def test_invalid_arguments_are_quoted(kwargs, message):
    arguments = {"vocabulary_size": 10, "sequence_length": 8, "hidden_dim": 16, "num_heads": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        SequenceDiscriminator(**arguments)
