"""One seed for a training run, including the dropout of a model built before it."""

import random

import keras
import numpy as np

# Keras names the state variable of every `SeedGenerator` (dropout, noise) this way.
_SEED_STATE_NAME = "seed_generator_state"


def seed_training(seed, model=None):
    """Seeds Python, NumPy and the backend, and reseeds `model`'s random layers.

    Keras layers draw their dropout seeds when they are built, from whatever
    state the global generators had then. A model loaded before this call
    would otherwise drop out differently depending on what ran before it in
    the process, so a training function's `seed` would not reproduce its run.

    Args:
        seed: int.
        model: a Keras model built before the call, or None.
    """
    keras.utils.set_random_seed(seed)
    if model is None:
        return
    for variable in model.variables:
        if variable.name == _SEED_STATE_NAME:
            state = np.zeros(variable.shape, variable.dtype)
            state[0] = random.randint(1, 10**9)  # as a freshly built generator draws it
            variable.assign(state)
