"""Knowledge constraints: a KG regularizer and a constraint loss in training, KG-constrained decoding.

Run from the repository root after `make install` (or inside `make demo`'s .venv):

    .venv/bin/python examples/02_knowledge_constraints.py

It fine-tunes the shipped model with the `constraint` method (knowledge
injection + TransE regularizer + semantic constraint loss, one seed, the
quick configuration: a few minutes on a CPU), then answers the same
questions with and without KG-constrained decoding. Without it the model
invents answers for subjects its KG has no facts about; with it, it says
"unknown".
"""

from kfine.datasets.geonames import default_kg_files
from kfine.evaluation.evaluate import evaluate_splits
from kfine.knowledge.task import QUICK, SPLITS, FactTask
from kfine.layers import KnowledgeConstraintRegularizer, KnowledgeInjectionLayer
from kfine.models.constrained_decoding import constrained
from kfine.models.loading import on_pretraining_split
from kfine.models.shipped import shipped_model_path
from kfine.training.constraint import fine_tune_constraint

files = default_kg_files()
pretrained = shipped_model_path()
task = FactTask.from_files(**files, size=QUICK)
# The shipped model was pretrained on this KG: reuse its split, so held-out subjects stay unseen.
task = on_pretraining_split(task, pretrained)
graph = task.model_graph  # the KG a method may use: the unknown split's facts are not in it

# The pieces, as a Keras user writes them: the regularizer goes on the KG encoder's entity table.
regularizer = KnowledgeConstraintRegularizer(graph, strength=0.1, margin=1.0, seed=0)
layer = KnowledgeInjectionLayer(graph, mode="gated", embeddings_regularizer=regularizer)
print(layer.name, "regularized by", type(layer.encoder.embeddings_regularizer).__name__)

# The `constraint` method puts them together (and the semantic loss on the fact pointer).
generator = fine_tune_constraint(task, pretrained, seed=0, log_dir="runs/constraints", quick=True, verbose=2)
guarded = constrained(generator, graph, task.templates, abstention="unknown")

questions = [prompt for split in ("heldout", "unknown", "paraphrase")
             for prompt, _ in task.evaluation_prompts(split)[:2]]
for prompt, plain, checked in zip(questions, generator.generate([q.text for q in questions]),
                                  guarded.generate([q.text for q in questions])):
    print(f"{prompt.text!r}\n    free: {plain!r}\n    constrained: {checked!r}")

for name, candidate in (("free", generator), ("constrained", guarded)):
    evaluation = evaluate_splits(candidate, task, SPLITS)
    print(name.rjust(12), "  ".join(
        f"{split}: acc {rates['accuracy']:.2f} halluc. {rates['hallucination_rate']:.2f} "
        f"invalid {rates['invalid_entity_rate']:.2f}" for split, (rates, _) in evaluation.items()))
print("TensorBoard: tensorboard --logdir runs/constraints (loss, constraint_loss per epoch)")
