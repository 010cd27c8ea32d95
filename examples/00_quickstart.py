"""Quick start: the bundled KG, the shipped pretrained model, and one benchmark run.

Run from the repository root after `make install` (or inside `make demo`'s .venv):

    .venv/bin/python examples/00_quickstart.py
"""


import kfine
from kfine.bench import run_bench
from kfine.datasets.geonames import default_kg_files
from kfine.models.shipped import shipped_model_path

files = default_kg_files()  # writes the geonames KG once into ~/.cache/kfine
graph = kfine.KnowledgeGraph.from_files(files["triples"], files["aliases"])
print(graph, "| capital of France:", graph.objects("France", "capital"))

# The shipped pretrained model is a keras-hub GPT-2 preset; kfine wraps it in a keras.Sequential
# subclass with the preset's own tokenizer (no custom_objects, safe_mode stays on).
model = kfine.load_model(shipped_model_path())
print(kfine.generate(model, ["The capital of France is", "Osaka is a city in"]))

# Baseline MLE fine-tuning measured on seen / held-out / unknown / paraphrase facts.
results = run_bench(files, shipped_model_path(), ["baseline"], seeds=1, out_dir="runs/quickstart", quick=True)
for row in results["results"]:
    if row["metric"] == "accuracy":
        print(f"{row['method']:>10} {row['split']:>10} accuracy {row['mean']:.2f}")
