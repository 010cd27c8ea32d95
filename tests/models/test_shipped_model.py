"""The pretrained model that ships in saved_models/ loads as promised."""

import json
import os
import subprocess
import sys

from kfine.models.shipped import shipped_model_path

LOAD_WITH_KERAS_ONLY = """
import sys
import keras, kfine
model = keras.models.load_model(sys.argv[1], safe_mode=True)
print(type(model).__name__, model.tokenizer.vocabulary_size)
print(kfine.generate(model, ["Osaka is a city in"])[0])
"""


def test_shipped_model_loads_with_keras_alone_in_safe_mode():
    path = os.path.join(shipped_model_path(), "model.keras")
    result = subprocess.run([sys.executable, "-c", LOAD_WITH_KERAS_ONLY, path], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    kind, generated = result.stdout.strip().splitlines()[-2:]
    assert kind.startswith("CausalLanguageModel ")
    assert generated.strip()


def test_shipped_model_has_a_card_and_fits_the_size_budget():
    directory = shipped_model_path()
    with open(os.path.join(directory, "training.json"), encoding="utf-8") as stream:
        metadata = json.load(stream)
    for key in ("command", "training_seconds", "final_loss", "seen_fact_accuracy", "kg_fingerprint", "split_seed"):
        assert key in metadata, key
    card = open(os.path.join(directory, "README.md"), encoding="utf-8").read()
    assert metadata["command"] in card and str(metadata["seen_fact_accuracy"]) in card
    size = sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))
    assert size <= 25 * 1024 * 1024
