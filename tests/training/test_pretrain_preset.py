"""`kfine pretrain --architecture gpt2|llama|gemma`: a keras-hub preset that loads without kfine."""

import json
import os
import subprocess
import sys

import pytest

from kfine.cli import main
from kfine.errors import KfineError
from kfine.models.preset_builder import ARCHITECTURES
from kfine.training.pretrain_preset import PRESET_KIND, pretrain_preset

CLASSES = {"gpt2": "GPT2CausalLM", "llama": "LlamaCausalLM", "gemma": "GemmaCausalLM"}
PROMPT = "Dorim Marsh works for"


def _kg_flags(people_kg_files):
    return ["--triples", people_kg_files["triples"], "--templates", people_kg_files["templates"],
            "--aliases", people_kg_files["aliases"]]


@pytest.fixture(scope="module")
def presets(people_kg_files, tmp_path_factory):
    """`{architecture: folder}`: `kfine pretrain --architecture A --epochs 2` on the people KG, each."""
    root = tmp_path_factory.mktemp("pretrained_presets")
    folders = {}
    for architecture in ARCHITECTURES:
        folders[architecture] = str(root / architecture)
        argv = ["pretrain", "--architecture", architecture, *_kg_flags(people_kg_files), "--out",
                folders[architecture], "--epochs", "2", "--vocabulary-size", "400", "--logdir",
                str(root / f"{architecture}-logs")]
        saved_argv, sys.argv = sys.argv, ["kfine", *argv]  # the model card records the command line
        try:
            assert main(argv) == 0, architecture
        finally:
            sys.argv = saved_argv
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_pretrain_writes_a_preset_with_card_and_metadata(architecture, presets, people_task):
    folder = presets[architecture]
    for name in ("config.json", "task.json", "preprocessor.json", "tokenizer.json", "model.weights.h5"):
        assert os.path.isfile(os.path.join(folder, name)), name
    with open(os.path.join(folder, "training.json"), encoding="utf-8") as stream:
        metadata = json.load(stream)
    assert metadata["kind"] == PRESET_KIND
    assert metadata["architecture"] == architecture and metadata["causal_lm_class"] == CLASSES[architecture]
    assert metadata["epochs"] == 2
    assert metadata["command"].startswith(f"kfine pretrain --architecture {architecture} ")
    assert metadata["kg_fingerprint"] == people_task.knowledge_graph.fingerprint()
    assert 256 < metadata["vocabulary_size"] <= 400
    assert metadata["corpus_sentences"] == len(people_task.verbalizer.sentences(
        people_task.splits.training_triples("pretrain"), which="all"))
    assert 0 < metadata["final_loss"] < 10 and 0 <= metadata["seen_fact_accuracy"] <= 1
    card = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    assert CLASSES[architecture] in card and metadata["command"] in card
    assert not [name for name in os.listdir(os.path.dirname(folder)) if name.startswith(".")]  # no staging left


_LOAD_WITHOUT_KFINE = r"""
import json, sys
import keras_hub

report = {}
for architecture, folder in json.loads(sys.argv[1]).items():
    causal_lm = keras_hub.models.CausalLM.from_preset(folder)
    causal_lm.compile(sampler="greedy")
    report[architecture] = [type(causal_lm).__name__, causal_lm.generate(sys.argv[2], max_length=16)]
report["kfine_imported"] = any(name == "kfine" or name.startswith("kfine.") for name in sys.modules)
print(json.dumps(report))
"""


@pytest.mark.slow
def test_pretrained_presets_load_and_generate_without_kfine(presets, tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_KFINE, json.dumps(presets), PROMPT],
                               cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report.pop("kfine_imported") is False
    for architecture in ARCHITECTURES:
        class_name, generated = report[architecture]
        assert class_name == CLASSES[architecture]
        assert generated.startswith(PROMPT), generated


def test_too_small_a_vocabulary_is_one_line_and_writes_nothing(people_kg_files, tmp_path, capsys):
    out = str(tmp_path / "preset")
    returncode = main(["pretrain", "--architecture", "gpt2", *_kg_flags(people_kg_files), "--out", out,
                       "--epochs", "1", "--vocabulary-size", "100", "--logdir", str(tmp_path / "logs")])
    stderr = capsys.readouterr().err
    assert returncode == 2
    assert stderr.splitlines() == ["kfine: error: vocabulary_size must be at least 300 (256 byte tokens plus "
                                   "special tokens). Received: vocabulary_size=100"]
    assert not os.path.exists(out)


def test_unknown_architecture_is_refused_by_the_parser(people_kg_files, tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["pretrain", "--architecture", "bert", *_kg_flags(people_kg_files), "--out", str(tmp_path / "p")])
    assert raised.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "--architecture: invalid choice: 'bert'" in lines[0]


@pytest.mark.parametrize("arguments, message", [
    ({"architecture": "mistral"}, "architecture must be one of gpt2, llama, gemma"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer"),
    ({"learning_rate": 0}, "learning_rate must be positive"),
    ({"corpus_templates": "some"}, "corpus_templates must be one of all, training"),
    ({"dims": {"hidden_dim": 30, "num_heads": 4}}, "hidden_dim must be divisible by num_heads"),
])
def test_bad_arguments_are_one_line_errors(arguments, message, people_task, tmp_path):
    out = str(tmp_path / "preset")
    with pytest.raises(KfineError, match=message) as raised:
        pretrain_preset(people_task, out, **{"vocabulary_size": 400, **arguments})
    assert "\n" not in str(raised.value)
    assert not os.path.exists(out)
