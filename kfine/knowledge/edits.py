"""Counterfactual KG edits (CounterFact-style): a fact's object replaced by another of its relation."""

import typing

import numpy as np

from kfine.errors import KfineError
from kfine.knowledge.graph import KnowledgeGraph


class Edit(typing.NamedTuple):
    """`(subject, relation)` now answers `new` instead of `old`."""

    subject: str
    relation: str
    old: str
    new: str


def counterfactual_edits(knowledge_graph, count, seed=0):
    """Returns `count` edits of `knowledge_graph`, each a fact with a new object of the same relation.

    Only questions with one answer are edited (a single object for the
    subject and relation), so "the answer is the new object" is unambiguous;
    the new object is drawn uniformly from the relation's other objects (never
    the subject). The order is seeded, and the edits for a smaller `count`
    are the first ones for a larger count, so 1, 100 and 1000 edits nest.

    Args:
        knowledge_graph: `KnowledgeGraph`.
        count: int. Number of edits.
        seed: int.

    Raises:
        KfineError: the graph has fewer than `count` editable facts.
    """
    ranges = {relation: knowledge_graph.relation_range(relation) for relation in knowledge_graph.relations}
    candidates = [(subject, relation, obj) for subject, relation, obj in knowledge_graph.triples
                  if len(knowledge_graph.objects(subject, relation)) == 1 and len(ranges[relation]) > 1]
    if count > len(candidates):
        raise KfineError(f"edits: {count} requested, but the knowledge graph has only {len(candidates)} facts whose "
                         "question has one answer and whose relation has another object to give")
    rng = np.random.default_rng([seed, 4])
    edits = []
    for index in rng.permutation(len(candidates))[:count]:
        subject, relation, old = candidates[index]
        others = sorted(ranges[relation] - {old, subject})
        if others:
            edits.append(Edit(subject, relation, old, others[rng.integers(len(others))]))
    return edits


def apply_edits(knowledge_graph, edits):
    """Returns a new `KnowledgeGraph` with each edit's old fact replaced by the new one.

    Aliases are kept for the entities still in the graph.
    """
    old_facts = {(edit.subject, edit.relation, edit.old) for edit in edits}
    triples = [triple for triple in knowledge_graph.triples if triple not in old_facts]
    triples += [(edit.subject, edit.relation, edit.new) for edit in edits]
    entities = {subject for subject, _, _ in triples} | {obj for _, _, obj in triples}
    aliases = [(entity, alias) for entity, alias in knowledge_graph.alias_pairs if entity in entities]
    return KnowledgeGraph(triples, aliases, name=f"{knowledge_graph.name}+{len(edits)}-edits")


def triple_ids_in(reference, knowledge_graph):
    """`knowledge_graph`'s facts as `(subject, relation, object)` ids of `reference`, an int array `(n, 3)`.

    A model built on `reference` keeps its entity and relation ids; this maps
    an edited graph onto them.

    Raises:
        KfineError: `knowledge_graph` names an entity or relation `reference` lacks.
    """
    unknown = sorted({name for subject, _, obj in knowledge_graph.triples for name in (subject, obj)
                      if not reference.has_entity(name)})
    if unknown:
        raise KfineError(f"knowledge graph: {len(unknown)} entities the model has no row for (e.g. {unknown[0]!r}); "
                         "an update may only use the entities of the KG the model was trained with")
    relations = [relation for relation in knowledge_graph.relations if not reference.has_relation(relation)]
    if relations:
        raise KfineError(f"knowledge graph: relation {relations[0]!r} is not one the model was trained with")
    return np.array([(reference.entity_id(subject), reference.relation_id(relation), reference.entity_id(obj))
                     for subject, relation, obj in knowledge_graph.triples], np.int64).reshape(-1, 3)
