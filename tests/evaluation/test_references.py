"""The reference rows and the bootstrap interval, on hand-made data."""

import numpy as np
import pytest

from kfine.evaluation.intervals import bootstrap_interval
from kfine.evaluation.references import reference_correctness, reference_rates
from kfine.knowledge import KnowledgeGraph
from kfine.knowledge.verbalizer import Prompt

MODEL_GRAPH = KnowledgeGraph([
    ("Lyon", "country", "France"),
    ("Lyon", "time_zone", "Europe/Paris"),
    ("Nice", "country", "France"),
    ("Nice", "time_zone", "Europe/Paris"),
    ("Turin", "country", "Italy"),
    ("Turin", "time_zone", "Europe/Rome"),
    ("France", "neighbour", "Italy"),
    ("France", "neighbour", "Spain"),
    ("France", "capital", "Paris"),
])


def _prompt(subject, relation):
    return Prompt(subject, relation, "{subject} {object}", subject, "")


def test_chance_picks_uniformly_among_the_subjects_facts():
    prompts = [
        (_prompt("Lyon", "country"), {"France"}),  # one of Lyon's 2 facts
        (_prompt("France", "neighbour"), {"Italy", "Spain"}),  # 2 of France's 3 facts
        (_prompt("Turin", "country"), {"Germany"}),  # no fact of Turin names Germany
    ]
    chance = reference_correctness(MODEL_GRAPH, prompts)["chance"]
    np.testing.assert_allclose(chance, [1 / 2, 2 / 3, 0.0])


def test_a_subject_absent_from_the_model_graph_gets_the_relations_objects():
    # 2 of the 3 country facts name France.
    chance = reference_correctness(MODEL_GRAPH, [(_prompt("Milan", "country"), {"France"})])["chance"]
    np.testing.assert_allclose(chance, [2 / 3])


def test_majority_answers_the_relations_most_frequent_object():
    prompts = [(_prompt("Milan", "country"), {"France"}), (_prompt("Milan", "time_zone"), {"Europe/Rome"})]
    majority = reference_correctness(MODEL_GRAPH, prompts)["majority"]
    np.testing.assert_allclose(majority, [1.0, 0.0])


def test_reference_rates_add_up_and_never_abstain():
    rates = reference_rates(np.array([0.5, 1.0, 0.0]))
    np.testing.assert_allclose(rates["accuracy"] + rates["hallucination_rate"], 1.0)
    assert not rates["abstention_rate"].any() and not rates["invalid_entity_rate"].any()


def test_bootstrap_interval_holds_the_mean_and_shrinks_with_more_prompts():
    rng = np.random.default_rng(0)
    small = rng.random((3, 20)) < 0.5
    large = rng.random((3, 2000)) < 0.5
    low, high = bootstrap_interval(small)
    assert low <= small.mean() <= high
    large_low, large_high = bootstrap_interval(large)
    assert large_high - large_low < (high - low) / 3


def test_bootstrap_resamples_prompts_not_seeds():
    # Seeds that disagree completely but prompts that all average 0.5: no uncertainty over prompts.
    values = np.array([[1.0, 0.0] * 10, [0.0, 1.0] * 10])
    assert bootstrap_interval(values) == pytest.approx((0.5, 0.5))


def test_bootstrap_of_no_prompt_is_nan():
    assert all(np.isnan(bootstrap_interval(np.zeros((2, 0)))))
