"""Every script in examples/ runs to its end, as written, on tiny inputs.

The scripts run in this process (`runpy`, as `python examples/X.py` would)
with the bundled KG and the shipped model swapped for the tiny people KG and
a tiny GPT-2 preset (the shipped default is a GPT-2 preset), every method's quick configuration cut to one
epoch (`tiny_methods`) and their own flags at their smallest: a script that
no longer matches the API fails here, not in a user's hands.
"""

import os
import runpy
import sys

import pytest

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

# script -> (its flags, a line it prints at its end)
EXAMPLES = {
    "00_quickstart.py": ([], "baseline       seen accuracy"),
    "01_knowledge_injection.py": ([], "knowledge method, held-out accuracy:"),
    "02_knowledge_constraints.py": ([], "TensorBoard: tensorboard --logdir runs/constraints"),
    "03_adversarial.py": (["--epochs", "1", "--timing-steps", "1"], "ratio"),
    "04_fact_check.py": ([], "(after feedback)"),
    "constraint_ablation.py": (["--seeds", "1", "--out", "ablation", "--relation", "born_in"],
                               "wrote ablation/ablation.md"),
    "constrained_decoding_cost.py": (["--prompts", "4", "--repeats", "1"],
                                     "constrained / unconstrained time per token"),
    # --sample: the shared `kfine kg sample` output (a Beam pipeline is run once per suite).
    "graph_sampled_training.py": (["--out", "graph_sample", "--sample", "$people_sample"],
                                  "wrote graph_sample/results.json"),
}


def test_every_example_is_run():
    assert sorted(EXAMPLES) == sorted(name for name in os.listdir(EXAMPLES_DIR) if name.endswith(".py"))


@pytest.fixture
def tiny_inputs(people_kg_files, tiny_gpt2_preset, tiny_methods, tmp_path, monkeypatch):
    """The people KG as the bundled one, a tiny GPT-2 preset as the shipped one; runs/ under `tmp_path`."""
    import kfine.datasets.geonames
    import kfine.models.shipped

    monkeypatch.setattr(kfine.datasets.geonames, "default_kg_files", lambda cache_dir=None: dict(people_kg_files))
    monkeypatch.setattr(kfine.models.shipped, "shipped_model_path", lambda name=None: tiny_gpt2_preset)
    monkeypatch.chdir(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs_to_its_end(script, tiny_inputs, request, monkeypatch, capsys):
    flags, last_words = EXAMPLES[script]
    path = os.path.join(EXAMPLES_DIR, script)
    # Only the script that reads it waits for the shared sample (another worker may be drawing it).
    flags = [request.getfixturevalue("people_sample") if flag == "$people_sample" else flag for flag in flags]
    monkeypatch.setattr(sys, "argv", [path, *flags])
    runpy.run_path(path, run_name="__main__")
    assert last_words in capsys.readouterr().out
