"""`kfine.perf.timing`: the order of the rounds and the estimators (fake contenders, no real timing)."""

import pytest

from kfine.perf.timing import interleaved, min_ratio, paired_ratio


def test_each_round_starts_one_contender_later():
    calls = []
    functions = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timings = interleaved(functions, repeats=4)
    assert calls == list("abc" "bca" "cab" "abc")
    for timing in timings.values():
        assert len(timing["all"]) == len(timing["cpu_all"]) == 4
        assert timing["min_seconds"] == min(timing["all"])
        assert timing["min_cpu_seconds"] == min(timing["cpu_all"])


def test_before_each_runs_before_every_call():
    calls = []
    interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2,
                before_each=lambda: calls.append("-"))
    assert calls == ["-", "a", "-", "b", "-", "b", "-", "a"]


def _timings(**rounds):
    return {
        name: {"all": walls, "cpu_all": [2 * wall for wall in walls], "min_seconds": min(walls),
               "min_cpu_seconds": 2 * min(walls)}
        for name, walls in rounds.items()
    }


def test_paired_ratio_is_the_median_of_the_per_round_ratios():
    # Round 2 was a fast spell for the plain model only: 1.2 / 1.0 would be its minimum's ratio.
    timings = _timings(injected=[1.1, 1.2, 1.1, 1.05, 1.1], plain=[1.0, 0.8, 1.0, 1.0, 1.0])
    assert paired_ratio(timings, "injected", "plain") == pytest.approx(1.1)
    assert paired_ratio(timings, "injected", "plain", cpu=True) == pytest.approx(1.1)
    assert min_ratio(timings, "injected", "plain") == pytest.approx(1.05 / 0.8)
    assert min_ratio(timings, "injected", "plain", cpu=True) == pytest.approx(1.05 / 0.8)
