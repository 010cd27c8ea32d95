"""How well a method's answer confidence tells right answers from wrong ones.

Every generator returns, with each completion, a confidence: its estimate of
P(the answer is correct). Three measures, each over the prompts a method
answered (abstentions are no answer, so they have no right or wrong):

- **AUROC** of confidence against correctness: the chance that a correct
  answer gets a higher confidence than a wrong one (ties count half);
- **expected calibration error** (ECE): answers binned by confidence into
  equal-width bins, the answer-weighted mean of |accuracy - mean confidence|;
- a **risk-coverage curve**: answering only when the confidence reaches a
  threshold (below it, the abstention phrase: `kfine generate
  --min-confidence`), the share of prompts still answered (coverage), the
  hallucination rate over all prompts, and the selective risk, the share of
  answers that are hallucinated.
"""

import numpy as np

from kfine.evaluation.metrics import ABSTAINED, CORRECT, HALLUCINATED, mean_and_std

ECE_BINS = 10
CURVE_POINTS = 50
# The union the acceptance criteria read: prompts whose facts the model saw, and those it reads in its KG.
KNOWN_SPLITS = ("seen", "heldout")


def auroc(confidences, correct):
    """Area under the ROC curve of `confidences` as a score for `correct`; NaN without both classes.

    Example:

    >>> auroc([0.9, 0.8, 0.3], [True, False, False])
    1.0
    """
    confidences = np.asarray(confidences, "float64")
    correct = np.asarray(correct, bool)
    positives, negatives = correct.sum(), (~correct).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    # Mann-Whitney U from average ranks, so tied confidences count half.
    order = np.argsort(confidences, kind="mergesort")
    ranks = np.empty(len(confidences), "float64")
    sorted_values = confidences[order]
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    u = ranks[correct].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def expected_calibration_error(confidences, correct, bins=ECE_BINS):
    """ECE over `bins` equal-width confidence bins (a confidence of 1.0 falls in the last); NaN if empty.

    Example:

    >>> expected_calibration_error([0.9, 0.9], [True, False])
    0.4
    """
    confidences = np.asarray(confidences, "float64")
    correct = np.asarray(correct, "float64")
    if len(confidences) == 0:
        return float("nan")
    which = np.minimum((confidences * bins).astype(int), bins - 1)
    error = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            error += members.sum() * abs(correct[members].mean() - confidences[members].mean())
    return float(error / len(confidences))


def risk_coverage(confidences, verdicts, points=CURVE_POINTS):
    """The risk-coverage curve: one dict per threshold, from answering everything to the most sure.

    Args:
        confidences: floats, one per prompt.
        verdicts: `CORRECT`, `ABSTAINED` or `HALLUCINATED`, one per prompt.
        points: int. At most this many thresholds (quantiles of the
            answers' confidences when they have more distinct values).

    Returns:
        list of `{"threshold", "coverage", "hallucination_rate", "accuracy",
        "selective_risk"}`, thresholds ascending; `selective_risk` is NaN
        when no answer is left.
    """
    confidences = np.asarray(confidences, "float64")
    verdicts = np.asarray(verdicts)
    answered = verdicts != ABSTAINED
    thresholds = np.unique(confidences[answered])
    if len(thresholds) > points:
        thresholds = np.unique(np.quantile(confidences[answered], np.linspace(0, 1, points)))
    curve = []
    for threshold in np.concatenate([[0.0], thresholds]):
        kept = answered & (confidences >= threshold)
        hallucinated = int((kept & (verdicts == HALLUCINATED)).sum())
        curve.append({
            "threshold": float(threshold),
            "coverage": float(kept.mean()) if len(kept) else float("nan"),
            "hallucination_rate": hallucinated / len(kept) if len(kept) else float("nan"),
            "accuracy": float((kept & (verdicts == CORRECT)).mean()) if len(kept) else float("nan"),
            "selective_risk": hallucinated / kept.sum() if kept.any() else float("nan"),
        })
    return curve


def calibration_report(records, groups=None):
    """Confidence measures per method and split from judgements.jsonl records.

    Args:
        records: dicts with `method`, `seed`, `split`, `verdict` and
            `confidence` (records without a confidence are left out).
        groups: dict `{name: splits}`; default each split alone plus
            `"seen+heldout"` (the union of `KNOWN_SPLITS`).

    Returns:
        `{method: {group: {"auroc": {"mean", "std"}, "ece": {"mean", "std"},
        "answers", "risk_coverage"}}}`: AUROC and ECE per seed, then mean
        and std over seeds; `answers` counts the answered prompts over all
        seeds, which the curve pools. Undefined values (an AUROC without
        both right and wrong answers) are None, so the report is plain JSON.
    """
    records = [record for record in records if record.get("confidence") is not None]
    if groups is None:
        splits = list(dict.fromkeys(record["split"] for record in records))
        groups = {split: (split,) for split in splits}
        if all(split in splits for split in KNOWN_SPLITS):
            groups["+".join(KNOWN_SPLITS)] = KNOWN_SPLITS
    report = {}
    for method in dict.fromkeys(record["method"] for record in records):
        report[method] = {}
        for group, splits in groups.items():
            selected = [r for r in records if r["method"] == method and r["split"] in splits]
            if not selected:
                continue
            per_seed = {"auroc": [], "ece": []}
            for seed in sorted({r["seed"] for r in selected}):
                answers = [r for r in selected if r["seed"] == seed and r["verdict"] != ABSTAINED]
                confidences = [r["confidence"] for r in answers]
                correct = [r["verdict"] == CORRECT for r in answers]
                per_seed["auroc"].append(auroc(confidences, correct))
                per_seed["ece"].append(expected_calibration_error(confidences, correct))
            curve = risk_coverage([r["confidence"] for r in selected], [r["verdict"] for r in selected])
            report[method][group] = {
                **{name: _defined(dict(zip(("mean", "std"), mean_and_std(values))))
                   for name, values in per_seed.items()},
                "answers": sum(r["verdict"] != ABSTAINED for r in selected),
                "risk_coverage": [_defined(point) for point in curve],
            }
    return report


def _defined(values):
    """`values` (a dict of floats) with NaN as None."""
    return {name: None if isinstance(value, float) and np.isnan(value) else value for name, value in values.items()}

