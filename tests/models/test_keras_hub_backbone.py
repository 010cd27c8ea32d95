import json
import os
import re

import keras
import keras_hub
import numpy as np
import pytest

from kfine.errors import ModelError
from kfine.knowledge.task import SPLITS
from kfine.layers import LanguageModelHead
from kfine.models.causal_lm import CausalLanguageModel
from kfine.models.generation import Generator
from kfine.models.keras_hub_backbone import VOCABULARY_FILE, KerasHubBackboneLayer, from_keras_hub
from kfine.models.loading import load_model, save_model
from layer_test_case import run_layer_test

TOKEN_IDS = np.array([[2, 40, 41, 42, 5, 0, 0], [2, 43, 44, 45, 46, 47, 48]], dtype="int32")


def tiny_gpt2(vocabulary_size, seed=0):
    keras.utils.set_random_seed(seed)
    return keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=32,
    )


def write_preset(directory, backbone, vocabulary):
    """A keras-hub preset folder plus the kfine vocabulary file, as a user would make it."""
    os.makedirs(directory, exist_ok=True)
    backbone.save_to_preset(directory)
    with open(os.path.join(directory, VOCABULARY_FILE), "w", encoding="utf-8") as stream:
        stream.writelines(token + "\n" for token in vocabulary)
    return directory


@pytest.fixture(scope="module")
def preset_dir(people_tokenizer, tmp_path_factory):
    # The backbone embeds exactly the kfine vocabulary.
    backbone = tiny_gpt2(people_tokenizer.vocabulary_size)
    return write_preset(str(tmp_path_factory.mktemp("gpt2_preset")), backbone, people_tokenizer.vocabulary)


def _tied_lm_logits(backbone, token_ids):
    hidden = backbone({"token_ids": token_ids, "padding_mask": token_ids != 0})
    return keras.ops.convert_to_numpy(backbone.token_embedding(hidden, reverse=True))


def test_preset_loads_as_a_causal_lm(preset_dir, people_tokenizer):
    model = load_model(preset_dir)
    assert isinstance(model, CausalLanguageModel)
    assert [type(layer) for layer in model.layers] == [KerasHubBackboneLayer, LanguageModelHead]
    assert model.vocabulary == people_tokenizer.vocabulary
    assert model.hidden_dim == 16
    assert model.sequence_length == 32
    assert isinstance(model.layers[0].backbone, keras_hub.models.GPT2Backbone)


def test_outputs_equal_the_backbones_own_tied_lm_logits(preset_dir):
    model = load_model(preset_dir)
    backbone = keras_hub.models.Backbone.from_preset(preset_dir)
    logits = keras.ops.convert_to_numpy(model(TOKEN_IDS))
    assert logits.shape == (2, 7, backbone.vocabulary_size)
    np.testing.assert_allclose(logits, _tied_lm_logits(backbone, TOKEN_IDS), rtol=1e-5, atol=1e-6)


def test_save_and_load_give_identical_outputs(preset_dir, tmp_path):
    model = load_model(preset_dir)
    save_model(model, str(tmp_path / "saved"))
    reloaded = load_model(str(tmp_path / "saved"))
    assert isinstance(reloaded.layers[0], KerasHubBackboneLayer)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded(TOKEN_IDS)),
                                  keras.ops.convert_to_numpy(model(TOKEN_IDS)))


def test_from_keras_hub_accepts_a_backbone_object(people_tokenizer):
    backbone = tiny_gpt2(people_tokenizer.vocabulary_size, seed=3)
    model = from_keras_hub(backbone, people_tokenizer.vocabulary)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(TOKEN_IDS)), _tied_lm_logits(backbone, TOKEN_IDS),
                               rtol=1e-5, atol=1e-6)


def test_preset_without_vocabulary_file(people_tokenizer, tmp_path):
    directory = str(tmp_path / "preset")
    tiny_gpt2(people_tokenizer.vocabulary_size).save_to_preset(directory)
    expected = f"{directory}: a keras-hub preset needs a kfine vocabulary in {VOCABULARY_FILE}"
    with pytest.raises(ModelError, match=re.escape(expected)):
        load_model(directory)


def test_vocabulary_larger_than_the_backbone(people_tokenizer, tmp_path):
    directory = write_preset(str(tmp_path / "preset"), tiny_gpt2(100), people_tokenizer.vocabulary)
    count = people_tokenizer.vocabulary_size
    with pytest.raises(ModelError, match=f"the vocabulary has {count} tokens but the backbone embeds only 100"):
        load_model(directory)


def test_generation_never_yields_ids_outside_a_smaller_vocabulary(people_tokenizer, tmp_path):
    """A vocabulary smaller than the backbone's is allowed, so the extra ids must never be generated
    (the tokenizer cannot decode them)."""
    vocabulary = people_tokenizer.vocabulary
    directory = write_preset(str(tmp_path / "preset"), tiny_gpt2(len(vocabulary) + 300), vocabulary)
    model = load_model(directory)
    rows = Generator(model, model.tokenizer).generate_ids(
        ["Alda Varenko was born in", "Borin Quillby works for", "Cela Marsh plays the"], max_new_tokens=8
    )
    assert max(token for row in rows for token in row) < len(vocabulary), rows


def test_backbone_layer(preset_dir):
    backbone = keras_hub.models.Backbone.from_preset(preset_dir)
    run_layer_test(
        KerasHubBackboneLayer,
        init_kwargs={"backbone": backbone},
        input_data=TOKEN_IDS,
        expected_output_shape=(2, 7, 16),
        run_mixed_precision_check=False,  # the wrapped backbone keeps its own dtype policy
        invalid_init_kwargs=[({"backbone": "gpt2_base_en"}, "backbone='gpt2_base_en'")],
    )


def test_usable_as_the_pretrained_model_of_the_bench(preset_dir, people_kg_files, tmp_path, short_baseline):
    from kfine.bench import run_bench

    results = run_bench(people_kg_files, preset_dir, ["baseline"], 1, str(tmp_path / "bench"), quick=True,
                        echo=lambda line: None)
    assert results["config"]["model"] == preset_dir
    rows = {(row["split"], row["metric"]): row for row in results["results"]}
    for split in SPLITS:
        assert 0.0 <= rows[split, "accuracy"]["mean"] <= 1.0
    assert np.isfinite(rows["heldout", "perplexity"]["mean"])
    with open(tmp_path / "bench" / "results.json", encoding="utf-8") as stream:
        assert json.load(stream) == results
