import math

import pytest

from kfine.evaluation.confidence import auroc, calibration_report, expected_calibration_error, risk_coverage
from kfine.evaluation.metrics import ABSTAINED, CORRECT, HALLUCINATED


def test_auroc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_zero():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0


def test_auroc_counts_ties_half_and_matches_the_pair_count():
    # Pairs (correct, wrong): (0.8, 0.8) tie = 0.5, (0.8, 0.3) = 1, (0.4, 0.8) = 0, (0.4, 0.3) = 1 -> 2.5 / 4.
    assert auroc([0.8, 0.4, 0.8, 0.3], [True, True, False, False]) == pytest.approx(0.625)


def test_auroc_without_both_classes_is_nan():
    assert math.isnan(auroc([0.5, 0.7], [True, True]))


def test_expected_calibration_error_known_values():
    # Bin [0.9, 1]: confidence 0.95, accuracy 0.5 -> 0.45 on 2 of 4; bin [0.2, 0.3): 0.25 vs 0 -> 0.25 on 2 of 4.
    value = expected_calibration_error([0.95, 0.95, 0.25, 0.25], [True, False, False, False])
    assert value == pytest.approx((2 * 0.45 + 2 * 0.25) / 4)
    # Perfectly calibrated: 80% sure and right 4 times in 5.
    assert expected_calibration_error([0.8] * 5, [True, True, True, True, False]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0], [True]) == 0.0  # 1.0 falls in the last bin


def test_risk_coverage_answers_less_and_hallucinates_less_as_the_threshold_rises():
    confidences = [0.9, 0.7, 0.5, 0.3, 0.99]
    verdicts = [CORRECT, HALLUCINATED, CORRECT, HALLUCINATED, ABSTAINED]
    curve = risk_coverage(confidences, verdicts)
    assert [point["threshold"] for point in curve] == [0.0, 0.3, 0.5, 0.7, 0.9]
    everything = curve[0]
    assert everything["coverage"] == 0.8  # the abstention is no answer
    assert everything["hallucination_rate"] == 0.4
    assert everything["selective_risk"] == 0.5
    at_half = curve[2]
    assert at_half["coverage"] == pytest.approx(0.6)
    assert at_half["hallucination_rate"] == pytest.approx(0.2)
    assert at_half["accuracy"] == pytest.approx(0.4)
    assert at_half["selective_risk"] == pytest.approx(1 / 3)
    assert curve[-1]["selective_risk"] == 0.0 and curve[-1]["coverage"] == pytest.approx(0.2)


def test_calibration_report_per_split_seed_and_the_known_union():
    records = []
    for seed in (0, 1):
        records += [
            {"method": "m", "seed": seed, "split": "seen", "verdict": CORRECT, "confidence": 0.9},
            {"method": "m", "seed": seed, "split": "heldout", "verdict": HALLUCINATED, "confidence": 0.2},
            {"method": "m", "seed": seed, "split": "heldout", "verdict": CORRECT, "confidence": 0.1 + 0.5 * seed},
            {"method": "m", "seed": seed, "split": "heldout", "verdict": ABSTAINED, "confidence": 0.99},
            {"method": "chance", "seed": seed, "split": "seen", "verdict": CORRECT, "confidence": None},
        ]
    report = calibration_report(records)
    assert set(report) == {"m"}  # records without a confidence are left out
    union = report["m"]["seen+heldout"]
    # Seed 0: correct {0.9, 0.1} vs wrong {0.2} -> 0.5; seed 1: {0.9, 0.6} vs {0.2} -> 1.0.
    assert union["auroc"]["mean"] == pytest.approx(0.75)
    assert union["auroc"]["std"] == pytest.approx(0.25)
    assert union["answers"] == 6
    assert report["m"]["seen"]["auroc"]["mean"] is None  # only correct answers there: undefined
