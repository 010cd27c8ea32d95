import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfine.errors import KfineError
from kfine.knowledge import KnowledgeGraph, Splits
from kfine.knowledge.splits import GROUPS


def linked_graph(num_subjects=200, seed=0):
    """Subjects with attributes and links to other subjects (like neighbours)."""
    rng = np.random.default_rng(seed)
    triples = []
    for index in range(num_subjects):
        triples.append((f"country {index}", "continent", f"continent {index % 5}"))
        for other in rng.choice(num_subjects, size=3, replace=False):
            if other != index:
                triples.append((f"country {index}", "neighbour", f"country {other}"))
    return KnowledgeGraph(triples)


KG = linked_graph()


def test_same_seed_same_splits():
    first, second = Splits.by_subject(KG, seed=3), Splits.by_subject(KG, seed=3)
    for group in GROUPS:
        assert first.triples(group) == second.triples(group)
    assert Splits.by_subject(KG, seed=4).heldout != first.heldout


def test_groups_partition_the_facts_by_subject():
    splits = Splits.by_subject(KG, seed=0)
    assert sorted(splits.pretrain + splits.finetune + splits.heldout + splits.unknown) == KG.triples
    for group in GROUPS:
        assert splits.triples(group) == sorted(splits.triples(group))
        assert {subject for subject, _, _ in splits.triples(group)} == set(splits.subjects(group))
        assert all(splits.group_of(subject) == group for subject in splits.subjects(group))
    sizes = [len(splits.subjects(group)) for group in GROUPS]
    assert sizes == [100, 40, 40, 20]


def test_fractions_order_does_not_matter_and_groups_may_be_left_out():
    default = Splits.by_subject(KG, seed=1)
    reordered = Splits.by_subject(
        KG, seed=1, fractions={"unknown": 0.1, "heldout": 0.2, "finetune": 0.2, "pretrain": 0.5}
    )
    assert reordered.heldout == default.heldout
    no_unknown = Splits.by_subject(KG, seed=1, fractions={"pretrain": 0.8, "heldout": 0.2})
    assert no_unknown.unknown == [] and no_unknown.finetune == []
    assert no_unknown.model_graph == KG


def test_model_graph_lacks_only_unknown_facts():
    splits = Splits.by_subject(KG, seed=0)
    model_triples = set(splits.model_graph.triples)
    assert not model_triples & set(splits.unknown)
    assert model_triples == set(KG.triples) - set(splits.unknown)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), graph_seed=st.integers(0, 100))
def test_hidden_subjects_appear_in_no_training_triple(seed, graph_seed):
    splits = Splits.by_subject(linked_graph(60, graph_seed), seed=seed)
    hidden = set(splits.subjects("heldout")) | set(splits.subjects("unknown"))
    for group in ("pretrain", "finetune"):
        training = splits.training_triples(group)
        assert set(training) <= set(splits.triples(group))
        assert not {name for subject, _, obj in training for name in (subject, obj)} & hidden


def test_training_triples_drop_only_facts_about_hidden_subjects():
    splits = Splits.by_subject(KG, seed=0)
    hidden = set(splits.subjects("heldout")) | set(splits.subjects("unknown"))
    dropped = set(splits.pretrain) - set(splits.training_triples("pretrain"))
    assert dropped and all(obj in hidden for _, _, obj in dropped)


def test_custom_assignment():
    kg = KnowledgeGraph([("a", "r", "b"), ("b", "r", "c"), ("c", "r", "a")])
    splits = Splits(kg, {"a": "pretrain", "b": "heldout", "c": "unknown", "z": "finetune"})
    assert splits.heldout == [("b", "r", "c")]
    assert splits.training_triples("pretrain") == []  # a's only fact names held-out b
    assert splits.model_graph.triples == [("a", "r", "b"), ("b", "r", "c")]
    assert splits.group_of("z") is None
    assert repr(splits) == "<Splits pretrain=1 finetune=0 heldout=1 unknown=1>"


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: Splits.by_subject(KG, fractions={"train": 1.0}), "unknown split groups ['train']"),
        (lambda: Splits.by_subject(KG, fractions={"pretrain": 0.5}), "must sum to 1"),
        (lambda: Splits.by_subject(KG, fractions={"pretrain": 1.5, "heldout": -0.5}), "non-negative"),
        (lambda: Splits.by_subject(KG).training_triples("heldout"), "Received: group='heldout'"),
        (lambda: Splits.by_subject(KG).subjects("test"), "Received: group='test'"),
        (lambda: Splits(KnowledgeGraph([("a", "r", "b")]), {}), "1 subjects have no group, e.g. 'a'"),
        (lambda: Splits(KnowledgeGraph([("a", "r", "b")]), {"a": "train"}), "unknown group 'train'"),
    ],
)
def test_invalid_arguments_raise(call, expected):
    with pytest.raises(KfineError) as info:
        call()
    assert expected in str(info.value)
