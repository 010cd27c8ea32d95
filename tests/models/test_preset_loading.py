"""Loading keras-hub presets (GPT-2, Llama, Gemma) as kfine models, with their own tokenizers."""

import json
import os
import shutil

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from kfine.errors import ModelError
from kfine.models.causal_lm import CausalLanguageModel
from kfine.models.generation import generate
from kfine.models.keras_hub_backbone import BackboneOutputHead, KerasHubBackboneLayer
from kfine.models.loading import load_model, save_model
from kfine.models.preset_tokenizer import PresetTokenizer
from presets import ARCHITECTURES, FOREIGN_NAMES, write_tiny_preset

PROMPTS = ["Alda Varenko was born in", "The employer of Borin Quillby is"]
TEXT = "Alda Varenko moved from Zürich to Curaçao, an α-helix of America/New_York."


@pytest.fixture(scope="module", params=ARCHITECTURES)
def preset_dir(request, people_task, tmp_path_factory):
    return write_tiny_preset(request.param, people_task, str(tmp_path_factory.mktemp(request.param)))


def test_a_preset_loads_as_a_causal_lm_with_its_own_tokenizer(preset_dir):
    model = load_model(preset_dir)
    assert isinstance(model, CausalLanguageModel)
    assert [type(layer) for layer in model.layers] == [KerasHubBackboneLayer, BackboneOutputHead]
    tokenizer = model.tokenizer
    assert isinstance(tokenizer, PresetTokenizer)
    preset_tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset_dir)
    assert tokenizer.vocabulary_size == preset_tokenizer.vocabulary_size() + 1
    assert (tokenizer.pad_id, tokenizer.bos_id) == (0, preset_tokenizer.start_token_id + 1)
    assert tokenizer.eos_id == preset_tokenizer.end_token_id + 1
    assert model.vocabulary is None and model.sequence_length >= 32


def test_text_round_trips_with_no_unknown_token_and_no_inserted_spaces(preset_dir):
    tokenizer = load_model(preset_dir).tokenizer
    ids = tokenizer.encode(TEXT, add_eos=True)
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == TEXT
    assert tokenizer.decode_batch([tokenizer.encode(name) for name in FOREIGN_NAMES]) == FOREIGN_NAMES
    # In-graph (tf.data) tokenization gives the same ids as eager encoding.
    dataset = tf.data.Dataset.from_tensor_slices([TEXT, "Cela"]).batch(2).map(tokenizer.tokenize)
    assert next(iter(dataset)).to_list()[0] == ids[1:-1]
    with pytest.raises(ModelError, match=f"token id {tokenizer.vocabulary_size} is outside the vocabulary"):
        tokenizer.decode([tokenizer.vocabulary_size])


def test_tokenizing_in_tf_data_survives_a_reseed(preset_dir):
    """`keras.utils.set_random_seed` (every training run seeds) once freed SentencePiece's TF op."""
    tokenizer = load_model(preset_dir).tokenizer
    keras.utils.set_random_seed(0)
    dataset = tf.data.Dataset.from_tensor_slices([TEXT]).batch(1).map(tokenizer.tokenize)
    assert next(iter(dataset)).to_list()[0] == tokenizer.encode(TEXT)[1:]


def test_logits_are_the_presets_own(preset_dir):
    """The head reuses the backbone's output projection: kfine's logits are keras-hub's, padding aside."""
    model = load_model(preset_dir)
    causal_lm = keras_hub.models.CausalLM.from_preset(preset_dir)
    ids = np.array([model.tokenizer.encode(PROMPTS[1])], "int32")
    hidden = causal_lm.backbone({"token_ids": ids - 1, "padding_mask": np.ones_like(ids, bool)})
    expected = keras.ops.convert_to_numpy(causal_lm.backbone.token_embedding(hidden, reverse=True))
    logits = keras.ops.convert_to_numpy(model(ids))
    np.testing.assert_allclose(logits[..., 1:], expected, rtol=1e-5, atol=1e-5)
    assert (logits[..., 0] < -1e8).all()  # padding is never predicted


def test_token_embeddings_are_the_backbones_in_kfine_ids(preset_dir):
    model = load_model(preset_dir)
    embeddings = keras.ops.convert_to_numpy(model.token_embeddings())
    backbone = keras.ops.convert_to_numpy(model.layers[0].backbone.token_embedding.embeddings)
    assert embeddings.shape == (model.tokenizer.vocabulary_size, model.hidden_dim)
    assert not embeddings[0].any()  # kfine's padding
    np.testing.assert_array_equal(embeddings[1:], backbone)


def test_save_and_reload_give_the_same_greedy_output(preset_dir, tmp_path):
    model = load_model(preset_dir)
    before = generate(model, PROMPTS, max_new_tokens=6)
    save_model(model, str(tmp_path / "saved"))
    reloaded = load_model(str(tmp_path / "saved"))
    assert isinstance(reloaded.tokenizer, PresetTokenizer)
    assert reloaded.tokenizer.vocabulary == model.tokenizer.vocabulary
    assert generate(reloaded, PROMPTS, max_new_tokens=6) == before
    # The archive is self-contained and plain Keras loads it in safe mode.
    assert keras.models.load_model(str(tmp_path / "saved" / "model.keras"), safe_mode=True).tokenizer.encode(TEXT) \
        == model.tokenizer.encode(TEXT)


def _replace_config(preset_dir, tmp_path, config):
    folder = str(tmp_path / "evil")
    shutil.copytree(preset_dir, folder)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as stream:
        json.dump(config, stream)
    return folder


def test_a_preset_with_a_lambda_layer_is_refused(preset_dir, tmp_path):
    lambda_config = keras.saving.serialize_keras_object(keras.layers.Lambda(lambda x: x * 2))
    folder = _replace_config(preset_dir, tmp_path, lambda_config)
    with pytest.raises(ModelError, match=f"^{folder}: cannot load the keras-hub preset: ") as error:
        load_model(folder)
    assert "\n" not in str(error.value)


def test_a_preset_of_an_unknown_class_is_refused(preset_dir, tmp_path):
    with open(os.path.join(preset_dir, "config.json"), encoding="utf-8") as stream:
        config = json.load(stream)
    config.update(module="evil.backdoor", class_name="Backdoor", registered_name="evil>Backdoor")
    folder = _replace_config(preset_dir, tmp_path, config)
    with pytest.raises(ModelError, match=f"^{folder}: cannot load the keras-hub preset: .*Backdoor") as error:
        load_model(folder)
    assert "\n" not in str(error.value)


def test_a_handle_offline_is_a_one_line_error():
    with pytest.raises(ModelError, match="^kaggle://keras/gpt2/keras/gpt2_base_en: cannot load the keras-hub preset: "
                                         r".*\(a handle needs the network") as error:
        load_model("kaggle://keras/gpt2/keras/gpt2_base_en")
    assert "\n" not in str(error.value)
