"""Helpers shared by kfine's layers: initializer cloning, argument checks, fact keys, XLA functions."""

import weakref

import keras
import numpy as np


def clone_initializer(initializer):
    """Returns a new instance of `initializer`, for one weight.

    A Keras initializer without a seed draws one when it is made and then
    returns the same values on every call, so two weights made with one
    instance start equal (or, for different shapes, from the same random
    stream). Like keras-hub, give every weight its own clone.

    Args:
        initializer: a `keras.initializers.Initializer`, or anything
            `keras.initializers.get` takes (a name, a config dict).

    Returns:
        A `keras.initializers.Initializer` with the same config.
    """
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())


def is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(name, value):
    if not is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


def check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")


def fact_keys(heads, relations, tails, num_relations, num_entities):
    """One int64 per `(head, relation, tail)` id triple (arrays or tensors): equal keys, equal facts."""
    heads, relations, tails = (keras.ops.cast(ids, "int64") for ids in (heads, relations, tails))
    return (heads * num_relations + relations) * num_entities + tails


# One XLA-compiled function per (layer, method), dropped with the layer.
_XLA_FUNCTIONS = weakref.WeakKeyDictionary()


def xla_training_function(layer, method_name):
    """`layer.method_name(training=True)` compiled with XLA once, as a callable with no arguments.

    For work a layer does every training step on the same shapes (e.g. the
    R-GCN over the whole KG) while the model around it may run better
    without XLA on a CPU. On other backends than TensorFlow, the method itself.
    """
    if keras.backend.backend() != "tensorflow":
        return lambda: getattr(layer, method_name)(training=True)
    functions = _XLA_FUNCTIONS.setdefault(layer, {})
    if method_name not in functions:
        import tensorflow as tf  # Only on the TensorFlow backend.

        # A weak reference: a strong one in the function would keep the layer alive.
        reference = weakref.ref(layer)
        functions[method_name] = tf.function(
            lambda: getattr(reference(), method_name)(training=True), jit_compile=True
        )
    return functions[method_name]
