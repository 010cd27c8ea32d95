"""Reference rows: what knowing nothing, or knowing only the subject, scores.

A table that says 1.00 means little without the level a trivial answerer
reaches on the same prompts. Two references, computed exactly (expected
values, no sampling) from the model's KG, so they need no model:

- `chance`: knows the subject but not the relation: picks one of the
  subject's facts in the model KG uniformly and answers its object. A
  subject with no fact there (every `unknown` subject) gets a uniform pick
  among the relation's objects instead.
- `majority`: knows the relation but not the subject: answers the most
  frequent object of the relation in the model KG.

Neither abstains, so hallucination = 1 - accuracy, and both only ever name KG
entities (invalid-entity rate 0).
"""

import collections

import numpy as np

REFERENCES = ("chance", "majority")


def reference_correctness(model_graph, prompts_with_gold):
    """Returns `{reference: float array}`: each prompt's probability of a correct answer.

    Args:
        model_graph: `KnowledgeGraph`. The KG the methods get.
        prompts_with_gold: list of `(Prompt, gold_objects)`.
    """
    facts_of_subject = collections.defaultdict(list)
    object_counts = collections.defaultdict(collections.Counter)
    for subject, relation, obj in model_graph.triples:
        facts_of_subject[subject].append(obj)
        object_counts[relation][obj] += 1
    # Ties broken by name, so the reference does not depend on triple order.
    majority = {relation: min(counts, key=lambda obj: (-counts[obj], obj))
                for relation, counts in object_counts.items()}
    chance, most_frequent = [], []
    for prompt, gold in prompts_with_gold:
        candidates = facts_of_subject.get(prompt.subject) or list(object_counts[prompt.relation].elements())
        chance.append(sum(obj in gold for obj in candidates) / len(candidates) if candidates else 0.0)
        most_frequent.append(float(majority.get(prompt.relation) in gold))
    return {"chance": np.array(chance), "majority": np.array(most_frequent)}


def reference_rates(correctness):
    """The four rates of a reference from its per-prompt correctness, as per-prompt arrays."""
    return {
        "accuracy": correctness,
        "hallucination_rate": 1.0 - correctness,
        "abstention_rate": np.zeros_like(correctness),
        "invalid_entity_rate": np.zeros_like(correctness),
    }
