"""Adversarial fine-tuning on the tiny people model: each network moves the right way, finitely, under XLA."""

import glob
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.knowledge.task import FactTask, TaskSize
from kfine.knowledge.templates import Templates
from kfine.models.discriminator import SequenceDiscriminator, build_discriminator, knowledge_match
from kfine.training import adversarial, baseline
from kfine.training.adversarial import AdversarialFineTuner, adversarial_dataset, adversarial_examples
from kfine.training.divergence_guard import DivergenceGuard
from kfine.training.probe import ProbeSlice

ANSWER_LENGTH = 2  # each answer token is one more LM pass to trace


@pytest.fixture(autouse=True)
def seeded():
    # The discriminators draw their initial weights from Keras's global
    # generator: seed it, so that no test depends on what ran before it in
    # the process (one failed only after the perf tests had run).
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="module")
def examples(people_task, people_tokenizer):
    return adversarial_examples(people_task, people_tokenizer, ANSWER_LENGTH, sequence_length=32, corruptions=2)


@pytest.fixture(scope="module")
def probed_task(people_task):
    """The people task training on 3 of its 8 finetune subjects: the other 5 are the probe."""
    return FactTask(people_task.knowledge_graph, people_task.templates, size=TaskSize(finetune_subjects=3))


@pytest.fixture(scope="module")
def probe_examples(probed_task, people_tokenizer):
    probe = ProbeSlice(probed_task)
    return adversarial_examples(probed_task, people_tokenizer, ANSWER_LENGTH, sequence_length=32, corruptions=2,
                                rollout_triples=probe.triples)


def _batch(examples, size=16, seed=0):
    return next(iter(adversarial_dataset(examples, batch_size=size, seed=seed)))


def _fine_tuner(model, **kwargs):
    discriminator = build_discriminator(model, hidden_dim=16, intermediate_dim=32, dropout=0.0)
    return AdversarialFineTuner(model, discriminator, **{"answer_length": ANSWER_LENGTH, "seed": 0, **kwargs})


def test_examples_pair_each_fact_with_corruptions_of_the_same_prompt(examples, people_task, people_tokenizer):
    graph = people_task.model_graph
    rows = len(people_task.finetune_sentences)
    assert examples["token_ids"].shape[0] == rows and examples["corrupted_ids"].shape[:2] == (rows, 2)
    names = {people_tokenizer.decode(people_tokenizer.encode(entity, add_bos=False)): entity
             for entity in graph.entities}
    for index in range(0, rows, 7):
        prompt_length = examples["prompt_length"][index]
        real = examples["token_ids"][index]
        assert real[0] == people_tokenizer.bos_id and people_tokenizer.eos_id in real
        for corrupted in examples["corrupted_ids"][index]:
            np.testing.assert_array_equal(corrupted[:prompt_length], real[:prompt_length])
            assert not np.array_equal(corrupted, real)  # another object of the relation's range
        assert examples["corruption_weight"][index] == 1.0
    # The corruption is a true-looking sentence: a KG entity where the object was.
    prompt = people_tokenizer.decode(examples["token_ids"][0][: examples["prompt_length"][0]])
    sentence = people_tokenizer.decode(examples["corrupted_ids"][0][0])
    assert sentence.startswith(prompt)
    assert any(sentence[len(prompt):].strip().startswith(name) for name in names)


def test_knowledge_match_reads_hard_and_soft_answers():
    # Row 0: two objects, [5, 6] and [7, 0] (one token); row 1: no object.
    knowledge_ids = np.array([[[5, 6], [7, 0]], [[0, 0], [0, 0]]], "int32")
    hard = knowledge_match(np.array([[5, 6], [5, 6]], "int32"), knowledge_ids)
    np.testing.assert_allclose(hard, [1.0, 0.0])
    np.testing.assert_allclose(knowledge_match(np.array([[7, 3], [7, 3]], "int32"), knowledge_ids), [1.0, 0.0])
    np.testing.assert_allclose(knowledge_match(np.array([[5, 3], [5, 6]], "int32"), knowledge_ids), [0.0, 0.0])
    soft = np.zeros((2, 2, 8), "float32")
    soft[:, 0, 5], soft[:, 0, 7], soft[:, 1, 6], soft[:, 1, 1] = 0.6, 0.3, 0.5, 0.5
    # max(p(5) p(6), p(7)) = max(0.3, 0.3)
    np.testing.assert_allclose(knowledge_match(soft, knowledge_ids), [0.3, 0.0], rtol=1e-6)


def test_probe_examples_roll_out_on_probe_prompts_and_spell_their_kg_answers(probe_examples, probed_task,
                                                                             people_tokenizer):
    probe = ProbeSlice(probed_task)
    rows = len(probed_task.verbalizer.statements(probe.triples))
    assert probe_examples["token_ids"].shape[0] == rows == probe_examples["mle_ids"].shape[0]
    prompts = {people_tokenizer.decode(ids[:length]) for ids, length in
               zip(probe_examples["token_ids"], probe_examples["prompt_length"])}
    assert prompts <= set(probe.prompts())
    # The MLE term reads the trained sentences only, each about equally often.
    mle = [people_tokenizer.decode(ids) for ids in probe_examples["mle_ids"]]
    assert set(mle) == {people_tokenizer.decode(people_tokenizer.encode(s)) for s in probed_task.finetune_sentences}
    assert max(map(mle.count, set(mle))) <= min(map(mle.count, set(mle))) + 1
    # A true sentence spells a KG object, a corruption does not.
    positions = probe_examples["prompt_length"][:, None] + np.arange(ANSWER_LENGTH)
    real = knowledge_match(np.take_along_axis(probe_examples["token_ids"], positions, axis=1),
                           probe_examples["knowledge_ids"])
    np.testing.assert_array_equal(real, 1.0)
    for column in range(probe_examples["corrupted_ids"].shape[1]):
        corrupted = np.take_along_axis(probe_examples["corrupted_ids"][:, column], positions, axis=1)
        assert float(np.max(knowledge_match(corrupted, probe_examples["knowledge_ids"]))) == 0.0


def test_knowledge_aware_discriminator_round_trips_and_needs_the_match(tmp_path):
    discriminator = SequenceDiscriminator(vocabulary_size=50, sequence_length=8, hidden_dim=8, intermediate_dim=16,
                                          knowledge_aware=True)
    tokens, match = np.array([[1, 2, 3, 0]], "int32"), np.array([1.0], "float32")
    logits = discriminator(tokens, knowledge_match=match)
    assert float(discriminator.knowledge_weight) == 2.0
    path = str(tmp_path / "discriminator.keras")
    discriminator.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert restored.get_config() == discriminator.get_config()
    np.testing.assert_allclose(restored(tokens, knowledge_match=match), logits, atol=1e-6)
    with pytest.raises(ValueError, match="knowledge_match=None"):
        discriminator(tokens)


def _held_out_rows(examples, rows):
    return {key: value[rows] for key, value in examples.items()}


@pytest.mark.parametrize("knowledge_aware", [True, False])
def test_a_knowledge_aware_discriminator_tells_true_answers_for_subjects_it_never_read(
        tiny_model, probe_examples, probed_task, knowledge_aware):
    # Trained on the facts of some probe subjects, judged on the others': only the KG can tell those.
    subjects = ProbeSlice(probed_task).subjects
    statements = probed_task.verbalizer.statements(ProbeSlice(probed_task).triples)
    trained_rows = np.array([statement.subject in subjects[:3] for statement in statements])
    tiny_model.trainable = False
    discriminator = build_discriminator(tiny_model, hidden_dim=16, intermediate_dim=32, dropout=0.0,
                                        knowledge_aware=knowledge_aware)
    fine_tuner = AdversarialFineTuner(tiny_model, discriminator, answer_length=ANSWER_LENGTH, mle_weight=0.0, seed=0)
    fine_tuner.compile(discriminator_optimizer=keras.optimizers.Adam(1e-2))
    _fit(fine_tuner, _held_out_rows(probe_examples, trained_rows), epochs=10)
    unseen = _held_out_rows(probe_examples, ~trained_rows)
    positions = unseen["prompt_length"][:, None] + np.arange(ANSWER_LENGTH)
    window = np.arange(unseen["token_ids"].shape[1])[None] < positions[:, -1:] + 1

    def d(token_ids):
        token_ids = np.where(window, token_ids, 0)
        match = knowledge_match(np.take_along_axis(token_ids, positions, axis=1), unseen["knowledge_ids"])
        return float(np.mean(keras.ops.sigmoid(discriminator(token_ids, knowledge_match=match if knowledge_aware
                                                             else None))))

    gap = d(unseen["token_ids"]) - d(unseen["corrupted_ids"][:, 0])
    print(knowledge_aware, gap)
    if knowledge_aware:
        assert gap > 0.3
    else:
        assert gap < 0.15


def _fit(fine_tuner, examples, epochs):
    history = fine_tuner.fit(adversarial_dataset(examples, batch_size=16), epochs=epochs, verbose=0, shuffle=False)
    return history.history


def test_discriminator_learns_when_the_generator_is_frozen(tiny_model, examples):
    tiny_model.trainable = False
    fine_tuner = _fine_tuner(tiny_model, mle_weight=0.0)
    fine_tuner.compile(discriminator_optimizer=keras.optimizers.Adam(1e-2))
    weights_before = [w.numpy().copy() for w in tiny_model.weights]
    gaps = _fit(fine_tuner, examples, epochs=12)["d_gap"]
    assert gaps[-1] > gaps[0] + 0.15, gaps
    for before, after in zip(weights_before, tiny_model.weights):
        np.testing.assert_array_equal(before, after.numpy())


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
def test_generator_raises_d_fake_when_the_discriminator_is_frozen(tiny_model, examples, estimator):
    fine_tuner = _fine_tuner(tiny_model, mle_weight=0.0, estimator=estimator)
    fine_tuner.discriminator.trainable = False
    # A random discriminator with a strong (arbitrary) preference to climb,
    # centred so that D(real) starts near 0.5 and D(fake) has room to rise.
    classifier = fine_tuner.discriminator.classifier
    classifier.kernel.assign(classifier.kernel * 10.0)
    real_logits = fine_tuner.discriminator(_batch(examples)["token_ids"])
    classifier.bias.assign(classifier.bias - tf.reduce_mean(real_logits))
    # REINFORCE's estimate is noisier: it gets a larger step.
    fine_tuner.compile(generator_optimizer=keras.optimizers.Adam(1e-2 if estimator == "gumbel" else 3e-2))
    weights_before = [w.numpy().copy() for w in fine_tuner.discriminator.weights]
    d_fake = _fit(fine_tuner, examples, epochs=15)["d_fake"]
    assert np.mean(d_fake[-3:]) > np.mean(d_fake[:3]) + 0.02, d_fake
    for before, after in zip(weights_before, fine_tuner.discriminator.weights):
        np.testing.assert_array_equal(before, after.numpy())


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
def test_gradients_are_finite(tiny_model, examples, estimator):
    fine_tuner = _fine_tuner(tiny_model, estimator=estimator, generator_loss="minimax", label_smoothing=0.1)
    values, generator_gradients, discriminator_gradients = fine_tuner.compute_gradients(_batch(examples))
    for gradients, variables in ((generator_gradients, tiny_model.trainable_variables),
                                 (discriminator_gradients, fine_tuner.discriminator.trainable_variables)):
        assert len(gradients) == len(variables)
        assert all(gradient is not None for gradient in gradients)
        gradients = [tf.convert_to_tensor(gradient).numpy() for gradient in gradients]  # embeddings give IndexedSlices
        assert all(np.isfinite(gradient).all() for gradient in gradients)
        assert sum(np.abs(gradient).sum() for gradient in gradients) > 0
    assert all(np.isfinite(value.numpy()) for value in values.values())
    assert 0 <= values["d_corrupted"] <= 1


@pytest.mark.parametrize("knowledge_aware", [False, True])
def test_the_train_step_compiles_with_xla(tiny_model, probe_examples, knowledge_aware):
    examples = probe_examples
    discriminator = build_discriminator(tiny_model, hidden_dim=16, intermediate_dim=32, dropout=0.0,
                                        knowledge_aware=knowledge_aware)
    fine_tuner = AdversarialFineTuner(tiny_model, discriminator, answer_length=ANSWER_LENGTH, seed=0)
    fine_tuner.compile(jit_compile=True)
    assert fine_tuner.jit_compile
    generator_before = [w.numpy().copy() for w in tiny_model.trainable_weights]
    discriminator_before = [w.numpy().copy() for w in fine_tuner.discriminator.trainable_weights]
    logs = fine_tuner.train_on_batch(_batch(examples), return_dict=True)
    assert all(math.isfinite(value) for value in logs.values()), logs
    assert set(logs) >= {"d_loss", "g_loss", "mle_loss", "d_real", "d_fake", "d_gap", "d_corrupted", "temperature",
                         "wrong_rollouts"}
    for before, variables in ((generator_before, tiny_model.trainable_weights),
                              (discriminator_before, fine_tuner.discriminator.trainable_weights)):
        assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def test_the_gumbel_temperature_decays_to_its_floor(tiny_model):
    fine_tuner = _fine_tuner(tiny_model, temperature=2.0, min_temperature=0.5, temperature_decay=0.1)
    fine_tuner.compile()
    assert float(fine_tuner.current_temperature()) == pytest.approx(2.0)
    fine_tuner.optimizer.iterations.assign(5)
    assert float(fine_tuner.current_temperature()) == pytest.approx(2.0 * math.exp(-0.5), rel=1e-5)
    fine_tuner.optimizer.iterations.assign(1000)
    assert float(fine_tuner.current_temperature()) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"answer_length": 0}, "answer_length=0"),
        ({"estimator": "ppo"}, "estimator='ppo'"),
        ({"generator_loss": "wasserstein"}, "generator_loss='wasserstein'"),
        ({"mle_weight": -1.0}, "mle_weight=-1.0"),
        ({"label_smoothing": 0.5}, "label_smoothing=0.5"),
        ({"temperature": 0.3, "min_temperature": 0.5}, "temperature=0.3, min_temperature=0.5"),
    ],
)
def test_invalid_arguments_are_quoted(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _fine_tuner(tiny_model, **kwargs)


def test_divergence_guard_stops_and_restores_the_last_good_weights(tiny_model, tmp_path, capsys):
    fine_tuner = _fine_tuner(tiny_model)
    checkpoint = os.path.join(tmp_path, "last_good.weights.h5")
    guard = DivergenceGuard(monitor=["g_loss", "mle_loss"], max_increase={"mle_loss": 5.0}, checkpoint_path=checkpoint)
    guard.set_model(fine_tuner)
    guard.on_train_begin()
    guard.on_epoch_end(0, {"g_loss": 0.7, "mle_loss": 2.0})
    good = [w.numpy().copy() for w in fine_tuner.weights]
    assert os.path.exists(checkpoint)
    for variable in tiny_model.trainable_weights:
        variable.assign(variable + 1.0)
    guard.on_train_batch_end(3, {"g_loss": float("nan"), "mle_loss": 2.1})
    assert fine_tuner.stop_training
    assert "g_loss = nan is not finite" in guard.stop_message and "after epoch 1" in guard.stop_message
    assert guard.stop_message in capsys.readouterr().err
    for before, after in zip(good, fine_tuner.weights):
        np.testing.assert_array_equal(before, after.numpy())
    guard.on_train_begin()
    guard.on_epoch_end(0, {"g_loss": 0.7, "mle_loss": 2.0})
    guard.on_epoch_end(1, {"g_loss": 3.0, "mle_loss": 11.0})  # g_loss may grow; the MLE loss may not
    assert "mle_loss = 11 exceeds 5.0 x its first-epoch value 2" in guard.stop_message


def test_adversarial_method_logs_to_tensorboard(probed_task, pretrained_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(baseline, "QUICK_EPOCHS", 1)
    monkeypatch.setattr(adversarial, "QUICK_EPOCHS", 2)
    generator = adversarial.fine_tune_adversarial(probed_task, pretrained_dir, seed=0, log_dir=str(tmp_path),
                                                  quick=True)
    prompt = Templates.prompt(probed_task.templates.training_templates("plays")[0], "Alda Varenko")
    assert isinstance(generator.generate([prompt])[0], str)
    scalars, texts = set(), 0
    paths = glob.glob(os.path.join(tmp_path, "adversarial", "**", "events.out.tfevents.*"), recursive=True)
    for path in paths:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "text":
                    texts += 1
                else:
                    scalars.add(value.tag)
    assert {"epoch_d_gap", "epoch_d_real", "epoch_d_fake", "epoch_temperature", "epoch_g_loss",
            "epoch_wrong_rollouts", "epoch_probe_hallucination"} <= scalars, paths
    assert texts == 2  # one table of sample generations per epoch
    with open(os.path.join(tmp_path, "adversarial", "history.json"), encoding="utf-8") as stream:
        history = json.load(stream)
    assert 0 <= history["probe_hallucination_before"] <= 1 and len(history["epochs"]) == 2
    # The tiny LM never read the probe subjects: most rollouts are wrong, which is what there is to learn from.
    assert history["epochs"][0]["wrong_rollouts"] >= 0.3
    assert {"d_gap", "probe_hallucination", "wrong_rollouts"} <= set(history["epochs"][-1])
