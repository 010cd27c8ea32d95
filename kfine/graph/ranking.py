"""Filtered rank-based link-prediction metrics (PyKEEN's protocol), in NumPy."""

import numpy as np

HITS_AT = (1, 3, 10)


def realistic_rank(scores, answer, true_answers):
    """The filtered rank of `answer` among all candidates.

    Other true answers (`true_answers` minus `answer`) are removed first;
    the rank is 1 + the number of better candidates + half the number of
    equally scored ones (PyKEEN's "realistic" rank: the mean of the
    optimistic and pessimistic ranks).

    Args:
        scores: float array `(num_entities,)`; higher is more plausible.
        answer: int. The true entity being ranked.
        true_answers: iterable of int. Every entity that makes a known true fact here.

    Returns:
        float, at least 1.

    Example:

    >>> realistic_rank(np.array([0.9, 0.5, 0.7, 0.5]), answer=1, true_answers=[1, 2])
    2.5
    """
    scores = np.asarray(scores, dtype=np.float64).copy()
    target = scores[answer]
    others = [other for other in true_answers if other != answer]
    scores[others] = -np.inf
    better = np.sum(scores > target)
    ties = np.sum(scores == target) - 1
    return 1.0 + better + ties / 2.0


def rank_summary(ranks):
    """Returns `mrr`, `mean_rank`, `hits_at_{1,3,10}` and `num_ranks` of a list of ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    summary = {"mrr": float(np.mean(1.0 / ranks)), "mean_rank": float(np.mean(ranks)), "num_ranks": int(len(ranks))}
    summary.update({f"hits_at_{k}": float(np.mean(ranks <= k)) for k in HITS_AT})
    return summary
