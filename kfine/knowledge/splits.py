"""`Splits`: which facts a model may train on, see in its KG, or is tested on."""

import numbers

import numpy as np

from kfine.errors import KfineError

GROUPS = ("pretrain", "finetune", "heldout", "unknown")
TRAINING_GROUPS = ("pretrain", "finetune")
DEFAULT_FRACTIONS = (("pretrain", 0.5), ("finetune", 0.2), ("heldout", 0.2), ("unknown", 0.1))


class Splits:
    """A partition of a knowledge graph's facts into four groups by subject.

    Every subject, with all of its facts, belongs to exactly one group, so a
    subject never leaks from one group into another:

    - `pretrain`: facts the base model learns from text before fine-tuning.
    - `finetune`: facts of the fine-tuning domain ("seen" facts).
    - `heldout`: facts that are in the KG the model gets (`model_graph`) but
      never in training text; answering them measures use of the KG.
    - `unknown`: facts removed from the model's KG and from all training
      text; only the evaluator keeps them, so the honest answer is to abstain.

    Held-out and unknown subjects appear in no training text at all:
    `training_triples` also drops the facts of training subjects whose object
    is a held-out or unknown subject (e.g. a neighbouring country). Those
    facts stay in `model_graph` (except the unknown group's own facts).

    Use `Splits.by_subject` for a seeded random partition, or pass your own
    assignment to the constructor.

    Args:
        knowledge_graph: `KnowledgeGraph`. The full graph, as the evaluator knows it.
        group_of_subject: dict. Maps every subject of the graph to one of
            `"pretrain"`, `"finetune"`, `"heldout"`, `"unknown"`.

    Raises:
        KfineError: a subject has no group or an unknown group.

    Example:

    >>> splits = Splits.by_subject(kg, seed=0)  # doctest: +SKIP
    >>> splits.group_of("France")  # doctest: +SKIP
    'heldout'
    >>> texts = verbalizer.sentences(splits.training_triples("finetune"))  # doctest: +SKIP
    """

    def __init__(self, knowledge_graph, group_of_subject):
        subjects = {subject for subject, _, _ in knowledge_graph.triples}
        missing = sorted(subjects - set(group_of_subject))
        if missing:
            raise KfineError(f"{len(missing)} subjects have no group, e.g. {missing[0]!r}")
        for subject, group in group_of_subject.items():
            if group not in GROUPS:
                raise KfineError(f"subject {subject!r} has the unknown group {group!r}; expected one of {GROUPS}")
        self.knowledge_graph = knowledge_graph
        self._group_of = {subject: group_of_subject[subject] for subject in subjects}
        self._triples = {group: [] for group in GROUPS}
        for triple in knowledge_graph.triples:
            self._triples[self._group_of[triple[0]]].append(triple)
        self.model_graph = knowledge_graph.without(self._triples["unknown"])
        hidden = {subject for subject, group in self._group_of.items() if group not in TRAINING_GROUPS}
        self._training_triples = {
            group: [triple for triple in self._triples[group] if triple[2] not in hidden] for group in TRAINING_GROUPS
        }

    @classmethod
    def by_subject(cls, knowledge_graph, seed=0, fractions=DEFAULT_FRACTIONS):
        """Assigns subjects to groups at random, deterministically given `seed`.

        The sorted subjects are shuffled with `np.random.default_rng(seed)`
        and cut into consecutive runs of the given fractions, in the order of
        `GROUPS` whatever the order of `fractions`.

        Args:
            knowledge_graph: `KnowledgeGraph`.
            seed: int.
            fractions: dict or iterable of `(group, fraction)`. Fractions are
                non-negative and sum to 1; a group left out gets none.

        Returns:
            A `Splits`.

        Raises:
            KfineError: the fractions are invalid.
        """
        fractions = dict(fractions)
        unknown = sorted(set(fractions) - set(GROUPS))
        if unknown:
            raise KfineError(
                f"unknown split groups {unknown}; expected some of {GROUPS}. Received: fractions={fractions}"
            )
        if any(not isinstance(value, numbers.Real) or not value >= 0 for value in fractions.values()):
            raise KfineError(f"split fractions must be non-negative numbers. Received: fractions={fractions}")
        if abs(sum(fractions.values()) - 1.0) > 1e-6:
            raise KfineError(f"split fractions must sum to 1. Received: fractions={fractions}")

        subjects = sorted({subject for subject, _, _ in knowledge_graph.triples})
        order = np.random.default_rng(seed).permutation(len(subjects))
        # Cumulative rounding: group sizes sum to the subject count exactly.
        ends = np.rint(np.cumsum([fractions.get(group, 0.0) for group in GROUPS]) * len(subjects)).astype(int)
        ends[-1] = len(subjects)
        group_of_subject = {}
        start = 0
        for group, end in zip(GROUPS, ends):
            for position in order[start:end]:
                group_of_subject[subjects[position]] = group
            start = end
        return cls(knowledge_graph, group_of_subject)

    def group_of(self, subject):
        """Returns the group of `subject`, or None if it is the subject of no fact."""
        return self._group_of.get(subject)

    def subjects(self, group):
        """Returns the sorted subjects of `group`."""
        self._check_group(group, GROUPS)
        return sorted(subject for subject, assigned in self._group_of.items() if assigned == group)

    def triples(self, group):
        """Returns the sorted facts whose subject is in `group`."""
        self._check_group(group, GROUPS)
        return list(self._triples[group])

    @property
    def pretrain(self):
        return self.triples("pretrain")

    @property
    def finetune(self):
        return self.triples("finetune")

    @property
    def heldout(self):
        return self.triples("heldout")

    @property
    def unknown(self):
        return self.triples("unknown")

    def training_triples(self, group):
        """Returns the facts of `"pretrain"` or `"finetune"` that training text may state.

        These are the group's facts minus those whose object is a held-out
        or unknown subject, which must appear in no training text.
        """
        self._check_group(group, TRAINING_GROUPS)
        return list(self._training_triples[group])

    @staticmethod
    def _check_group(group, allowed):
        if group not in allowed:
            raise KfineError(f"expected a group among {allowed}. Received: group={group!r}")

    def __repr__(self):
        sizes = " ".join(f"{group}={len(self._triples[group])}" for group in GROUPS)
        return f"<Splits {sizes}>"
