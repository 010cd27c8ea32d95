import json
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest

from kfine.errors import ModelError
from kfine.models.causal_lm import CausalLanguageModel
from kfine.models.loading import (
    METADATA_FILE,
    MODEL_FILE,
    copy_model,
    load_metadata,
    load_model,
    model_file,
    save_model,
)
from kfine.training.mle import next_token_loss

TOKEN_IDS = np.array([[2, 40, 41, 42, 0], [2, 43, 44, 45, 46]], dtype="int32")


def _logits(model):
    return keras.ops.convert_to_numpy(model(TOKEN_IDS, training=False))


def _one_line(error):
    message = str(error)
    assert message and "\n" not in message, message
    return message


def test_save_model_writes_a_directory_that_loads_identically(tiny_model, tmp_path):
    directory = str(tmp_path / "model")
    save_model(tiny_model, directory, metadata={"kind": "kfine-causal-lm", "epochs": 3}, card="# Card\n")
    assert sorted(os.listdir(directory)) == sorted([MODEL_FILE, METADATA_FILE, "README.md"])
    loaded = load_model(directory)
    assert isinstance(loaded, CausalLanguageModel)
    assert loaded.vocabulary == tiny_model.vocabulary
    np.testing.assert_array_equal(_logits(loaded), _logits(tiny_model))
    assert load_metadata(directory) == {"kind": "kfine-causal-lm", "epochs": 3}
    with open(os.path.join(directory, "README.md"), encoding="utf-8") as stream:
        assert stream.read() == "# Card\n"


def test_copy_model_holds_the_weights_and_trains_apart(tiny_model):
    copy = copy_model(tiny_model)
    assert copy is not tiny_model and isinstance(copy, CausalLanguageModel)
    np.testing.assert_array_equal(_logits(copy), _logits(tiny_model))
    before = _logits(tiny_model)
    for variable in copy.trainable_variables:
        variable.assign(variable + 0.5)
    np.testing.assert_array_equal(_logits(tiny_model), before)
    assert not np.array_equal(_logits(copy), before)


def test_copy_model_refuses_a_model_its_config_does_not_build():
    class Unbuilt(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(ModelError, match="its config builds no weights"):
        copy_model(Unbuilt())


def test_load_model_accepts_the_keras_file_itself(tiny_model, tmp_path):
    save_model(tiny_model, str(tmp_path / "model"))
    path = os.path.join(tmp_path, "model", MODEL_FILE)
    assert model_file(str(tmp_path / "model")) == path
    np.testing.assert_array_equal(_logits(load_model(path)), _logits(tiny_model))
    assert load_metadata(path) == {}  # none was written


def _stored_groups(keras_path):
    with zipfile.ZipFile(keras_path) as archive:
        with archive.open("model.weights.h5") as weights, h5py.File(weights, "r") as store:
            groups = []
            store.visit(groups.append)
    return groups


def test_saved_model_holds_no_optimizer_state(tiny_model, tmp_path):
    tiny_model.compile(optimizer=keras.optimizers.AdamW(), loss=next_token_loss())
    tiny_model.optimizer.build(tiny_model.trainable_variables)  # the moments training would fill
    # A plain Keras save of the trained model does store the optimizer...
    tiny_model.save(str(tmp_path / "with_optimizer.keras"))
    assert any("optimizer" in group for group in _stored_groups(str(tmp_path / "with_optimizer.keras")))
    # ... save_model does not.
    directory = str(tmp_path / "trained")
    save_model(tiny_model, directory)
    groups = _stored_groups(os.path.join(directory, MODEL_FILE))
    assert groups and not any("optimizer" in group for group in groups), groups
    loaded = load_model(directory)
    assert getattr(loaded, "optimizer", None) is None
    np.testing.assert_array_equal(_logits(loaded), _logits(tiny_model))


def test_save_model_replaces_an_existing_directory(tiny_model, tmp_path):
    directory = str(tmp_path / "model")
    os.makedirs(directory)
    with open(os.path.join(directory, "stale.txt"), "w") as stream:
        stream.write("left from an older model")
    save_model(tiny_model, directory, metadata={"version": 2})
    assert sorted(os.listdir(directory)) == sorted([MODEL_FILE, METADATA_FILE])
    assert load_metadata(directory) == {"version": 2}


def test_failed_save_leaves_the_old_model_untouched(tiny_model, tmp_path):
    directory = str(tmp_path / "model")
    save_model(tiny_model, directory, metadata={"version": 1})
    before = {name: open(os.path.join(directory, name), "rb").read() for name in os.listdir(directory)}
    with pytest.raises(TypeError):
        save_model(tiny_model, directory, metadata={"version": 2, "not_json": object()})
    after = {name: open(os.path.join(directory, name), "rb").read() for name in os.listdir(directory)}
    assert after == before
    assert os.listdir(tmp_path) == ["model"]  # no half-written staging directory left beside it


def test_missing_path(tmp_path):
    path = str(tmp_path / "nowhere")
    with pytest.raises(ModelError) as raised:
        load_model(path)
    assert _one_line(raised.value).startswith(f"{path}: no such model file")


def test_directory_without_a_model(tmp_path):
    with pytest.raises(ModelError) as raised:
        load_model(str(tmp_path))
    assert os.path.join(str(tmp_path), MODEL_FILE) in _one_line(raised.value)


@pytest.mark.parametrize(
    "name, content",
    [("notes.txt", b"not a model"), ("model.keras", b"PK\x03\x04 truncated"), ("empty.keras", b"")],
    ids=["text_file", "truncated_zip", "empty_file"],
)
def test_a_file_that_is_no_keras_archive(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelError) as raised:
        load_model(str(path))
    assert _one_line(raised.value) == f"{path}: not a .keras archive (corrupt or of another kind)"


def test_a_zip_that_is_no_keras_model(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ModelError) as raised:
        load_model(str(path))
    assert _one_line(raised.value).startswith(f"{path}: cannot load the model: ")


def test_lambda_layers_are_refused_in_safe_mode(tmp_path):
    path = str(tmp_path / "lambda.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)]).save(path)
    with pytest.raises(ModelError) as raised:
        load_model(path)
    message = _one_line(raised.value)
    assert message.startswith(f"{path}: cannot load the model: ")
    assert "Lambda" in message and "safe_mode" in message


def test_a_keras_model_that_is_no_kfine_language_model(tmp_path):
    path = str(tmp_path / "dense.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    with pytest.raises(ModelError) as raised:
        load_model(path)
    assert _one_line(raised.value) == f"{path}: not a kfine language model (got Sequential without a tokenizer)"


def test_a_causal_lm_without_vocabulary_is_refused(tiny_model, tmp_path):
    path = str(tmp_path / "no_vocabulary.keras")
    bare = CausalLanguageModel.from_config({**tiny_model.get_config(), "vocabulary": None})
    bare.save(path)
    with pytest.raises(ModelError, match="not a kfine language model"):
        load_model(path)


def test_unreadable_metadata(tiny_model, tmp_path):
    directory = str(tmp_path / "model")
    save_model(tiny_model, directory)
    with open(os.path.join(directory, METADATA_FILE), "w") as stream:
        stream.write("{not json")
    with pytest.raises(ModelError, match="training.json: unreadable metadata"):
        load_metadata(directory)
    assert json.loads(json.dumps(load_metadata(str(tmp_path)))) == {}
