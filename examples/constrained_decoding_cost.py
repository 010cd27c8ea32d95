"""What KG-constrained decoding costs: generation time per token with and without it, in one run.

    .venv/bin/python examples/constrained_decoding_cost.py [--prompts 200] [--repeats 3]

The shipped model (a plain `Generator`, every token through the keras-hub
sampler loop) completes the quick bench's held-out and unknown prompts;
each variant is warmed up once (tracing), then the two are timed in turn
`--repeats` times and the fastest run of each is kept, since other
processes on the machine add noise. Time per token = wall time / tokens
generated (`[EOS]` counted), the constrained side including its per-prompt
planning (template match and linking, in Python).
"""

import argparse
import time

from kfine.datasets.geonames import default_kg_files
from kfine.knowledge.task import QUICK, FactTask
from kfine.models.constrained_decoding import constrained
from kfine.models.generation import Generator
from kfine.models.loading import load_model, on_pretraining_split
from kfine.models.shipped import shipped_model_path

MAX_NEW_TOKENS = 16

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--prompts", type=int, default=200, help="prompts per split")
parser.add_argument("--repeats", type=int, default=3)
args = parser.parse_args()

pretrained = shipped_model_path()
task = FactTask.from_files(**default_kg_files(), size=QUICK)
task = on_pretraining_split(task, pretrained)
prompts = [prompt.text for split in ("heldout", "unknown")
           for prompt, _ in task.evaluation_prompts(split)[: args.prompts]]
model = load_model(pretrained)
plain = Generator(model, model.tokenizer)
variants = {"unconstrained": plain, "constrained": constrained(plain, task.model_graph, task.templates)}


def timed(generator):
    started = time.perf_counter()
    completions = generator.generate_ids(prompts, MAX_NEW_TOKENS)
    elapsed = time.perf_counter() - started
    return elapsed, sum(len(ids) + (len(ids) < MAX_NEW_TOKENS) for ids in completions)


for generator in variants.values():
    timed(generator)  # tracing
best = {name: timed(generator) for name, generator in variants.items()}
for _ in range(args.repeats - 1):
    for name, generator in variants.items():
        best[name] = min(best[name], timed(generator))
per_token = {name: 1000 * elapsed / tokens for name, (elapsed, tokens) in best.items()}
for name, (elapsed, tokens) in best.items():
    print(f"{name:>14}: {elapsed:.2f} s for {len(prompts)} prompts, {tokens} tokens, {per_token[name]:.2f} ms/token")
print(f"constrained / unconstrained time per token: {per_token['constrained'] / per_token['unconstrained']:.2f}x")
