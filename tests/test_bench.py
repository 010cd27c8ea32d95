"""The bench end to end on a KG of another domain (fictional people), with a tiny pretrained model."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.bench import load_results, run_bench
from kfine.evaluation.metrics import METRICS
from kfine.evaluation.references import REFERENCES
from kfine.knowledge.task import QUICK, FactTask
from kfine.models.loading import load_metadata

# The people KG has no unknown-inferable facts (see tests/evaluation/test_task.py).
SPLITS = ("seen", "heldout", "unknown", "paraphrase")
RATES = ("accuracy", "hallucination_rate", "abstention_rate", "invalid_entity_rate")
ROW_KEYS = {"method", "split", "metric", "mean", "std", "ci_low", "ci_high", "n_seeds", "n_prompts"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench(people_kg_files, pretrained_dir, tmp_path_factory, short_baseline):
    """`run_bench` with the baseline and two seeds: (out_dir, returned results, echoed lines)."""
    out_dir = str(tmp_path_factory.mktemp("bench") / "out")
    lines = []
    results = run_bench(people_kg_files, pretrained_dir, ["baseline"], 2, out_dir, quick=True, echo=lines.append)
    return out_dir, results, lines


def _rows(results):
    return {(row["method"], row["split"], row["metric"]): row for row in results["results"]}


def _evaluation_scalars(log_dir):
    """The per-seed metric values the bench logged to TensorBoard, as {"split/metric": float32}."""
    values = {}
    for path in glob.glob(os.path.join(log_dir, "evaluation", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    values[value.tag] = np.float32(tf.make_ndarray(value.tensor))
    return values


def test_results_json_schema(bench, people_kg_files, pretrained_dir):
    out_dir, results, _ = bench
    assert load_results(os.path.join(out_dir, "results.json")) == results
    assert set(results) == {"config", "relation_mix", "results", "calibration"}
    config = results["config"]
    assert config["triples"] == people_kg_files["triples"]
    assert config["templates"] == people_kg_files["templates"]
    assert config["aliases"] == people_kg_files["aliases"]
    assert (config["model"], config["methods"], config["seeds"], config["quick"]) == (pretrained_dir, ["baseline"], 2,
                                                                                     True)
    for row in results["results"]:
        assert set(row) == ROW_KEYS
        assert isinstance(row["mean"], float) and isinstance(row["std"], float)


def test_the_pretraining_split_is_reused(bench, pretrained_dir):
    config = bench[1]["config"]
    metadata = load_metadata(pretrained_dir)
    assert config["kg_fingerprint"] == metadata["kg_fingerprint"]
    assert config["split_seed"] == metadata["split_seed"]


def test_every_split_and_metric_is_reported(bench, people_task):
    rows = _rows(bench[1])
    expected = {(method, split, metric) for method in ("baseline", *REFERENCES) for split in SPLITS
                for metric in METRICS}
    expected |= {("baseline", split, "multiple_entities") for split in SPLITS}
    expected.add(("baseline", "heldout", "perplexity"))
    assert set(rows) == expected
    quick = FactTask(people_task.knowledge_graph, people_task.templates, size=QUICK)
    for (method, split, metric), row in rows.items():
        assert row["n_seeds"] == (0 if method in REFERENCES else 2)
        assert row["n_prompts"] == len(quick.evaluation_prompts(split)) > 0
        if metric in METRICS:  # rates carry a bootstrap interval around their mean
            assert row["ci_low"] <= row["mean"] + 1e-9 and row["mean"] <= row["ci_high"] + 1e-9, row


def test_judgements_recompute_every_rate(bench):
    """judgements.jsonl holds every verdict: the table's means follow from it."""
    out_dir, results, _ = bench
    with open(os.path.join(out_dir, "judgements.jsonl"), encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream]
    rows = _rows(results)
    for split in SPLITS:
        for seed in (0, 1):
            verdicts = [r["verdict"] for r in records if (r["method"], r["seed"], r["split"]) == ("baseline", seed,
                                                                                                   split)]
            assert len(verdicts) == rows["baseline", split, "accuracy"]["n_prompts"]
        both = [r["verdict"] == "correct" for r in records if (r["method"], r["split"]) == ("baseline", split)]
        assert np.mean(both) == pytest.approx(rows["baseline", split, "accuracy"]["mean"])


def test_relation_mix_counts_every_prompt(bench):
    results = bench[1]
    for split in SPLITS:
        assert (sum(results["relation_mix"][split].values())
                == _rows(results)["baseline", split, "accuracy"]["n_prompts"])


def test_rates_are_fractions_that_add_up(bench):
    rows = _rows(bench[1])
    for split in SPLITS:
        for metric in RATES:
            row = rows["baseline", split, metric]
            assert 0.0 <= row["mean"] <= 1.0 and 0.0 <= row["std"] <= 0.5, row
        total = sum(rows["baseline", split, metric]["mean"] for metric in RATES[:3])
        assert total == pytest.approx(1.0), split
        assert rows["baseline", split, "invalid_entity_rate"]["mean"] <= rows["baseline", split,
                                                                               "hallucination_rate"]["mean"] + 1e-9
    perplexity = rows["baseline", "heldout", "perplexity"]
    assert 1.0 < perplexity["mean"] < 1e6 and perplexity["std"] >= 0.0


def test_markdown_table(bench):
    out_dir, _, _ = bench
    with open(os.path.join(out_dir, "results.md"), encoding="utf-8") as stream:
        table = stream.read()
    assert table.startswith("| method | split | n | acc | halluc. | abstain | invalid |")
    for split in SPLITS:
        assert f"| baseline | {split} |" in table
        assert table.index(f"| chance | {split} |") < table.index(f"| baseline | {split} |")
    assert "over 2 seed(s)" in table


def test_chart_is_a_png(bench):
    with open(os.path.join(bench[0], "results.png"), "rb") as stream:
        data = stream.read()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100


def test_tensorboard_logs(bench):
    out_dir, results, _ = bench
    for seed in ("0", "1"):
        log_dir = os.path.join(out_dir, "tensorboard", "baseline", seed)
        assert glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)
        assert glob.glob(os.path.join(log_dir, "fit", "train", "events.out.tfevents.*"))  # the fine-tuning curves
    # The logged per-seed values are those the means and stds summarize.
    per_seed = [_evaluation_scalars(os.path.join(out_dir, "tensorboard", "baseline", seed)) for seed in ("0", "1")]
    for (method, split, metric), row in _rows(results).items():
        if method in REFERENCES:
            continue
        values = [scalars[f"{split}/{metric}"] for scalars in per_seed]
        assert row["mean"] == pytest.approx(np.mean(values), rel=1e-5, abs=1e-6)
        assert row["std"] == pytest.approx(np.std(values), rel=1e-4, abs=1e-5)


def test_progress_lines(bench):
    lines = [line for line in bench[2] if line.startswith("[baseline seed ")]
    assert [line.split("]")[0] for line in lines] == ["[baseline seed 0", "[baseline seed 1"]
    assert all("heldout: acc" in line for line in lines)


@pytest.fixture(scope="module")
def constrained_bench(people_kg_files, pretrained_dir, tmp_path_factory, short_baseline):
    """A one-seed `run_bench` with constrained decoding, after other seeding: (out_dir, results, echoed lines)."""
    keras.utils.set_random_seed(12345)  # other work seeded the global generators differently
    out_dir = str(tmp_path_factory.mktemp("constrained") / "out")
    lines = []
    results = run_bench(people_kg_files, pretrained_dir, ["baseline"], 1, out_dir, quick=True, echo=lines.append,
                        constrained_decoding=True)
    return out_dir, results, lines


def test_same_seed_gives_identical_metrics(bench, constrained_bench):
    """A one-seed run reproduces seed 0 of the two-seed run exactly (TensorBoard keeps float32),
    whatever ran before it in the process.

    The one-seed run is the constrained-decoding one: its unconstrained rows come from the same model.
    """
    first = _evaluation_scalars(os.path.join(bench[0], "tensorboard", "baseline", "0"))
    again = {key: row for key, row in _rows(constrained_bench[1]).items() if key[0] == "baseline"}
    assert {(split, metric) for _, split, metric in again} >= {("heldout", "accuracy"), ("heldout", "perplexity")}
    for (_, split, metric), row in again.items():
        assert row["n_seeds"] == 1 and row["std"] == 0.0
        if metric == "ms_per_token":  # a timing, not a result
            continue
        assert np.float32(row["mean"]) == first[f"{split}/{metric}"], (split, metric)


def test_unknown_method_is_refused_before_training(people_kg_files, pretrained_dir, tmp_path):
    from kfine.errors import KfineError

    with pytest.raises(KfineError, match="--methods: unknown method 'nope'; known methods: .*baseline"):
        run_bench(people_kg_files, pretrained_dir, ["baseline", "nope"], 1, str(tmp_path / "out"), quick=True)
    assert not os.path.exists(tmp_path / "out")


def test_calibration_is_reported_per_split_with_the_risk_coverage_plot(bench):
    out_dir, results, _ = bench
    calibration = results["calibration"]["baseline"]
    assert {"seen", "heldout", "seen+heldout"} <= set(calibration)
    union = calibration["seen+heldout"]
    assert union["answers"] > 0 and union["risk_coverage"][0]["threshold"] == 0.0
    assert union["auroc"]["mean"] is None or 0.0 <= union["auroc"]["mean"] <= 1.0
    assert os.path.getsize(os.path.join(out_dir, "risk_coverage.png")) > 0
    with open(os.path.join(out_dir, "judgements.jsonl"), encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream]
    assert all(0.0 <= r["confidence"] <= 1.0 for r in records if r["method"] == "baseline")


def test_results_json_is_plain_json(bench):
    with open(os.path.join(bench[0], "results.json"), encoding="utf-8") as stream:
        text = stream.read()
    assert json.loads(text) == bench[1]
    assert "NaN" not in text  # every split has prompts, so no metric is undefined


def test_constrained_decoding_adds_labelled_rows(constrained_bench):
    out_dir, results, lines = constrained_bench
    rows = _rows(results)
    assert results["config"]["constrained_decoding"] is True
    for split in SPLITS:
        assert rows["baseline+constrained", split, "invalid_entity_rate"]["mean"] == 0.0
        assert ("baseline", split, "accuracy") in rows  # the unconstrained rows stay, from the same model
    assert rows["baseline+constrained", "unknown", "hallucination_rate"]["mean"] == 0.0
    assert ("baseline+constrained", "heldout", "perplexity") not in rows
    for label in ("baseline", "baseline+constrained"):
        assert rows[label, "heldout", "ms_per_token"]["mean"] > 0
    assert any(line.startswith("[baseline+constrained seed 0]") for line in lines)
    with open(os.path.join(out_dir, "results.md"), encoding="utf-8") as stream:
        assert "| baseline+constrained | unknown |" in stream.read()


# === Resuming a killed run ===


def test_a_killed_run_resumes_to_the_same_results(bench, people_kg_files, pretrained_dir, tmp_path, short_baseline):
    """A real process killed after its first (method, seed) unit; the rerun skips that unit and ends
    with the results.json of the uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    out_dir = str(tmp_path / "out")
    arguments = ["bench", "--triples", people_kg_files["triples"], "--templates", people_kg_files["templates"],
                 "--aliases", people_kg_files["aliases"], "--model", pretrained_dir, "--methods", "baseline",
                 "--seeds", "2", "--quick", "--out", out_dir]
    # The subprocess must train as briefly as the fixture's in-process run (short_baseline patches only this process).
    script = ("import sys; from kfine.training import baseline; baseline.QUICK_EPOCHS = 3; "
              "from kfine.cli import main; sys.exit(main(sys.argv[1:]))")
    process = subprocess.Popen([sys.executable, "-c", script, *arguments], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first_unit = os.path.join(out_dir, "units", "baseline", "0.json")
    deadline = time.monotonic() + 600  # a hang guard, not a timing assertion
    while not os.path.exists(first_unit) and process.poll() is None:
        assert time.monotonic() < deadline, "the first unit never finished"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(out_dir, "results.json"))
    lines = []
    import contextlib
    import io

    from kfine.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(arguments) == 0
    assert "[baseline seed 0] done in an earlier run" in printed.getvalue()
    assert load_results(os.path.join(out_dir, "results.json"))["results"] == bench[1]["results"], lines


def test_a_run_with_other_arguments_into_the_same_out_is_refused(bench, people_kg_files, pretrained_dir):
    from kfine.errors import KfineError

    out_dir = bench[0]
    with pytest.raises(KfineError, match=rf"--out {out_dir}: holds a bench run with other arguments \(seeds differ\)"):
        run_bench(people_kg_files, pretrained_dir, ["baseline"], 3, out_dir, quick=True)
