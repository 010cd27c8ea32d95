"""`kfine finetune` killed with SIGKILL mid-epoch resumes from its last backup and finishes."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from kfine.training.finetune import fine_tune

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The resumed run replays the interrupted epoch from the weights of its last
# backup and sees later epochs in another shuffle order, so its answers may
# differ from an uninterrupted run's by a few prompts (of 24 per split).
RATE_TOLERANCE = 0.15
QUICK_EPOCHS = 8  # kfine.training.knowledge.QUICK_EPOCHS


def _finetune_command(kg, model, out):
    return [sys.executable, "-m", "kfine.cli", "finetune", "--method", "knowledge", "--quick", "--model", model,
            "--triples", kg["triples"], "--templates", kg["templates"], "--out", out, "--checkpoint-every", "1"]


def _progress(backup_dir):
    try:
        with open(os.path.join(backup_dir, "fit", "state", "progress.json"), encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_resumes_and_matches_an_uninterrupted_run(people_kg_files, pretrained_dir,
                                                                               tmp_path):
    killed_out, whole_out = str(tmp_path / "killed"), str(tmp_path / "whole")
    options = {"cwd": REPOSITORY, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    whole = subprocess.Popen(_finetune_command(people_kg_files, pretrained_dir, whole_out), **options)
    killed = subprocess.Popen(_finetune_command(people_kg_files, pretrained_dir, killed_out), **options)
    hang_guard = time.time() + 600  # not a speed check: only stops a hung child from blocking the suite
    # Wait for a backup saved after a batch of the third epoch, then kill.
    while (_progress(killed_out + "-backup") or {}).get("epoch", 0) < 2:
        assert killed.poll() is None, killed.communicate()[1][-3000:]
        if time.time() > hang_guard:
            killed.kill()
            pytest.fail("the fine-tune wrote no third-epoch backup in 10 minutes: hung?")
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    saved_epoch = _progress(killed_out + "-backup")["epoch"]
    assert not os.path.exists(killed_out)  # nothing half-written where the model goes

    rerun = subprocess.run(_finetune_command(people_kg_files, pretrained_dir, killed_out), timeout=600, **options)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    epochs_run = [int(number) for number in re.findall(r"^Epoch (\d+)/8$", rerun.stdout, re.MULTILINE)]
    assert epochs_run[0] == saved_epoch + 1 > 1, rerun.stdout  # resumed, not started over
    assert epochs_run[-1] == QUICK_EPOCHS
    assert not os.path.exists(killed_out + "-backup")  # deleted once the model is saved

    stdout, stderr = whole.communicate(timeout=600)
    assert whole.returncode == 0, stderr[-3000:]
    with open(os.path.join(killed_out, "training.json"), encoding="utf-8") as stream:
        resumed = json.load(stream)["results"]
    with open(os.path.join(whole_out, "training.json"), encoding="utf-8") as stream:
        uninterrupted = json.load(stream)["results"]
    assert uninterrupted["seen"]["accuracy"] > 0.5
    for split, rates in uninterrupted.items():
        for metric, value in rates.items():
            assert abs(resumed[split][metric] - value) <= RATE_TOLERANCE, (split, metric, resumed, uninterrupted)


def test_a_backup_of_another_run_is_refused(people_task, pretrained_dir, tmp_path):
    from kfine.errors import KfineError

    out = str(tmp_path / "model")
    os.makedirs(out + "-backup")
    with open(os.path.join(out + "-backup", "run.json"), "w", encoding="utf-8") as stream:
        json.dump({"method": "knowledge", "seed": 7}, stream)
    with pytest.raises(KfineError, match="holds the backup of another run"):
        fine_tune(people_task, pretrained_dir, "knowledge", out, seed=0, quick=True, verbose=0)
    assert not os.path.exists(out)
