"""`seed_training` makes a model's dropout independent of what ran before the seed."""

import random

import keras
import numpy as np

from kfine.models.seeding import seed_training


def dropout_masks(model):
    inputs = np.ones((4, 16), "float32")
    return [keras.ops.convert_to_numpy(model(inputs, training=True)) for _ in range(3)]


def test_a_model_built_under_any_global_state_drops_out_the_same_after_seeding():
    masks = []
    for earlier_state in (1, 2):
        random.seed(earlier_state)  # other work drew from the global generators before the model was built
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dropout(0.5), keras.layers.Dropout(0.5)])
        seed_training(0, model)
        masks.append(dropout_masks(model))
    for first, second in zip(*masks):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(masks[0][0], masks[0][1])  # still random from call to call


def test_without_reseeding_the_masks_depend_on_the_earlier_state():
    masks = []
    for earlier_state in (1, 2):
        random.seed(earlier_state)
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dropout(0.5)])
        seed_training(0)
        masks.append(dropout_masks(model)[0])
    assert not np.array_equal(*masks)
