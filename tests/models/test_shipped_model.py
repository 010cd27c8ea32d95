"""The pretrained model that ships in saved_models/ loads as promised."""

import json
import os
import subprocess
import sys

import pytest

from kfine.models.shipped import SHIPPED_MODEL, WORDPIECE_MODEL, shipped_model_path

# The default, a GPT-2 preset: keras-hub alone loads it, in a process that never imports kfine.
LOAD_WITH_KERAS_HUB_ONLY = """
import sys
import keras_hub
model = keras_hub.models.CausalLM.from_preset(sys.argv[1])
print(type(model).__name__, "kfine" in sys.modules)
print(model.generate("Osaka is a city in", max_length=24))
"""

LOAD_WITH_KERAS_ONLY = """
import sys
import keras, kfine
model = keras.models.load_model(sys.argv[1], safe_mode=True)
print(type(model).__name__, model.tokenizer.vocabulary_size)
print(kfine.generate(model, ["Osaka is a city in"])[0])
"""


def test_the_default_gpt2_preset_loads_with_keras_hub_alone():
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", LOAD_WITH_KERAS_HUB_ONLY, shipped_model_path()],
                            capture_output=True, text=True, timeout=300, env=env, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    kind, generated = result.stdout.strip().splitlines()[-2:]
    assert kind == "GPT2CausalLM False"
    assert generated.startswith("Osaka is a city in") and len(generated) > len("Osaka is a city in")


def test_the_wordpiece_model_loads_with_keras_alone_in_safe_mode():
    path = os.path.join(shipped_model_path(WORDPIECE_MODEL), "model.keras")
    result = subprocess.run([sys.executable, "-c", LOAD_WITH_KERAS_ONLY, path], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    kind, generated = result.stdout.strip().splitlines()[-2:]
    assert kind.startswith("CausalLanguageModel ")
    assert generated.strip()


@pytest.mark.parametrize("name", [SHIPPED_MODEL, WORDPIECE_MODEL, "languages-gpt2"])
def test_shipped_model_has_a_card_and_fits_the_size_budget(name):
    directory = shipped_model_path(name)
    with open(os.path.join(directory, "training.json"), encoding="utf-8") as stream:
        metadata = json.load(stream)
    for key in ("command", "training_seconds", "final_loss", "seen_fact_accuracy", "kg_fingerprint", "split_seed"):
        assert key in metadata, key
    card = open(os.path.join(directory, "README.md"), encoding="utf-8").read()
    assert metadata["command"] in card and str(metadata["seen_fact_accuracy"]) in card
    size = sum(os.path.getsize(os.path.join(root, file)) for root, _, files in os.walk(directory) for file in files)
    assert size <= 25 * 1024 * 1024
