"""`kfine bench --edits`: the edit-N splits in results.json, results.md and judgements.jsonl."""

import json
import math
import os

from kfine.bench import run_bench
from kfine.evaluation.edits import EDIT_METRICS


def test_edit_splits_are_reported(people_kg_files, pretrained_dir, tmp_path, short_baseline):
    out_dir = str(tmp_path / "out")
    results = run_bench(people_kg_files, pretrained_dir, ["baseline"], 1, out_dir, quick=True, echo=lambda line: None,
                        edits=[5, 1])
    assert results["config"]["edits"] == [1, 5]
    rows = {(row["method"], row["split"], row["metric"]): row for row in results["results"]}
    for count in (1, 5):
        for metric in EDIT_METRICS:
            row = rows["baseline", f"edit-{count}", metric]
            assert row["n_prompts"] == count and row["n_seeds"] == 1
        # The baseline reads no KG: nothing it says changes, so its neighbours answer as before.
        neighbourhood = rows["baseline", f"edit-{count}", "neighbourhood"]["mean"]
        assert neighbourhood == 1.0 or math.isnan(neighbourhood)  # NaN: no unedited subject shares the old object
    assert rows["baseline", "edit-5", "efficacy"]["mean"] <= 0.2
    with open(os.path.join(out_dir, "results.md"), encoding="utf-8") as stream:
        table = stream.read()
    assert "| baseline | 5 | 5 |" in table and "efficacy" in table
    with open(os.path.join(out_dir, "judgements.jsonl"), encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream]
    efficacy = [record for record in records if record["split"] == "edit-5/efficacy"]
    assert len(efficacy) == 5
    assert (sum(record["verdict"] == "correct" for record in efficacy) / 5
            == rows["baseline", "edit-5", "efficacy"]["mean"])
