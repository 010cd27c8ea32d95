"""`KnowledgeGraphChecker` and corruptions on the people KG: exact verdicts, every template shape."""

import pytest

from kfine.factcheck.claims import corrupt_triples, labelled_claims
from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.factcheck.verdict import NOT_IN_KG, REFUTED, SUPPORTED
from kfine.knowledge.templates import Templates


@pytest.fixture(scope="module")
def checker(people_task):
    return KnowledgeGraphChecker(people_task.model_graph, people_task.templates)


def a_fact(task, relation, group="finetune"):
    return next(triple for triple in task.splits.triples(group) if triple[1] == relation)


@pytest.mark.parametrize("relation", ["born_in", "works_for", "plays"])
def test_every_template_of_a_fact_is_supported(people_task, checker, relation):
    subject, _, obj = a_fact(people_task, relation)
    for template in people_task.templates.templates(relation):  # paraphrases too
        verdict = checker.check_one(Templates.fill(template, subject, obj))
        assert (verdict.label, verdict.subject, verdict.relation, verdict.entity) == (SUPPORTED, subject, relation, obj)
        assert verdict.probability == 1.0


def test_another_entity_of_the_range_is_refuted(people_task, checker):
    subject, relation, obj = a_fact(people_task, "works_for")
    other = sorted(people_task.model_graph.relation_range(relation) - {obj})[0]
    verdict = checker.check_one(f"{subject} is employed by {other} now.")  # suffix after {object}
    assert (verdict.label, verdict.entity, verdict.probability) == (REFUTED, other, 0.0)


def test_decoded_spacing_case_and_aliases_are_read_like_the_metric(people_task, checker):
    graph = people_task.model_graph
    aliased = [(s, r, o) for s, r, o in people_task.splits.finetune if graph.aliases(o)]
    assert aliased, "the people KG's finetune split should hold a fact whose object has an alias"
    subject, relation, obj = aliased[0]
    template = people_task.templates.templates(relation)[0]
    # Decoded text: lower case, the alias for the name, a space before the period.
    sentence = Templates.fill(template, subject.lower(), sorted(graph.aliases(obj))[0]).replace(".", " .")
    verdict = checker.check_one(sentence)
    assert (verdict.label, verdict.subject, verdict.entity) == (SUPPORTED, subject, obj)


def test_a_non_entity_answer_is_refuted_and_unknown_facts_are_not_in_the_kg(people_task, checker):
    subject, _, _ = a_fact(people_task, "plays")
    assert checker.check_one(f"{subject} plays the kazoo.").label == REFUTED
    unknown_subject, _, unknown_object = a_fact(people_task, "plays", group="unknown")
    # The model's KG lacks the unknown split's facts: the checker cannot judge them.
    assert checker.check_one(f"{unknown_subject} plays the {unknown_object}.").label == NOT_IN_KG
    assert checker.check_one(f"{subject} plays the unknown.").label == NOT_IN_KG  # abstention
    assert checker.check_one("Nobody we know plays anything.").label == NOT_IN_KG
    assert checker.check_one(f"{subject} played the harp.").label == NOT_IN_KG  # no template


def test_corruptions_are_false_new_and_in_the_range(people_task):
    graph = people_task.model_graph
    triples = people_task.finetune_triples
    first = corrupt_triples(graph, triples, per_fact=2, seed=0)
    second = corrupt_triples(graph, triples, per_fact=2, seed=1, exclude=first)
    assert len(first) == 2 * len(triples)
    assert not set(first) & set(second)
    for subject, relation, obj in first + second:
        assert obj not in graph.objects(subject, relation)
        assert obj in graph.relation_range(relation)
    sentences, labels = labelled_claims(people_task.verbalizer, triples, first)
    assert len(sentences) == len(labels) and labels.sum() == len(people_task.verbalizer.sentences(triples))
    with pytest.raises(ValueError, match="per_fact=0"):
        corrupt_triples(graph, triples, per_fact=0, seed=0)
