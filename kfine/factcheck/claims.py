"""Claims a fact checker learns from: verbalized KG facts and their corruptions."""

import numpy as np


def corrupt_triples(knowledge_graph, triples, per_fact, seed, exclude=()):
    """Corrupts facts by replacing the object with another entity of the relation's range.

    A corruption `(subject, relation, other)` never states a fact of
    `knowledge_graph` (`other` is not among `objects(subject, relation)`), so
    it is refuted there. Relations with a small range give fewer corruptions.

    Args:
        knowledge_graph: `KnowledgeGraph`. Defines ranges and what is true.
        triples: list of `(subject, relation, object)` facts to corrupt.
        per_fact: int. Corruptions per fact, at most.
        seed: int. Seeds the draw.
        exclude: collection of triples never to return (e.g. the corruptions
            a checker trained on, so an evaluation set holds new ones).

    Returns:
        A list of corrupted triples, unique, in the order of `triples`.

    Example:

    >>> corrupt_triples(kg, [("France", "capital", "Paris")], per_fact=1, seed=0)  # doctest: +SKIP
    [('France', 'capital', 'Lima')]
    """
    if not isinstance(per_fact, int) or per_fact < 1:
        raise ValueError(f"`per_fact` must be a positive int. Received: per_fact={per_fact}")
    rng = np.random.default_rng(seed)
    ranges = {relation: sorted(knowledge_graph.relation_range(relation)) for relation in knowledge_graph.relations}
    excluded = set(exclude)
    corruptions, chosen = [], set()
    for subject, relation, _ in triples:
        true_objects = knowledge_graph.objects(subject, relation)
        candidates = [
            other for other in ranges[relation]
            if other not in true_objects
            and (subject, relation, other) not in excluded
            and (subject, relation, other) not in chosen
        ]
        for index in rng.permutation(len(candidates))[:per_fact]:
            corruption = (subject, relation, candidates[index])
            chosen.add(corruption)
            corruptions.append(corruption)
    return corruptions


def labelled_claims(verbalizer, triples, corruptions, which="training"):
    """Sentences of facts (label 1) and of corruptions (label 0).

    Args:
        verbalizer: `Verbalizer`.
        triples: list of true triples.
        corruptions: list of corrupted triples.
        which: str. The templates to verbalize with (see `Verbalizer.sentences`).

    Returns:
        `(sentences, labels)`: a list of str and an int32 array of 0/1.
    """
    supported = verbalizer.sentences(triples, which=which)
    refuted = verbalizer.sentences(corruptions, which=which)
    labels = np.array([1] * len(supported) + [0] * len(refuted), "int32")
    return supported + refuted, labels
