"""`FactChecker` on the people KG: it learns facts against corruptions, and saves and loads exactly."""

import os

import keras
import numpy as np
import pytest

from kfine.errors import ModelError
from kfine.factcheck.claims import corrupt_triples, labelled_claims
from kfine.factcheck.fact_checker import FactChecker, load_fact_checker, train_fact_checker
from kfine.models.loading import load_model


@pytest.fixture(scope="module")
def trained(people_task, pretrained_dir):
    return train_fact_checker(load_model(pretrained_dir), people_task.model_graph, people_task.templates,
                              people_task.finetune_triples, epochs=20, negatives_per_fact=3, batch_size=16,
                              learning_rate=3e-3, seed=0)


def test_it_separates_facts_from_corruptions_it_saw(people_task, trained):
    checker, corruptions = trained
    sentences, labels = labelled_claims(people_task.verbalizer, people_task.finetune_triples, corruptions)
    scores = checker.evaluate_claims(sentences, labels)
    assert scores["claims"] == len(labels)
    assert scores["auroc"] >= 0.9, scores
    verdicts = checker.check(sentences[:3])
    assert all(0.0 <= verdict.probability <= 1.0 for verdict in verdicts)
    assert [verdict.label for verdict in verdicts] == [
        "supported" if p >= 0.5 else "refuted" for p in checker.probabilities(sentences[:3])]


def test_new_corruptions_are_scored_below_the_facts_on_average(people_task, trained):
    checker, seen = trained
    new = corrupt_triples(people_task.model_graph, people_task.finetune_triples, 2, seed=7, exclude=seen)
    facts = checker.probabilities(people_task.verbalizer.sentences(people_task.finetune_triples))
    corrupted = checker.probabilities(people_task.verbalizer.sentences(new))
    # Corruptions the checker never saw are a harder test than those it trained against: on this tiny
    # model it separates them by ~0.1 (0.78 vs 0.66 once every weight started from its own draw; the
    # earlier 0.2 margin held for a start where several weights shared one).
    assert facts.mean() > corrupted.mean() + 0.08, (facts.mean(), corrupted.mean())


def test_saved_checker_loads_in_safe_mode_with_identical_outputs(trained, tmp_path):
    checker, _ = trained
    directory = os.path.join(tmp_path, "checker")
    checker.save_to(directory, metadata={"seed": 0})
    restored = load_fact_checker(directory)
    assert isinstance(restored, FactChecker)
    token_ids = checker.encode(["Alda Varenko was born in Mirefall.", "Alda Varenko plays the harp."])
    np.testing.assert_allclose(checker(token_ids), restored(token_ids), atol=1e-5)
    plain = keras.models.load_model(os.path.join(directory, "model.keras"), safe_mode=True)
    np.testing.assert_allclose(checker(token_ids), plain(token_ids), atol=1e-5)


def test_a_language_model_is_no_fact_checker(pretrained_dir):
    with pytest.raises(ModelError, match="not a kfine fact checker"):
        load_fact_checker(pretrained_dir)
    with pytest.raises(ValueError, match="dropout=1.5"):
        FactChecker(load_model(pretrained_dir), dropout=1.5)
