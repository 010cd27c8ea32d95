"""The hallucination benchmark: every method, same KG, same splits, same metrics."""

import json
import os
import time

import numpy as np
import tensorflow as tf

from kfine.evaluation.bench_units import BenchUnits
from kfine.evaluation.confidence import KNOWN_SPLITS, calibration_report
from kfine.evaluation.edits import EDIT_METRICS, EDIT_SPLIT_PREFIX, edit_rates, edit_split, evaluate_edits
from kfine.evaluation.evaluate import evaluate_splits
from kfine.evaluation.intervals import bootstrap_interval
from kfine.evaluation.metrics import ABSTAINED, CORRECT, HALLUCINATED, METRICS, mean_and_std
from kfine.evaluation.perplexity import perplexity
from kfine.evaluation.references import REFERENCES, reference_correctness, reference_rates
from kfine.evaluation.report import results_table, write_chart, write_risk_coverage_chart
from kfine.io import atomic_file, write_json, write_jsonl
from kfine.knowledge.task import FULL, QUICK, FactTask
from kfine.models.constrained_decoding import constrained
from kfine.models.loading import on_pretraining_split
from kfine.training.methods import get_method, method_options
from kfine.training.strategy import strategy_scope

SAMPLES_PER_SPLIT = 8
CONSTRAINED_SUFFIX = "+constrained"


def run_bench(task_files, pretrained, methods, seeds, out_dir, quick=False, verbose=0, echo=print, strategy=None,
              constrained_decoding=False, init_embeddings=None, edits=()):
    """Fine-tunes each method with each seed, evaluates, and writes the reports.

    Args:
        task_files: dict with keys `triples`, `templates`, `aliases` (may be None).
        pretrained: str. Directory of the pretrained model every method starts from.
        methods: list of str. Registered method names.
        seeds: int. Number of seeds (0 .. seeds-1).
        out_dir: str. Receives results.json, results.md, results.png, tensorboard/.
        quick: bool. The quick configuration (subsampled subjects and prompts).
        verbose: Keras verbosity during fine-tuning.
        echo: callable for progress lines.
        strategy: `tf.distribute.Strategy` or None. Methods run in its scope.
        constrained_decoding: bool. Also evaluate each method's model with
            KG-constrained decoding over `task.model_graph` (rows labelled
            `METHOD+constrained`), and time generation per token on the
            held-out prompts with and without it (metric `ms_per_token`).
        init_embeddings: str or None. KG embeddings directory (`kfine kg embed`)
            for the methods that take one; recorded in the config.
        edits: iterable of int. Numbers of counterfactual KG edits after
            fine-tuning (split `edit-N`, see `kfine.evaluation.edits`).

    Each row of results.json holds the mean and std over seeds and a 95%
    bootstrap interval over prompts (`ci_low`, `ci_high`); the reference
    rows `chance` and `majority` (see `kfine.evaluation.references`) are
    scored on the same prompts; `judgements.jsonl` keeps every verdict and
    answer confidence, so any figure can be recomputed. `calibration` holds
    each method's confidence AUROC, calibration error and risk-coverage
    curve per split (`kfine.evaluation.confidence`), drawn for seen ∪
    held-out in risk_coverage.png.

    Returns:
        The results dict written to results.json.
    """
    method_functions = {name: get_method(name) for name in methods}
    options = {name: method_options(name, init_embeddings) for name in methods}
    task = on_pretraining_split(FactTask.from_files(**task_files, size=QUICK if quick else FULL), pretrained)
    stats = task.knowledge_graph.stats()
    echo(f"knowledge graph: {stats['num_entities']} entities, {stats['num_relations']} relations, "
         f"{stats['num_triples']} triples, {stats['num_aliases']} aliases; triples per relation: "
         + ", ".join(f"{name} {count}" for name, count in stats["triples_per_relation"].items()))
    echo(f"splits (by subject, seed {task.split_seed}): "
         + ", ".join(f"{group} {len(getattr(task.splits, group))}"
                     for group in ("pretrain", "finetune", "heldout", "unknown"))
         + f" facts; fine-tuning on {len(task.finetune_sentences)} sentences")
    relation_mix = {split: _relation_mix(task.evaluation_prompts(split)) for split in task.evaluated_splits}
    for split, mix in relation_mix.items():
        echo(f"  {split} prompts by relation: " + ", ".join(f"{relation} {count}" for relation, count in mix.items()))
    for prompt, gold in task.evaluation_prompts("heldout")[:3]:
        echo(f"  e.g. held-out prompt: {prompt.text!r} -> {sorted(gold)}")
    config = {
        "triples": task_files["triples"], "templates": task_files["templates"], "aliases": task_files.get("aliases"),
        "model": pretrained, "methods": methods, "seeds": seeds, "quick": quick, "split_seed": task.split_seed,
        "constrained_decoding": constrained_decoding,
        "kg_fingerprint": task.knowledge_graph.fingerprint(), "init_embeddings": init_embeddings,
        "edits": sorted(set(edits)),
    }
    units = BenchUnits(out_dir, config)
    per_seed = {}  # (method, split, metric) -> [value per seed]
    per_prompt = {}  # (method, split, metric) -> [per-prompt scores per seed], for the bootstrap
    judgement_records = []
    for method in methods:
        for seed in range(seeds):
            unit = units.load(method, seed)
            if unit is None:
                unit = _run_unit(task, pretrained, method_functions[method], options[method], method, seed, out_dir,
                                 quick, verbose, echo, strategy, constrained_decoding, config["edits"])
                units.save(method, seed, unit)
            else:
                echo(f"[{method} seed {seed}] done in an earlier run: kept from {units.path(method, seed)}")
            for label, outcome in unit.items():
                for key, value in outcome["values"].items():
                    per_seed.setdefault((label, *key.split("/")), []).append(value)
                for key, scores in outcome["scores"].items():
                    per_prompt.setdefault((label, *key.split("/")), []).append(np.array(scores, "float64"))
                judgement_records += outcome["judgements"]
    prompt_counts = {split: len(task.evaluation_prompts(split)) for split in task.evaluated_splits}
    prompt_counts.update({edit_split(count): min(count, task.size.prompts_per_split or count)
                          for count in config["edits"]})
    for split in task.evaluated_splits:
        references = reference_correctness(task.model_graph, task.evaluation_prompts(split))
        for reference in REFERENCES:
            for metric, scores in reference_rates(references[reference]).items():
                per_seed[(reference, split, metric)] = [float(scores.mean())] if len(scores) else [float("nan")]
                per_prompt[(reference, split, metric)] = [scores]
    rows = []
    for (method, split, metric), values in per_seed.items():
        mean, std = mean_and_std(values)
        # Only rates have per-prompt scores; perplexity, timings and counts get no interval.
        low, high = bootstrap_interval(per_prompt[method, split, metric]) if (method, split, metric) in per_prompt \
            else (None, None)
        rows.append({"method": method, "split": split, "metric": metric, "mean": mean, "std": std,
                     "ci_low": low, "ci_high": high,
                     "n_seeds": 0 if method in REFERENCES else len(values), "n_prompts": prompt_counts.get(split, 0)})
    results = {
        "config": config,
        "relation_mix": relation_mix,
        "results": rows,
        "calibration": _write_calibration(judgement_records, out_dir),
    }
    os.makedirs(out_dir, exist_ok=True)
    write_jsonl(os.path.join(out_dir, "judgements.jsonl"), judgement_records)
    write_json(os.path.join(out_dir, "results.json"), results)
    with atomic_file(os.path.join(out_dir, "results.md")) as stream:
        stream.write(results_table([row for row in rows if not row["split"].startswith(EDIT_SPLIT_PREFIX)]))
        if config["edits"]:
            stream.write("\n" + _edits_table(rows))
    write_chart(rows, os.path.join(out_dir, "results.png"))
    return results


def _run_unit(task, pretrained, method_function, options, method, seed, out_dir, quick, verbose, echo, strategy,
              constrained_decoding, edits=()):
    """Fine-tunes `method` with `seed` and evaluates it: `{label: {"values", "scores", "judgements"}}`.

    The labels are the method and, with constrained decoding, `METHOD+constrained`;
    `values` maps "split/metric" to the seed's value, `scores` maps
    "split/metric" to per-prompt scores (the rates only), all plain JSON.
    """
    started = time.time()
    log_dir = os.path.join(out_dir, "tensorboard", method, str(seed))
    with strategy_scope(strategy):
        generator = method_function(task, pretrained, seed, log_dir, quick=quick, verbose=verbose, **options)
    generators = {method: generator}
    if constrained_decoding:
        generators[method + CONSTRAINED_SUFFIX] = constrained(generator, task.model_graph, task.templates)
    unit = {}
    for label, labelled_generator in generators.items():
        evaluation = evaluate_splits(labelled_generator, task, task.evaluated_splits)
        values = {(split, metric): rates[metric] for split, (rates, _) in evaluation.items() for metric in METRICS}
        if label == method:
            # Constrained decoding changes only answer slots, not the model's perplexity.
            perplexity_split, sentences = task.perplexity_sentences
            values[(perplexity_split, "perplexity")] = perplexity(generator, sentences)
        if constrained_decoding:
            values[("heldout", "ms_per_token")] = _ms_per_token(labelled_generator, task)
        scores, records = {}, []
        for split, (_, judgements) in evaluation.items():
            values[(split, "multiple_entities")] = sum(j.other_entity is not None for j in judgements)
            scores.update({f"{split}/{metric}": row.tolist() for metric, row in _per_prompt_scores(judgements).items()})
            records += [_record(label, seed, split, j, gold, prompt.relation)
                        for j, (prompt, gold) in zip(judgements, task.evaluation_prompts(split))]
        label_dir = log_dir if label == method else os.path.join(out_dir, "tensorboard", label, str(seed))
        _log_evaluation(label_dir, values, evaluation)
        echo(
            f"[{label} seed {seed}] {time.time() - started:.0f}s  "
            + "  ".join(f"{split}: acc {evaluation[split][0]['accuracy']:.2f} "
                        f"hall {evaluation[split][0]['hallucination_rate']:.2f}" for split in evaluation)
        )
        if label == method and edits:
            _add_edit_outcome(generator, task, edits, label, seed, values, scores, records)
            echo(f"[{label} seed {seed}] edits: " + "  ".join(
                f"{count}: efficacy {values[(edit_split(count), 'efficacy')]:.2f}" for count in edits))
        unit[label] = {"values": {f"{split}/{metric}": value for (split, metric), value in values.items()},
                       "scores": scores, "judgements": records}
    return unit


def _write_calibration(judgement_records, out_dir):
    """The confidence measures per method (`calibration_report`) and risk_coverage.png beside results.png."""
    calibration = calibration_report(judgement_records)
    os.makedirs(out_dir, exist_ok=True)
    write_risk_coverage_chart(calibration, "+".join(KNOWN_SPLITS), os.path.join(out_dir, "risk_coverage.png"))
    return calibration


def _add_edit_outcome(generator, task, edits, label, seed, values, scores, records):
    """Adds the `edit-N` splits of one fine-tuned generator to a unit's values, scores and records."""
    for split, outcome in evaluate_edits(generator, task, edits, limit=task.size.prompts_per_split).items():
        values.update({(split, metric): rate for metric, rate in edit_rates(outcome["scores"]).items()})
        scores.update({f"{split}/{metric}": row for metric, row in outcome["scores"].items()})
        for metric in EDIT_METRICS:
            records += [_record(label, seed, f"{split}/{metric}", judgement, gold, prompt.relation)
                        for judgement, (prompt, gold)
                        in zip(outcome["judgements"][metric], outcome["prompts"][metric])]


def _edits_table(rows):
    """A Markdown table of the `edit-N` splits: one line per method and N."""
    index = {(row["method"], row["split"], row["metric"]): row for row in rows}
    splits = sorted({row["split"] for row in rows if row["split"].startswith(EDIT_SPLIT_PREFIX)},
                    key=lambda split: int(split[len(EDIT_SPLIT_PREFIX):]))
    methods = list(dict.fromkeys(row["method"] for row in rows if row["split"] in splits))
    lines = ["| method | edits | n | " + " | ".join(EDIT_METRICS) + " |", "|" + "---|" * (len(EDIT_METRICS) + 3)]
    for method in methods:
        for split in splits:
            cells = []
            for metric in EDIT_METRICS:
                row = index.get((method, split, metric))
                cells.append("–" if row is None or np.isnan(row["mean"]) else
                             f"{row['mean']:.2f} ± {row['std']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]")
            count = index[(method, split, EDIT_METRICS[0])]["n_prompts"]
            lines.append(f"| {method} | {split[len(EDIT_SPLIT_PREFIX):]} | {count} | " + " | ".join(cells) + " |")
    lines += ["", "Counterfactual KG edits after fine-tuning, no gradient step: efficacy (answers the new object), "
                  "paraphrase efficacy (reserved wording), neighbourhood (unedited subjects with the old object answer "
                  "as before), old_fact_rate (still states the old object)."]
    return "\n".join(lines) + "\n"


def _relation_mix(prompts_with_gold):
    """`{relation: number of prompts}` in the order relations first appear."""
    mix = {}
    for prompt, _ in prompts_with_gold:
        mix[prompt.relation] = mix.get(prompt.relation, 0) + 1
    return mix


def _per_prompt_scores(judgements):
    """`{metric: array}` with each prompt's 1.0 / 0.0 for the four rates."""
    return {
        "accuracy": np.array([j.verdict == CORRECT for j in judgements], "float64"),
        "hallucination_rate": np.array([j.verdict == HALLUCINATED for j in judgements], "float64"),
        "abstention_rate": np.array([j.verdict == ABSTAINED for j in judgements], "float64"),
        "invalid_entity_rate": np.array([j.invalid_entity for j in judgements], "float64"),
    }


def _record(label, seed, split, judgement, gold, relation=None):
    """One line of judgements.jsonl."""
    return {"method": label, "seed": seed, "split": split, "relation": relation, "prompt": judgement.prompt,
            "completion": judgement.completion, "answer": judgement.answer, "entity": judgement.entity,
            "other_entity": judgement.other_entity, "verdict": judgement.verdict, "gold": sorted(gold),
            "confidence": judgement.confidence}


def _ms_per_token(generator, task, max_new_tokens=16):
    """Wall-clock milliseconds per generated token (EOS included) on the held-out prompts.

    Evaluation has already traced the generation loop for these prompts,
    so the timing holds no compilation.
    """
    prompts = [prompt.text for prompt, _ in task.evaluation_prompts("heldout")]
    started = time.perf_counter()
    completions = generator.generate_ids(prompts, max_new_tokens)
    elapsed = time.perf_counter() - started
    tokens = sum(len(ids) + (len(ids) < max_new_tokens) for ids in completions)
    return 1000 * elapsed / max(tokens, 1)


def _log_evaluation(log_dir, values, evaluation):
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "evaluation"))
    with writer.as_default():
        for (split, metric), value in values.items():
            tf.summary.scalar(f"{split}/{metric}", value, step=0)
        for split, (_, judgements) in evaluation.items():
            lines = ["| prompt | completion | verdict |", "|---|---|---|"]
            lines += [f"| {j.prompt} | {j.completion} | {j.verdict} |" for j in judgements[:SAMPLES_PER_SPLIT]]
            tf.summary.text(f"samples/{split}", "\n".join(lines), step=0)
    writer.close()


def load_results(path):
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)
