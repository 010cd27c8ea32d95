"""`kfine bench --perf --quick` end to end: perf.json's structure and the table (no timing assertions)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from kfine.cli import main
from kfine.datasets.geonames import build_geonames
from kfine.errors import KfineError
from kfine.perf import harness
from kfine.perf.harness import TARGETS
from kfine.perf.keras_hub_training import keras_hub_batch
from kfine.perf.kg_scaling import synthetic_triples
from kfine.perf.linking import synthetic_aliases, synthetic_text
from kfine.perf.methods import pad_width
from kfine.perf.training import train_flops_per_token
from presets import TINY_PRESET_DIMS

# The slope last: it is the only ratio that may be negative (at quick sizes the CPU seconds are noise).
MEASURED = ("lm_vs_kerashub", "injection_overhead", "xla_speedup", "mfu", "kerashub_lm_step_vs_kfine",
            "lora_step_vs_full", "kerashub_injection_overhead", "linker_vs_flashtext",
            "linker_vs_ahocorasick", "constrained_vs_unconstrained", "adversarial_step_vs_mle",
            "factcheck_step_vs_mle", "adversarial_step_xla_vs_eager", "kg_scaling_slope")


@pytest.fixture(scope="module")
def perf_run(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("perf") / "out")
    assert main(["bench", "--perf", "--quick", "--out", out_dir]) == 0
    with open(os.path.join(out_dir, "perf.json"), encoding="utf-8") as stream:
        results = json.load(stream)
    with open(os.path.join(out_dir, "perf.md"), encoding="utf-8") as stream:
        table = stream.read()
    return results, table


@pytest.mark.slow
def test_perf_json_has_every_ratio(perf_run):
    results, _ = perf_run
    assert set(results) == {"ratios", "raw"}
    ratios = results["ratios"]
    assert set(ratios) == set(MEASURED)
    for name in MEASURED:
        assert isinstance(ratios[name], float) and math.isfinite(ratios[name]), name
    for name in MEASURED[:-1]:
        assert ratios[name] > 0, name


@pytest.mark.slow
def test_perf_raw_records_device_load_and_work(perf_run):
    results, _ = perf_run
    raw = results["raw"]
    assert raw["size"] == "quick"
    assert raw["device"]["cpu_cores"] >= 1 and isinstance(raw["device"]["gpus"], list)
    assert isinstance(raw["load_at_start"], float)
    training = raw["training"]
    assert set(training["step_seconds"]) == {
        "kfine_lm_no_xla", "kfine_lm_xla", "keras_hub_gpt2_no_xla", "keras_hub_gpt2_xla", "kfine_lm_injected",
        "kfine_lm_control",
    }
    assert training["control_vs_lm"] > 0
    # The fastest-round estimator's ratios stay beside the paired ones.
    min_of_rounds = {
        "training": {"lm_vs_kerashub", "injection_overhead", "xla_speedup", "control_vs_lm", "mfu"},
        "keras_hub_training": {"kerashub_lm_step_vs_kfine", "lora_step_vs_full", "kerashub_injection_overhead"},
        "linking": {"linker_vs_flashtext", "linker_vs_ahocorasick"},
        "generation": {"constrained_vs_unconstrained"},
        "methods": {"adversarial_step_vs_mle", "factcheck_step_vs_mle"},
    }
    for section, names in min_of_rounds.items():
        assert set(raw[section]["min_of_rounds"]) == names, section
        assert all(value > 0 for value in raw[section]["min_of_rounds"].values()), section
    for timing in training["timings"].values():
        assert len(timing["all"]) == training["repeats"] and len(timing["load"]) == 2
    hub = raw["keras_hub_training"]
    assert set(hub["step_seconds"]) == {"kfine_preset_lm", "keras_hub_causal_lm", "kfine_preset_lora",
                                        "kfine_preset_injected", "kfine_preset_lm_control"}
    assert hub["preset"]["architecture"] == "gpt2" and hub["batch_size"] == training["batch_size"]
    # LoRA trains a small fraction of the weights, both sides train without XLA on a CPU.
    assert 0 < hub["trainable_parameters"]["lora"] < hub["trainable_parameters"]["full"] / 10
    assert set(hub["cpu_time"]) == set(hub["min_of_rounds"]) and hub["control_vs_lm"] > 0
    if not raw["device"]["gpus"]:
        assert hub["jit_compile"] == {"kfine": False, "keras_hub": False}
    linking = raw["linking"]
    # The three linkers do the same work on the synthetic text.
    assert len(set(linking["mentions_found"].values())) == 1 and linking["mentions_found"]["kfine"] > 0
    sizes = raw["kg_scaling"]["sizes"]
    assert [run["num_triples"] > 0 for run in sizes] == [True] * 3
    assert all(run["bytes_per_triple"] >= 0 for run in sizes)
    generation = raw["generation"]
    assert generation["generated_tokens"] > 0 and generation["constrained_generated_tokens"] > 0
    assert set(generation["seconds"]) == {"greedy", "constrained", "allowed_answers"}
    methods = raw["methods"]
    assert set(methods["step_seconds"]) == {"mle", "adversarial", "factcheck", "factcheck_dpo"}
    # Every method steps on the MLE step's shape; its own rows are no wider.
    assert methods["batch_size"] == training["batch_size"]
    assert methods["sequence_length"] == training["sequence_length"]
    assert all(0 < width <= methods["sequence_length"] + 1 for width in methods["natural_width"].values())
    assert methods["factcheck_round"]["samples"] > 0
    for name in ("mle", "adversarial", "factcheck"):
        assert isinstance(methods["jit_compile"][name], bool), name


@pytest.mark.slow
def test_perf_table_lists_ratios_with_targets(perf_run):
    results, table = perf_run
    for name, (comparison, bound) in TARGETS.items():
        line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"{'>=' if comparison == 'min' else '<='} {bound}" in line
        assert line.rstrip(" |").endswith(("yes", "no"))
    for name in ("constrained_vs_unconstrained", "adversarial_step_vs_mle", "factcheck_step_vs_mle"):
        assert f"| {name} | {results['ratios'][name]:.3f} |" in table
    assert "| KG-constrained greedy generation tokens/s |" in table
    assert "| train tokens/s, keras-hub GPT-2 preset, keras_hub_causal_lm |" in table
    assert "| train step ms, adversarial (" in table
    assert "Device: " in table


def test_synthetic_kg_keeps_the_bundled_shape():
    graph, _ = build_geonames()
    triples = synthetic_triples(graph, 20_000)
    subjects = {subject for subject, _, _ in triples}
    entities = subjects | {obj for _, _, obj in triples}
    assert 18_000 <= len(triples) <= 20_000 and len(set(triples)) == len(triples)
    # As many triples per entity and per subject as the bundled KG, within sampling noise.
    assert len(triples) / len(entities) == pytest.approx(graph.num_triples / graph.num_entities, rel=0.15)
    bundled_subjects = len(np.unique(graph.adjacency()[0]))
    assert len(triples) / len(subjects) == pytest.approx(graph.num_triples / bundled_subjects, rel=0.15)


def test_synthetic_aliases_and_text():
    graph = synthetic_aliases(300)
    assert len(graph.alias_pairs) == 300
    forms = [name for entity in graph.entities for name in graph.names(entity)]
    assert len(set(forms)) == len(forms) == 601  # 300 names, 300 aliases, the hub
    text = synthetic_text(graph, 400, mention_every=8)
    assert 400 <= len(text.split()) and sum(form in text for form in forms[:50]) > 0


def test_train_flops_per_token_counts_matmuls():
    architecture = {"num_layers": 1, "hidden_dim": 4, "intermediate_dim": 8, "sequence_length": 2}
    # 8 d^2 + 4 S d + 4 d f + 2 d V, times 3 for forward + backward.
    assert train_flops_per_token(architecture, vocabulary_size=10) == 3 * (128 + 32 + 128 + 80)


def test_pad_width_pads_the_last_axis_of_the_named_keys():
    batch = {"rows": np.ones((2, 3), "int32"), "nested": np.ones((2, 4, 3), "int32"), "weights": np.ones(2)}
    padded = pad_width(batch, {"rows": 5, "nested": 6})
    assert padded["rows"].shape == (2, 5) and padded["rows"][:, 3:].sum() == 0
    assert padded["nested"].shape == (2, 4, 6) and padded["nested"][..., :3].all()
    assert padded["weights"].shape == (2,)


def test_runs_are_fresh_processes_and_the_ratios_their_medians(tmp_path, monkeypatch):
    commands = []

    def fake_run(command):
        # Stands in for `kfine bench --perf --out RUN_DIR` in a fresh process.
        commands.append(command)
        run_dir = command[command.index("--out") + 1]
        index = len(commands)
        os.makedirs(run_dir)
        ratios = {"injection_overhead": [1.3, 1.1, 1.2][index - 1], "xla_speedup": [0.9, 1.0, 0.8][index - 1]}
        with open(os.path.join(run_dir, "perf.json"), "w", encoding="utf-8") as stream:
            json.dump({"ratios": ratios, "raw": {"load_at_start": 1.0, "load_at_end": 2.0}}, stream)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(harness.subprocess, "run", fake_run)
    results = harness.run_perf_runs("model_dir", str(tmp_path / "out"), runs=3, quick=True, echo=lambda line: None)
    assert [command[-1] for command in commands] == ["--quick"] * 3
    assert all(command[:3] == [sys.executable, "-m", "kfine.cli"] for command in commands)
    assert results["ratios"] == {"injection_overhead": 1.2, "xla_speedup": 0.9}
    with open(tmp_path / "out" / "perf.json", encoding="utf-8") as stream:
        assert json.load(stream)["ratios"] == results["ratios"]
    table = (tmp_path / "out" / "perf.md").read_text(encoding="utf-8")
    assert "| injection_overhead | 1.200 | 1.300 | 1.100 | 1.200 | <= 1.15 | no |" in table
    assert "Median of 3 runs" in table


def test_a_failed_run_stops_with_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(harness.subprocess, "run", lambda command: subprocess.CompletedProcess(command, 1))
    with pytest.raises(KfineError, match="run 1 of 2 failed"):
        harness.run_perf_runs("model_dir", str(tmp_path / "out"), runs=2, echo=lambda line: None)


def test_keras_hub_contender_trains_on_the_same_batch_with_the_same_loss(tmp_path):
    import keras
    import keras_hub
    import tensorflow as tf

    from kfine.models.loading import load_model
    from kfine.models.preset_builder import build_preset
    from kfine.training.mle import next_token_loss

    sentences = [f"City {index} lies in country {index % 7}." for index in range(200)]
    preset = str(tmp_path / "gpt2")
    build_preset("gpt2", sentences, preset, **TINY_PRESET_DIMS)
    language_model = load_model(preset)
    rows = language_model.tokenizer.encode_batch(sentences[:2], add_eos=True)
    tokens = np.asarray([row[:9] for row in rows], "int32")
    token_ids, targets = tf.constant(tokens[:, :-1]), tf.constant(tokens[:, 1:])
    inputs, hub_targets, sample_weight = keras_hub_batch(token_ids, targets)
    causal_lm = keras_hub.models.CausalLM.from_preset(preset, preprocessor=None)
    hub_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        hub_targets, causal_lm(inputs), sample_weight=sample_weight)
    kfine_loss = next_token_loss()(targets, language_model(token_ids))
    np.testing.assert_allclose(float(kfine_loss), float(hub_loss), rtol=1e-5)
