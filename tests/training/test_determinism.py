"""The same seed gives the same fine-tuned weights and the same metrics (on CPU)."""

import numpy as np
import pytest

from kfine.training import knowledge
from kfine.training.finetune import fine_tune, load_fine_tuned


@pytest.mark.slow
def test_same_seed_same_metrics_and_weights(people_task, pretrained_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(knowledge, "QUICK_EPOCHS", 3)
    runs = []
    for name in ("first", "second"):
        out = str(tmp_path / name)
        metadata = fine_tune(people_task, pretrained_dir, "knowledge", out, seed=3, quick=True, verbose=0)
        runs.append((metadata["results"], load_fine_tuned(out).model.get_weights()))
    (results, weights), (again, weights_again) = runs
    assert results == again
    assert any(rates["accuracy"] > 0 for rates in results.values())  # the runs learned something to compare
    for first, second in zip(weights, weights_again, strict=True):
        np.testing.assert_array_equal(first, second)
