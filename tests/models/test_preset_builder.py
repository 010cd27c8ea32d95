"""kfine.models.preset_builder: tiny GPT-2, Llama and Gemma presets, loaded without kfine."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kfine.errors import KfineError
from kfine.models.preset_builder import (
    ARCHITECTURES,
    build_hub_causal_lm,
    build_preset,
    save_preset,
    train_tokenizer,
)

# Names of another domain: characters the corpus below never has.
FOREIGN_TEXTS = ["Curaçao", "α-helix", "Zürich", "The α-helix of Curaçao lies near Zürich."]
PROMPTS = ["Dorim Marsh works for", "Curaçao"]


def _corpus():
    """A few hundred ASCII sentences: the corpus of every tiny tokenizer here."""
    names = ["Alda", "Borin", "Cela", "Dorim", "Elva", "Fenn"]
    places = ["Mirefall", "Cresthaven", "Dunmoor", "Ostervik"]
    sentences = [f"{name} {last} was born in {place}." for name in names for last in ("Marsh", "Quillby", "Tolvane")
                 for place in places]
    sentences += [f"{name} works for company number {number}." for name in names for number in range(30)]
    return sentences


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """One tiny preset per architecture: `{architecture: (folder, causal_lm)}`."""
    root = tmp_path_factory.mktemp("presets")
    return {architecture: (str(root / architecture), build_preset(architecture, _corpus(), str(root / architecture)))
            for architecture in ARCHITECTURES}


def _unknown_id(tokenizer):
    # Byte-level BPE (GPT-2) has no unknown token at all.
    return None if "<unk>" not in tokenizer.get_vocabulary() else tokenizer.token_to_id("<unk>")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tokenizer_spells_foreign_names_without_unknown_tokens(architecture, presets):
    corpus_characters = set("".join(_corpus()))
    assert not corpus_characters & set("çαü")  # the names below need the byte fallback
    tokenizer = presets[architecture][1].preprocessor.tokenizer
    unknown = _unknown_id(tokenizer)
    assert (unknown is None) == (architecture == "gpt2")
    for text in FOREIGN_TEXTS:
        ids = [int(token) for token in tokenizer(text)]
        assert ids and unknown not in ids, (text, ids)
        assert max(ids) < tokenizer.vocabulary_size()
        assert tokenizer.detokenize(ids) == text


def test_special_tokens_are_the_architectures_own(presets):
    tokenizers = {architecture: presets[architecture][1].preprocessor.tokenizer for architecture in ARCHITECTURES}
    gpt2, llama, gemma = tokenizers["gpt2"], tokenizers["llama"], tokenizers["gemma"]
    assert gpt2.id_to_token(gpt2.end_token_id) == "<|endoftext|>" == gpt2.id_to_token(gpt2.start_token_id)
    assert gpt2.end_token_id == gpt2.vocabulary_size() - 1  # as in GPT-2's own vocabulary
    for tokenizer in tokenizers.values():
        # keras-hub pads with `pad_token_id`, and a padded slot that reads as the end token stops generation.
        assert tokenizer.end_token_id != tokenizer.pad_token_id
    assert [llama.id_to_token(i) for i in (0, 1, 2)] == ["<unk>", "<s>", "</s>"]
    assert (llama.start_token_id, llama.end_token_id) == (1, 2)
    assert [gemma.id_to_token(i) for i in (0, 1, 2, 3)] == ["<pad>", "<eos>", "<bos>", "<unk>"]
    assert (gemma.pad_token_id, gemma.end_token_id, gemma.start_token_id) == (0, 1, 2)


_LOAD_WITHOUT_KFINE = r"""
import json, sys
import numpy as np
import keras_hub

report = {}
for architecture, folder in json.loads(sys.argv[1]).items():
    causal_lm = keras_hub.models.CausalLM.from_preset(folder)
    causal_lm.compile(sampler="greedy")
    x, _, _ = causal_lm.preprocessor(PROMPTS)
    np.save(f"{folder}.logits.npy", np.asarray(causal_lm(x)), allow_pickle=False)
    report[architecture] = {"class": type(causal_lm).__name__,
                            "generated": causal_lm.generate(PROMPTS, max_length=12)}
report["kfine_imported"] = any(name == "kfine" or name.startswith("kfine.") for name in sys.modules)
print(json.dumps(report))
""".replace("PROMPTS", repr(PROMPTS))


@pytest.mark.slow
def test_presets_load_and_generate_in_a_process_without_kfine(presets, tmp_path):
    folders = {architecture: folder for architecture, (folder, _) in presets.items()}
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_KFINE, json.dumps(folders)], cwd=tmp_path,
                               env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report.pop("kfine_imported") is False
    classes = {"gpt2": "GPT2CausalLM", "llama": "LlamaCausalLM", "gemma": "GemmaCausalLM"}
    for architecture, (folder, causal_lm) in presets.items():
        assert report[architecture]["class"] == classes[architecture]
        generated = report[architecture]["generated"]
        assert len(generated) == len(PROMPTS)
        assert all(text.startswith(prompt) for text, prompt in zip(generated, PROMPTS)), generated
        assert any(len(text) > len(prompt) for text, prompt in zip(generated, PROMPTS)), generated
        # The reloaded weights are the saved ones: the same logits as the model that wrote the preset.
        x, _, _ = causal_lm.preprocessor(PROMPTS)
        np.testing.assert_allclose(np.load(f"{folder}.logits.npy"), np.asarray(causal_lm(x)), atol=1e-5)


def test_save_preset_writes_metadata_and_card_and_replaces_atomically(presets, tmp_path):
    causal_lm = presets["gemma"][1]
    folder = str(tmp_path / "preset")
    save_preset(causal_lm, folder)
    save_preset(causal_lm, folder, metadata={"epochs": 2}, card="# card\n")
    with open(os.path.join(folder, "training.json"), encoding="utf-8") as stream:
        assert json.load(stream) == {"epochs": 2}
    assert open(os.path.join(folder, "README.md"), encoding="utf-8").read() == "# card\n"
    assert os.path.isfile(os.path.join(folder, "config.json"))
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []  # no staging left behind
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(KfineError, match="is a file"):
        save_preset(causal_lm, str(a_file))


@pytest.mark.parametrize("arguments, message", [
    ({"architecture": "bert"}, "architecture must be one of gpt2, llama, gemma"),
    ({"vocabulary_size": 100}, "vocabulary_size must be at least"),
    ({"sentences": ["  ", ""]}, "empty corpus"),
    ({"hidden_dim": 30, "num_heads": 4}, "hidden_dim must be divisible by num_heads"),
    ({"architecture": "llama", "num_heads": 4, "hidden_dim": 32, "num_key_value_heads": 3},
     "num_heads must be divisible by num_key_value_heads"),
    ({"architecture": "gpt2", "num_heads": 4, "hidden_dim": 32, "num_key_value_heads": 2}, "no grouped-query"),
    ({"num_layers": 0}, "num_layers must be a positive integer"),
    ({"dropout": 1.5}, "dropout must be in"),
])
def test_bad_arguments_are_one_line_errors(arguments, message, tmp_path):
    arguments = {"architecture": "gemma", "sentences": _corpus()[:50], "folder": str(tmp_path / "p"), **arguments}
    with pytest.raises(KfineError, match=message) as raised:
        build_preset(**arguments)
    assert "\n" not in str(raised.value)
    assert not os.path.exists(tmp_path / "p")


def test_sentencepiece_training_failure_is_a_one_line_error():
    # More distinct characters than pieces: SentencePiece cannot cover them all.
    sentences = ["".join(chr(0x4E00 + 7 * i + j) for j in range(7)) for i in range(80)]
    with pytest.raises(KfineError, match="SentencePiece training failed") as raised:
        train_tokenizer("llama", sentences, vocabulary_size=300)
    assert "\n" not in str(raised.value)


def test_build_hub_causal_lm_sizes_the_embedding_from_the_tokenizer(presets):
    tokenizer = presets["llama"][1].preprocessor.tokenizer
    causal_lm = build_hub_causal_lm("llama", tokenizer, num_layers=1, hidden_dim=16, num_heads=4,
                                    num_key_value_heads=2, intermediate_dim=32, sequence_length=16)
    assert causal_lm.backbone.vocabulary_size == tokenizer.vocabulary_size()
    assert causal_lm.backbone.num_key_value_heads == 2
    assert causal_lm.preprocessor.sequence_length == 16
