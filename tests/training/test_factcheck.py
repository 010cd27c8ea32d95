"""Fact-check feedback: the losses, the rounds, and the `factcheck` method end to end on the people KG."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from kfine.cli import main
from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.knowledge.templates import Templates
from kfine.models.loading import load_model
from kfine.training import factcheck
from kfine.training.factcheck import FactCheckFineTuner, prompt_references
from kfine.training.feedback.config import FeedbackConfig
from kfine.training.feedback.losses import preference_loss, token_log_probs, unlikelihood_loss
from kfine.training.feedback.round_data import _divergence
from kfine.training.finetune import fine_tune, load_fine_tuned


def test_unlikelihood_loss_is_minus_log_one_minus_p_on_masked_tokens():
    probabilities = np.array([[0.5, 0.9, 0.2]], "float32")
    mask = np.array([[1.0, 0.0, 1.0]], "float32")
    loss = unlikelihood_loss(tf.math.log(probabilities), mask)
    np.testing.assert_allclose(loss, (-np.log(0.5) - np.log(0.8)) / 2, rtol=1e-5)
    assert float(unlikelihood_loss(tf.math.log(probabilities), np.zeros_like(mask))) == 0.0
    assert np.isfinite(float(unlikelihood_loss(tf.zeros((1, 1)), tf.ones((1, 1)))))  # p = 1 stays finite


def test_preference_loss_is_dpo_and_ignores_padding_pairs():
    chosen, rejected = tf.constant([-1.0, -5.0]), tf.constant([-3.0, -1.0])
    chosen_reference, rejected_reference = tf.constant([-2.0, -5.0]), tf.constant([-2.0, -1.0])
    loss = preference_loss(chosen, rejected, chosen_reference, rejected_reference, tf.constant([1.0, 0.0]), 0.5)
    np.testing.assert_allclose(loss, np.log1p(np.exp(-0.5 * (1.0 - (-1.0)))), rtol=1e-5)


def test_divergence_is_the_first_token_no_reference_shares():
    references = [[2, 7, 8, 9, 3], [2, 7, 8, 10, 11, 3]]
    assert _divergence([2, 7, 8, 10, 12, 3], references, prompt_length=3) == 4
    assert _divergence([2, 7, 8, 13, 3], references, prompt_length=3) == 3
    assert _divergence([2, 7, 8, 9, 3], references, prompt_length=3) is None


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="rounds=0"):
        FeedbackConfig(rounds=0)
    with pytest.raises(ValueError, match="beta=0"):
        FeedbackConfig(beta=0)


def test_a_round_lowers_the_probability_of_refuted_tokens(people_task, pretrained_dir, tmp_path):
    # The pretrained model has never read the finetune facts, so many samples are refuted.
    model = load_model(pretrained_dir)
    checker = KnowledgeGraphChecker(people_task.model_graph, people_task.templates)
    config = FeedbackConfig(rounds=1, samples_per_prompt=2, epochs_per_round=2, unlikelihood_weight=2.0,
                            preference_weight=1.0, learning_rate=2e-3, batch_size=16)
    tuner = FactCheckFineTuner(model, checker, config, seed=0, log_dir=str(tmp_path))
    references = prompt_references(people_task)
    prompts = list(references)
    samples = tuner._sample(prompts, round_index=0)
    verdicts = checker.check([sentence for _, sentence, _ in samples])
    data, counts = tuner._training_data(samples, verdicts, {
        prompt: model.tokenizer.encode_batch(rows, add_eos=True) for prompt, rows in references.items()})
    assert counts["unlikelihood_rows"] > 0 and counts["preference_pairs"] == counts["unlikelihood_rows"]
    batch = next(iter(data))
    before = tf.reduce_sum(token_log_probs(model, batch["negatives"]) * batch["negative_mask"])
    history = tuner.fit(references)
    after = tf.reduce_sum(token_log_probs(model, batch["negatives"]) * batch["negative_mask"])
    assert float(after) < float(before)
    stats = history[0]
    assert stats["samples"] == len(prompts) * 2 and 0 < stats["refuted_share"] <= 1
    assert {"mle_loss", "unlikelihood_loss", "preference_loss", "checker_mean_probability"} <= set(stats)
    assert glob.glob(os.path.join(tmp_path, "feedback", "events.out.tfevents.*"))


@pytest.mark.slow
def test_factcheck_method_with_the_kg_checker_saves_and_reloads(people_task, pretrained_dir, tmp_path,
                                                                short_baseline, monkeypatch, capsys):
    # The method's plumbing, not its accuracy: a 3-epoch MLE stage and one short round.
    monkeypatch.setattr(factcheck, "QUICK_FEEDBACK", FeedbackConfig(rounds=1, samples_per_prompt=1,
                                                                    epochs_per_round=1))
    out_dir = str(tmp_path / "factcheck")
    metadata = fine_tune(people_task, pretrained_dir, "factcheck", out_dir, quick=True, verbose=0,
                         method_options={"checker": "kg"})
    assert metadata["method_options"] == {"checker": "kg"}
    assert set(metadata["results"]) == {"seen", "heldout", "unknown", "paraphrase"}
    assert os.path.isfile(os.path.join(out_dir, "templates.json"))
    assert not os.path.exists(os.path.join(out_dir, "fact_checker"))  # the KG checker is no model
    prompts = [prompt.text for prompt, _ in people_task.evaluation_prompts("seen")][:4]
    assert all(load_fine_tuned(out_dir).generate(prompts))
    subject, relation, obj = people_task.finetune_triples[0]
    sentence = Templates.fill(people_task.templates.templates(relation)[0], subject, obj)
    # In-process: test_check_cli runs `kfine check` in a subprocess.
    capsys.readouterr()
    assert main(["check", "--model", out_dir, sentence]) == 0
    assert capsys.readouterr().out.splitlines() == [f"    kg: supported     P(supported)=1.000  {sentence}"]
