"""Train on a Beam-sampled subgraph instead of the whole KG, and compare held-out accuracy.

The corpus is what a deployment sees: the fine-tuning sentences and the
held-out questions. `kfine.graph.sample` (TF-GNN's Beam sampler, in the graph
stage's process) keeps the k-hop subgraph around the entities it mentions;
the knowledge method is then fine-tuned once with the whole KG and once with
the sample, same split and seed, for each seed, and both are scored on the
held-out facts that lie inside the sample. The sample does not depend on the
training seed: it is drawn once (or reused from an earlier run's
`OUT/sample` with `--sample`).

    python examples/graph_sampled_training.py --out runs/graph_sample [--seed 0,1,2] [--hops 1] \
        [--sample runs/graph_sample/sample]
"""

import argparse
import json
import os

import kfine.graph
from kfine.datasets.geonames import default_kg_files
from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import CORRECT, mean_and_std, rates
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.task import QUICK, FactTask
from kfine.models.loading import on_pretraining_split
from kfine.models.shipped import shipped_model_path
from kfine.training.methods import get_method


class SubgraphTask(FactTask):
    """`task` with `model_graph` (the only KG a method may use) replaced by `graph`."""

    def __init__(self, task, graph):
        super().__init__(task.knowledge_graph, task.templates, split_seed=task.split_seed, size=task.size)
        self._model_graph = graph

    @property
    def model_graph(self):
        return self._model_graph


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", default="0", help="training seed(s), comma-separated")
    parser.add_argument("--hops", type=int, default=1)
    parser.add_argument("--sample-size", type=int, default=64)
    parser.add_argument("--sample",
                        help="reuse this `kfine kg sample` output (e.g. an earlier OUT/sample) instead of sampling")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seed.split(",")]

    files = default_kg_files()
    pretrained = shipped_model_path()
    task = on_pretraining_split(FactTask.from_files(files["triples"], files["templates"], files["aliases"],
                                                    size=QUICK), pretrained)
    heldout = task.evaluation_prompts("heldout")
    os.makedirs(args.out, exist_ok=True)
    corpus = os.path.join(args.out, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as stream:
        stream.writelines(f"{line}\n" for line in [*task.finetune_sentences, *(prompt.text for prompt, _ in heldout)])
    if args.sample:
        sampled = KnowledgeGraph.load(os.path.join(args.sample, "knowledge_graph"))
        if not set(sampled.triples) <= set(task.model_graph.triples):
            parser.error(f"--sample {args.sample}: not a sample of the model KG (it has facts the model KG lacks)")
    else:
        sampled = kfine.graph.sample(task.model_graph, corpus, os.path.join(args.out, "sample"),
                                     hops=args.hops, sample_size=args.sample_size)
    print(f"whole model KG {task.model_graph!r}; sample {sampled!r}")

    inside = [(prompt, gold) for prompt, gold in heldout
              if gold & (sampled.objects(prompt.subject, prompt.relation)
                         if sampled.has_entity(prompt.subject) else set())]
    print(f"{len(inside)} of {len(heldout)} held-out prompts ask a fact inside the sample")
    results = {"sample": {"path": args.sample or os.path.join(args.out, "sample"), "entities": sampled.num_entities,
                          "triples": sampled.num_triples, "of_triples": task.model_graph.num_triples},
               "prompts_inside": len(inside), "prompts": len(heldout), "seeds": {}}
    for seed in seeds:
        results["seeds"][seed] = {}
        for name, run_task in (("whole", task), ("sample", SubgraphTask(task, sampled))):
            generator = get_method("knowledge")(run_task, pretrained, seed,
                                                 os.path.join(args.out, "logs", f"{name}-{seed}"), quick=True)
            judgements = judge_prompts(generator, task.knowledge_graph, inside)
            # The wrong answers say why the two KGs differ, if they do.
            results["seeds"][seed][name] = {**rates(judgements), "wrong": [
                [judgement.prompt, judgement.answer] for judgement in judgements if judgement.verdict != CORRECT]}
            print(f"seed {seed} {name:>6} KG: held-out accuracy {results['seeds'][seed][name]['accuracy']:.3f} "
                  f"on {len(inside)} prompts inside the sample", flush=True)
    summary = {name: mean_and_std([row[name]["accuracy"] for row in results["seeds"].values()])
               for name in ("whole", "sample")}
    differences = [row["sample"]["accuracy"] - row["whole"]["accuracy"] for row in results["seeds"].values()]
    summary["sample - whole"] = mean_and_std(differences)
    results["accuracy"] = {name: {"mean": mean, "std": std} for name, (mean, std) in summary.items()}
    print("held-out accuracy (mean ± std over seeds): " + ", ".join(
        f"{name} {mean:.3f} ± {std:.3f}" for name, (mean, std) in summary.items()))
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=2)
    print(f"wrote {os.path.join(args.out, 'results.json')}")


if __name__ == "__main__":
    main()
