"""`run_layer_test`: the checks every kfine layer must pass, in the style of keras-hub.

keras-hub's `TestCase.run_layer_test` checks each layer the same way; this is
the pytest version for kfine's layers. One call checks, for a layer class and
its constructor arguments:

- config round trip: `from_config(get_config())` gives the same config, also
  through `keras.saving.serialize_keras_object`;
- symbolic call on `keras.Input`s: output shape (batch left unknown) and dtype;
- eager call on real data: output shape, dtype, `compute_output_shape`;
- a `fit()` step in a functional model: finite loss, weights that change;
- `.keras` save/load with `safe_mode=True` and no `custom_objects`: the
  reloaded layer is of the same class and gives identical outputs;
- mixed precision: under the `mixed_float16` policy the float weights stay
  float32 and the output has `expected_mixed_precision_output_dtype`;
- invalid constructor arguments raise `ValueError` quoting the bad value.

Example:

    run_layer_test(
        LanguageModelHead,
        init_kwargs={"vocabulary_size": 7},
        input_data=np.ones((2, 3, 4), "float32"),
        expected_output_shape=(2, 3, 7),
        invalid_init_kwargs=[({"vocabulary_size": 0}, "vocabulary_size=0")],
    )
"""

import os
import re
import tempfile

import keras
import numpy as np
import pytest


def _shape_without_batch(shape):
    return (None, *shape[1:])


def _to_numpy(structure):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, structure)


def _symbolic_inputs(input_data):
    return keras.tree.map_structure(
        lambda array: keras.Input(shape=np.shape(array)[1:], dtype=str(np.asarray(array).dtype)), input_data
    )


def _assert_structures_equal(actual, expected, message):
    actual, expected = keras.tree.flatten(_to_numpy(actual)), keras.tree.flatten(_to_numpy(expected))
    assert len(actual) == len(expected), message
    for actual_array, expected_array in zip(actual, expected):
        np.testing.assert_array_equal(actual_array, expected_array, err_msg=message)


def _leaves(outputs, expected):
    """Pairs each output tensor with its expectation; `expected` may be one
    value for every output, or a dict/list shaped like `outputs`."""
    if isinstance(outputs, dict):
        return [(outputs[key], expected[key] if isinstance(expected, dict) else expected) for key in outputs]
    if isinstance(outputs, (list, tuple)):
        expected = expected if isinstance(expected, list) else [expected] * len(outputs)
        return list(zip(outputs, expected))
    return [(outputs, expected)]


def check_config_round_trip(layer_class, init_kwargs):
    layer = layer_class(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        # Numbers come back as given; initializers and the like come back serialized.
        if key in config and isinstance(value, (bool, int, float)):
            assert config[key] == value, f"get_config()[{key!r}] is {config[key]!r}, not {value!r}"
    revived = layer_class.from_config(config)
    assert revived.get_config() == config
    deserialized = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(deserialized) is layer_class
    assert deserialized.get_config() == config


def check_symbolic_call(layer_class, init_kwargs, input_data, expected_output_shape, expected_output_dtype):
    layer = layer_class(**init_kwargs)
    outputs = layer(_symbolic_inputs(input_data))
    shapes, dtypes = _leaves(outputs, expected_output_shape), _leaves(outputs, expected_output_dtype)
    for (output, shape), (_, dtype) in zip(shapes, dtypes):
        assert isinstance(output, keras.KerasTensor)
        assert tuple(output.shape) == _shape_without_batch(shape)
        assert keras.backend.standardize_dtype(output.dtype) == dtype


def check_eager_call(layer_class, init_kwargs, input_data, expected_output_shape, expected_output_dtype):
    layer = layer_class(**init_kwargs)
    outputs = layer(input_data)
    assert layer.built
    shapes, dtypes = _leaves(outputs, expected_output_shape), _leaves(outputs, expected_output_dtype)
    for (output, shape), (_, dtype) in zip(shapes, dtypes):
        assert tuple(output.shape) == tuple(shape)
        assert keras.backend.standardize_dtype(output.dtype) == dtype
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(output)))
    if not isinstance(outputs, (dict, list, tuple)):
        input_shapes = keras.tree.map_structure(lambda array: tuple(np.shape(array)), input_data)
        assert tuple(layer.compute_output_shape(input_shapes)) == tuple(expected_output_shape)


def _functional_model(layer_class, init_kwargs, input_data):
    inputs = _symbolic_inputs(input_data)
    layer = layer_class(**init_kwargs)
    return keras.Model(inputs, layer(inputs)), layer


def check_fit_step(layer_class, init_kwargs, input_data):
    model, layer = _functional_model(layer_class, init_kwargs, input_data)
    targets = keras.tree.map_structure(lambda output: np.zeros_like(output) + 0.5, _to_numpy(model(input_data)))
    before = [keras.ops.convert_to_numpy(weight) for weight in layer.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    history = model.fit(input_data, targets, batch_size=len(keras.tree.flatten(input_data)[0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [keras.ops.convert_to_numpy(weight) for weight in layer.trainable_weights]
    if before:
        assert any(not np.array_equal(old, new) for old, new in zip(before, after)), "fit() changed no weight"


def check_saving(layer_class, init_kwargs, input_data):
    model, _ = _functional_model(layer_class, init_kwargs, input_data)
    expected = model(input_data)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        # No custom_objects: the layer must be registered as serializable.
        reloaded = keras.saving.load_model(path, safe_mode=True)
    assert any(type(layer) is layer_class for layer in reloaded.layers)
    _assert_structures_equal(reloaded(input_data), expected, "outputs differ after save/load")


def check_mixed_precision(layer_class, init_kwargs, input_data, expected_output_dtype):
    layer = layer_class(**{**init_kwargs, "dtype": "mixed_float16"})
    outputs = layer(input_data)
    assert layer.compute_dtype == "float16"
    for weight in layer.weights:
        # Float weights stay float32; integer ones (e.g. graph edges) keep their dtype.
        if "float" in weight.dtype:
            assert weight.dtype == "float32", f"{weight.path} is {weight.dtype} under mixed_float16"
    for output, dtype in _leaves(outputs, expected_output_dtype):
        assert keras.backend.standardize_dtype(output.dtype) == dtype
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(output)))
    # The global policy is honoured too (and restored whatever happens).
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = layer_class(**init_kwargs)
        outputs = layer(input_data)
    finally:
        keras.config.set_dtype_policy(previous)
    assert layer.compute_dtype == "float16"
    for output, dtype in _leaves(outputs, expected_output_dtype):
        assert keras.backend.standardize_dtype(output.dtype) == dtype


def check_invalid_init_kwargs(layer_class, init_kwargs, invalid_init_kwargs):
    for overrides, quoted in invalid_init_kwargs:
        with pytest.raises(ValueError, match=re.escape(quoted)):
            layer_class(**{**init_kwargs, **overrides})


def run_layer_test(
    layer_class,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_output_dtype="float32",
    expected_mixed_precision_output_dtype="float16",
    invalid_init_kwargs=(),
    run_training_check=True,
    run_saving_check=True,
    run_mixed_precision_check=True,
):
    """Runs every check of this module on `layer_class`.

    Args:
        layer_class: the `keras.layers.Layer` subclass under test.
        init_kwargs: dict. Constructor arguments of a valid layer.
        input_data: array or structure of arrays (batch first) to call it on.
        expected_output_shape: tuple (or structure of tuples) for `input_data`.
        expected_output_dtype: str (or structure) of the float32-policy output.
        expected_mixed_precision_output_dtype: str (or structure) of the output
            under `mixed_float16`; layers that emit logits keep them float32.
        invalid_init_kwargs: list of `(overrides, quoted)`: constructing with
            `init_kwargs` updated by `overrides` must raise `ValueError` whose
            message contains `quoted` (e.g. `"vocabulary_size=0"`).
        run_training_check: bool. Fit one step (layers with float outputs).
        run_saving_check: bool. Save and reload a model holding the layer.
        run_mixed_precision_check: bool.
    """
    check_config_round_trip(layer_class, init_kwargs)
    check_symbolic_call(layer_class, init_kwargs, input_data, expected_output_shape, expected_output_dtype)
    check_eager_call(layer_class, init_kwargs, input_data, expected_output_shape, expected_output_dtype)
    if run_training_check:
        check_fit_step(layer_class, init_kwargs, input_data)
    if run_saving_check:
        check_saving(layer_class, init_kwargs, input_data)
    if run_mixed_precision_check:
        check_mixed_precision(layer_class, init_kwargs, input_data, expected_mixed_precision_output_dtype)
    check_invalid_init_kwargs(layer_class, init_kwargs, invalid_init_kwargs)
