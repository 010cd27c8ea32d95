"""`kfine check` and `kfine finetune --checker`, as a user runs them."""

import os
import subprocess
import sys

from kfine.cli import main
from kfine.factcheck.fact_checker import FactChecker
from kfine.models.loading import load_model

COMMAND = [sys.executable, "-m", "kfine.cli"]


def test_check_prints_the_verdict_and_probability_of_each_sentence(pretrained_dir, tmp_path):
    checker = FactChecker(load_model(pretrained_dir))
    directory = str(tmp_path / "checker")
    checker.save_to(directory)
    sentences = ["Alda Varenko was born in Mirefall.", "Alda Varenko plays the oboe."]
    result = subprocess.run([*COMMAND, "check", "--model", directory, *sentences], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, verdict in zip(lines, checker.check(sentences)):
        assert line == f"neural: {verdict.label:<13} P(supported)={verdict.probability:.3f}  {verdict.sentence}"


def test_checker_flag_belongs_to_the_factcheck_methods(tmp_path, capsys):
    assert main(["finetune", "--method", "baseline", "--checker", "kg", "--out", str(tmp_path / "out")]) == 2
    assert "--checker applies to the factcheck methods" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")
