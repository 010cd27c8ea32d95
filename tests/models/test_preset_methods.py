"""Fine-tuning a keras-hub preset (tiny GPT-2 on the people KG): `model.add`, LoRA, dtypes.

Every method on a preset: test_preset_every_method.py.
"""

import keras
import numpy as np
import pytest

from kfine.layers import KnowledgeInjectionLayer
from kfine.models.generation import generate
from kfine.models.loading import load_model, load_options, save_model
from presets import write_tiny_preset

PROMPTS = ["Alda Varenko was born in", "The employer of Borin Quillby is"]


@pytest.fixture(scope="module")
def gpt2_preset(people_task, tmp_path_factory):
    return write_tiny_preset("gpt2", people_task, str(tmp_path_factory.mktemp("gpt2")))


def _token_batch(model, sentences):
    rows = model.tokenizer.encode_batch(sentences, add_eos=True)
    ids = np.zeros((len(rows), max(map(len, rows))), "int32")
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    return ids[:, :-1], ids[:, 1:]


def test_model_add_injection_then_fit_then_save_and_load(gpt2_preset, people_task, tmp_path):
    model = load_model(gpt2_preset)
    model.add(KnowledgeInjectionLayer(people_task.model_graph, templates=people_task.templates, name="injection"))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    inputs, targets = _token_batch(model, ["Alda Varenko was born in Mirefall.", "Cela Marsh plays the harp."])
    history = model.fit(inputs, targets, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    before = generate(model, PROMPTS, max_new_tokens=5)
    save_model(model, str(tmp_path / "added"))
    reloaded = load_model(str(tmp_path / "added"))  # safe mode
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
    assert generate(reloaded, PROMPTS, max_new_tokens=5) == before


def test_lora_trains_only_low_rank_updates_and_saves_a_plain_model(gpt2_preset, tmp_path):
    with load_options(lora_rank=2):
        model = load_model(gpt2_preset)
    trainable = [variable.path for variable in model.trainable_variables]
    # keras-hub's LoRA freezes every kernel and embedding; the LoRA'd projections keep their biases trainable.
    assert any("lora_kernel" in path for path in trainable)
    assert all("lora_kernel" in path or path.endswith("/bias") for path in trainable), trainable
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    inputs, targets = _token_batch(model, ["Alda Varenko was born in Mirefall."] * 4)
    model.fit(inputs, targets, epochs=2, verbose=0)
    save_model(model, str(tmp_path / "lora"))
    reloaded = load_model(str(tmp_path / "lora"))
    assert not any("lora" in variable.path for variable in reloaded.variables)  # merged into the kernels
    np.testing.assert_allclose(reloaded(inputs), model(inputs), rtol=1e-4, atol=1e-4)
    assert not np.allclose(load_model(gpt2_preset)(inputs), model(inputs), atol=1e-4)  # LoRA did learn


@pytest.mark.parametrize("dtype", ["bfloat16", "mixed_bfloat16"])
def test_dtype_policies(gpt2_preset, dtype):
    with load_options(dtype=dtype):
        model = load_model(gpt2_preset)
    backbone = model.layers[0].backbone
    assert backbone.dtype_policy.name == dtype
    assert backbone.token_embedding.embeddings.dtype == ("bfloat16" if dtype == "bfloat16" else "float32")
    logits = model(np.array([model.tokenizer.encode(PROMPTS[0])], "int32"))
    assert logits.dtype == "float32" and np.isfinite(keras.ops.convert_to_numpy(logits)).all()


def test_bad_load_options_are_one_line_errors(tmp_path):
    from kfine.errors import ModelError

    with pytest.raises(ModelError, match="--dtype must be one of float32, bfloat16, mixed_bfloat16. Received: 'fp8'"):
        with load_options(dtype="fp8"):
            pass
    with pytest.raises(ModelError, match="--lora-rank must be a positive integer. Received: 0"):
        with load_options(lora_rank=0):
            pass
