"""tf.distribute: MirroredStrategy over two logical CPUs, MultiWorkerMirroredStrategy over two processes.

Logical devices and multi-worker collectives must be configured before
TensorFlow initializes, so each case runs in a fresh Python process.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kfine.errors import KfineError
from kfine.training.strategy import STRATEGIES, make_strategy

# Mirrored vs one device: the loss of a step is the mean over replicas of each
# replica's mean token loss, not the mean over all tokens of the batch (padding
# differs between the halves), so the curves agree closely but not bit for bit.
LOSS_CURVE_TOLERANCE = 0.01  # relative, per epoch (measured: 0.2%)
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    from kfine.knowledge.task import FactTask
    from kfine.models.causal_lm import build_causal_lm
    from kfine.models.loading import load_model
    from kfine.training.mle import train_mle
    from kfine.training.strategy import make_strategy, strategy_scope

    pretrained, triples, templates = sys.argv[1:4]
    task = FactTask.from_files(triples, templates)
    tokenizer = load_model(pretrained).tokenizer
    curves, weights, replicas = {}, {}, {}
    for name in ("default", "mirrored"):
        strategy = make_strategy(name)
        replicas[name] = strategy.num_replicas_in_sync
        with strategy_scope(strategy):
            keras.utils.set_random_seed(0)  # same initial weights and data order in both runs
            model = build_causal_lm(tokenizer.vocabulary, dropout=0.0, num_layers=1, hidden_dim=32, num_heads=2,
                                    intermediate_dim=64, sequence_length=32)
            history = train_mle(model, task.finetune_sentences, epochs=4, batch_size=16, learning_rate=2e-3,
                                seed=0, verbose=0)
        curves[name] = history.history["loss"]
        weights[name] = [float(abs(w).sum()) for w in model.get_weights()]
    print("RESULT " + json.dumps({"curves": curves, "weights": weights, "replicas": replicas}))
    """
)


def _run(script, *arguments, env=None, timeout=600):
    return subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True,
                          cwd=REPOSITORY, env=env, timeout=timeout)


def _result(process):
    assert process.returncode == 0, process.stderr[-3000:]
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, process.stdout[-2000:] + process.stderr[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device(people_kg_files, pretrained_dir):
    result = _result(_run(MIRRORED_SCRIPT, pretrained_dir, people_kg_files["triples"], people_kg_files["templates"]))
    assert result["replicas"] == {"default": 1, "mirrored": 2}
    one, two = np.array(result["curves"]["default"]), np.array(result["curves"]["mirrored"])
    assert len(one) == len(two) == 4
    assert one[-1] < one[0] - 0.1  # it trained
    np.testing.assert_allclose(two, one, rtol=LOSS_CURVE_TOLERANCE)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_multiworker_fine_tune_with_two_workers_on_localhost(people_kg_files, pretrained_dir, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        command = [sys.executable, "-m", "kfine.cli", "finetune", "--strategy", "multiworker", "--method", "knowledge",
                   "--quick", "--model", pretrained_dir, "--triples", people_kg_files["triples"],
                   "--templates", people_kg_files["templates"], "--out", str(tmp_path / f"worker{index}")]
        processes.append(subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env={**os.environ, "TF_CONFIG": json.dumps(tf_config)}))
    outputs = [process.communicate(timeout=900) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "saved " in stdout
    from kfine.models.loading import load_metadata
    from kfine.training.finetune import load_fine_tuned

    weights = [load_fine_tuned(str(tmp_path / f"worker{index}")).model.get_weights() for index in range(2)]
    assert len(weights[0]) == len(weights[1]) > 10
    for first, second in zip(*weights):
        np.testing.assert_allclose(first, second, rtol=1e-6, atol=1e-6)
    results = [load_metadata(str(tmp_path / f"worker{index}"))["results"] for index in range(2)]
    assert results[0] == results[1]
    assert results[0]["seen"]["accuracy"] > 0.5  # it learned, on both


def test_unknown_strategy_is_refused():
    with pytest.raises(KfineError, match="--strategy must be one of"):
        make_strategy("parallel")
    assert STRATEGIES == ("default", "mirrored", "multiworker", "tpu")
