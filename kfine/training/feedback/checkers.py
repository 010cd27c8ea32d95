"""The checker a factcheck method feeds back, and how well the neural one learned the facts."""

import json
import os

import numpy as np

from kfine.errors import KfineError
from kfine.factcheck.claims import corrupt_triples, labelled_claims
from kfine.factcheck.fact_checker import train_fact_checker
from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.models.loading import copy_model

CHECKERS = ("neural", "kg")
CHECKER_QUICK_EPOCHS = 6
CHECKER_FULL_EPOCHS = 8


def check_checker_kind(kind):
    """KfineError (one line) unless `kind` is one of `CHECKERS`."""
    if kind not in CHECKERS:
        raise KfineError(f"--checker must be one of {', '.join(CHECKERS)}. Received: {kind!r}")


def build_checker(kind, task, language_model, seed=0, log_dir=None, quick=False, verbose=0):
    """The checker a factcheck method feeds back: `"neural"` or `"kg"`.

    The neural checker starts from a copy of `language_model` (after the
    MLE stage it has read the finetune facts) and learns the finetune facts
    against corruptions. It is evaluated on corruptions it never saw, of the
    same facts, with the training templates and with the reserved
    paraphrases; the results go to `log_dir/checker_evaluation.json`.

    Returns:
        `(checker, evaluation)`; `evaluation` is None for the KG checker.
    """
    check_checker_kind(kind)
    graph = task.model_graph
    if kind == "kg":
        return KnowledgeGraphChecker(graph, task.templates), None
    # `train_fact_checker` reseeds the copy's dropout with `seed`.
    checker, seen_corruptions = train_fact_checker(
        copy_model(language_model), graph, task.templates, task.finetune_triples,
        epochs=CHECKER_QUICK_EPOCHS if quick else CHECKER_FULL_EPOCHS, seed=seed,
        log_dir=os.path.join(log_dir, "checker") if log_dir else None, verbose=verbose)
    evaluation = evaluate_checker(checker, task, seen_corruptions, seed)
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "checker_evaluation.json"), "w", encoding="utf-8") as stream:
            json.dump(evaluation, stream, indent=2)
    return checker, evaluation


def evaluate_checker(checker, task, seen_corruptions, seed=0, negatives_per_fact=4):
    """Accuracy, AUROC and agreement with the KG checker on new corruptions of the finetune facts.

    Returns:
        `{which: {"accuracy", "auroc", "claims", "agreement_with_kg"}}` for
        `which` in `"training"` (training templates) and `"paraphrase"`.
    """
    graph = task.model_graph
    corruptions = corrupt_triples(graph, task.finetune_triples, negatives_per_fact, seed=seed + 1,
                                  exclude=seen_corruptions)
    exact = KnowledgeGraphChecker(graph, task.templates)
    evaluation = {}
    for which in ("training", "paraphrase"):
        sentences, labels = labelled_claims(task.verbalizer, task.finetune_triples, corruptions, which=which)
        if not sentences:
            continue
        scores = checker.evaluate_claims(sentences, labels)
        neural = [verdict.label for verdict in checker.check(sentences)]
        reference = [verdict.label for verdict in exact.check(sentences)]
        scores["agreement_with_kg"] = float(np.mean([a == b for a, b in zip(neural, reference)]))
        evaluation[which] = scores
    return evaluation
