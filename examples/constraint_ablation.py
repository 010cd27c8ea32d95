"""Constraint ablation: the constraint loss and the KG regularizer on and off, on a multi-valued relation.

Run from the repository root after `make install`:

    .venv/bin/python examples/constraint_ablation.py --seeds 3 --out runs/constraint_ablation

It registers the four variants of the `constraint` method (both constraints,
the loss alone, the regularizer alone, neither: the `knowledge` model),
benchmarks them with `run_bench` (the quick configuration; units are resumable
like `kfine bench`'s), and writes `OUT/ablation.md`: per variant, the accuracy
on the prompts of `--relation` (default `neighbour`, a country's bordering
countries: several answers are right, which is where the constraint loss
differs from the pointer's cross-entropy) in each split, and the bench's split
metrics, mean ± std over seeds.
"""

import argparse
import functools
import json
import os

import numpy as np

from kfine.bench import run_bench
from kfine.datasets.geonames import default_kg_files
from kfine.models.shipped import shipped_model_path
from kfine.training.constraint import fine_tune_constraint
from kfine.training.methods import available_methods, register_method

# name -> (constraint loss, regularizer)
VARIANTS = {
    "constraint": (True, True),
    "constraint_no_regularizer": (True, False),
    "constraint_no_loss": (False, True),
    "constraint_neither": (False, False),
}
SPLIT_METRICS = (("seen", "accuracy"), ("heldout", "accuracy"), ("paraphrase", "accuracy"),
                 ("unknown", "hallucination_rate"))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--out", default="runs/constraint_ablation")
parser.add_argument("--model", default=None, help="pretrained model directory (default: the shipped one)")
parser.add_argument("--relation", default="neighbour")
args = parser.parse_args()

for name, (constraint_loss, regularizer) in VARIANTS.items():
    if name not in available_methods():
        register_method(name)(functools.partial(fine_tune_constraint, constraint_loss=constraint_loss,
                                                regularizer=regularizer))
results = run_bench(default_kg_files(), args.model or shipped_model_path(), list(VARIANTS), args.seeds, args.out,
                    quick=True)

# The relation's accuracy per (variant, split), one value per seed, from every judged prompt.
per_seed = {}
with open(os.path.join(args.out, "judgements.jsonl"), encoding="utf-8") as stream:
    for line in stream:
        record = json.loads(line)
        if record["method"] in VARIANTS and record.get("relation") == args.relation:
            per_seed.setdefault((record["method"], record["split"]), {}).setdefault(record["seed"], []).append(
                record["verdict"] == "correct")
splits = [split for split in ("seen", "heldout", "paraphrase") if any(key[1] == split for key in per_seed)]
rows = {(row["method"], row["split"], row["metric"]): row for row in results["results"]}


def mean_std(values):
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


lines = ["| variant | loss | regularizer | " + " | ".join(f"{args.relation} {split} acc (n)" for split in splits)
         + " | " + " | ".join(f"{split} {metric.replace('_rate', '')}" for split, metric in SPLIT_METRICS) + " |",
         "|" + "---|" * (3 + len(splits) + len(SPLIT_METRICS))]
for name, (constraint_loss, regularizer) in VARIANTS.items():
    cells = []
    for split in splits:
        seeds = per_seed.get((name, split), {})
        accuracies = [np.mean(verdicts) for verdicts in seeds.values()]
        cells.append(f"{mean_std(accuracies)} ({len(next(iter(seeds.values()), []))})" if seeds else "–")
    for split, metric in SPLIT_METRICS:
        row = rows.get((name, split, metric))
        cells.append("–" if row is None else f"{row['mean']:.2f} ± {row['std']:.2f}")
    lines.append(f"| {name} | {'on' if constraint_loss else 'off'} | {'on' if regularizer else 'off'} | "
                 + " | ".join(cells) + " |")
table = "\n".join(lines) + f"\n\n{args.seeds} seeds, quick configuration; mean ± std over seeds.\n"
with open(os.path.join(args.out, "ablation.md"), "w", encoding="utf-8") as stream:
    stream.write(table)
print(table)
print(f"wrote {args.out}/ablation.md")
