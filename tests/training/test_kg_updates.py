"""`update_knowledge`: fine-tuned generators that read a KG follow counterfactual edits with no training."""

import numpy as np
import pytest

from kfine.errors import KfineError
from kfine.evaluation.edits import edit_rates, evaluate_edits
from kfine.knowledge.graph import KnowledgeGraph
from kfine.training.baseline import fine_tune_baseline
from kfine.training.knowledge import fine_tune_knowledge
from kfine.training.knowledge_add import fine_tune_knowledge_add

EDITS = 10


@pytest.fixture(scope="module")
def knowledge_generator(people_task, pretrained_dir, tmp_path_factory):
    return fine_tune_knowledge(people_task, pretrained_dir, seed=0, log_dir=str(tmp_path_factory.mktemp("tb")),
                               quick=True)


def _answers(generator, task):
    return generator.generate([prompt.text for prompt, _ in task.evaluation_prompts("heldout")])


def test_knowledge_follows_edits_and_is_restored(people_task, knowledge_generator):
    before = _answers(knowledge_generator, people_task)
    outcome = evaluate_edits(knowledge_generator, people_task, [EDITS])[f"edit-{EDITS}"]
    rates = edit_rates(outcome["scores"])
    assert len(outcome["scores"]["efficacy"]) == EDITS
    assert rates["efficacy"] >= 0.9 and not np.isnan(rates["paraphrase_efficacy"]), rates  # tiny LM: paraphrase is weak
    assert rates["old_fact_rate"] <= 0.1 and rates["neighbourhood"] >= 0.9, rates
    assert _answers(knowledge_generator, people_task) == before  # the model's own KG is back


def test_knowledge_refuses_entities_it_has_no_row_for(knowledge_generator):
    with pytest.raises(KfineError, match="no row for"):
        knowledge_generator.update_knowledge(KnowledgeGraph([("Alda Varenko", "plays", "tuba")]))


def test_knowledge_refuses_other_fact_counts(people_task, knowledge_generator):
    fewer = KnowledgeGraph(people_task.model_graph.triples[1:])
    with pytest.raises(ValueError, match="keep the number of facts of each relation"):
        knowledge_generator.update_knowledge(fewer)


def test_knowledge_add_follows_edits_baseline_does_not(people_task, pretrained_dir, tmp_path, short_baseline):
    added = fine_tune_knowledge_add(people_task, pretrained_dir, seed=0, log_dir=str(tmp_path / "a"), quick=True)
    baseline = fine_tune_baseline(people_task, pretrained_dir, seed=0, log_dir=str(tmp_path / "b"), quick=True)
    followed = edit_rates(evaluate_edits(added, people_task, [EDITS])[f"edit-{EDITS}"]["scores"])
    ignored = edit_rates(evaluate_edits(baseline, people_task, [EDITS])[f"edit-{EDITS}"]["scores"])
    assert not hasattr(baseline, "update_knowledge")
    # The tiny LM (1 layer, d=32) separates subjects' hidden states only partly: the edited facts
    # come out 4 of 10 (measured 0.4; a no-op update_knowledge gives 0.0, as the baseline does).
    assert followed["efficacy"] >= 0.4, followed
    assert ignored["efficacy"] <= followed["efficacy"] - 0.4 and ignored["neighbourhood"] == 1.0
    assert not np.isnan(ignored["old_fact_rate"])
