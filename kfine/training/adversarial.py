"""The `adversarial` method: the baseline's MLE fine-tune, then the LM trained against a discriminator.

Here "z" of the GAN objective is a fact prompt plus sampling noise: the
generator continues the prompt for `answer_length` tokens, and the
discriminator compares that window with the true sentence's (and with the
same sentence whose object was swapped for another entity of the relation's
range, labelled fake). The prompts are about the probe slice's subjects
(`kfine.training.probe`: finetune-split subjects kept out of the MLE text),
where the MLE model errs, so its samples differ from the true sentences. The
discriminator is knowledge-aware: it reads whether the answer spells one of
the KG's objects for the question, which text alone cannot tell for a subject
it never read about. The trainer, its objective and estimators are in
`kfine.training.gan.trainer`; its data in `kfine.training.gan.examples`."""

import os

import keras
import numpy as np

from kfine.models.discriminator import build_discriminator
from kfine.models.generation import Generator
from kfine.training.baseline import fine_tune_baseline
from kfine.training.divergence_guard import DivergenceGuard
from kfine.training.gan.examples import adversarial_dataset, adversarial_examples
from kfine.training.gan.probe_hallucination import ProbeHallucination
from kfine.training.gan.trainer import AdversarialFineTuner
from kfine.training.probe import ProbeSlice
from kfine.training.text_samples import TextSamples

MONITORED = ("mle_loss", "d_loss", "g_loss")
# Per-epoch values saved to `log_dir/adversarial/history.json` beside the probe hallucination.
REPORTED = ("wrong_rollouts", "d_real", "d_fake", "d_gap", "d_corrupted", "mle_loss")
# Probe questions judged after each epoch (greedy generation: a few seconds each on a CPU).
PROBE_QUESTIONS = 64

QUICK_EPOCHS = 5
FULL_EPOCHS = 10
# The train step's XLA setting: `kfine bench --perf` measures it both ways
# (`adversarial_step_xla_vs_eager`); see docs/methods/adversarial.md.
JIT_COMPILE = "auto"


def build_adversarial_fine_tuner(model, seed, jit_compile=None):
    """The compiled `AdversarialFineTuner` of the `adversarial` method around `model` (with a new discriminator).

    `kfine bench --perf` times this same trainer, so the method's settings live here once.

    Args:
        jit_compile: bool, "auto" or None (the method's `JIT_COMPILE`).
    """
    fine_tuner = AdversarialFineTuner(model, build_discriminator(model, knowledge_aware=True), answer_length=4,
                                      mle_weight=1.0, adversarial_weight=0.5, label_smoothing=0.1, seed=seed)
    fine_tuner.compile(
        generator_optimizer=keras.optimizers.Adam(1e-4, global_clipnorm=1.0),
        discriminator_optimizer=keras.optimizers.Adam(5e-4, global_clipnorm=1.0),
        jit_compile=JIT_COMPILE if jit_compile is None else jit_compile,
    )
    return fine_tuner


def fine_tune_adversarial(task, pretrained, seed, log_dir, quick=False, verbose=0):
    """The baseline's MLE fine-tune, then adversarial epochs on probe prompts with the MLE term kept.

    The rollouts continue prompts about the probe slice's subjects (all
    finetune facts when the slice is empty, as in the full size); the MLE
    term stays on the finetune sentences. The discriminator reads the KG's
    objects of each question, corrupted facts are fakes, the estimator is
    the straight-through Gumbel one with the non-saturating loss. Its
    TensorBoard run is `log_dir/adversarial` (per epoch: `wrong_rollouts`,
    the share of samples that spell no KG object; `d_gap` = D(real) −
    D(fake); `probe_hallucination`, the greedy generator's on
    `PROBE_QUESTIONS` probe questions; sample generations), the same
    values are saved to `log_dir/adversarial/history.json`, and a
    `DivergenceGuard` keeps the last good weights. Nothing here reads
    held-out, unknown or paraphrase material.
    """
    model = fine_tune_baseline(task, pretrained, seed, log_dir, quick=quick, verbose=verbose).model
    fine_tuner = build_adversarial_fine_tuner(model, seed)
    probe = ProbeSlice(task)
    examples = adversarial_examples(task, model.tokenizer, fine_tuner.answer_length, model.sequence_length, seed=seed,
                                    rollout_triples=probe.triples or None)
    generator = Generator(model, model.tokenizer)
    questions = task.verbalizer.prompts(probe.triples or task.finetune_triples)
    picked = np.random.default_rng([seed, 5]).permutation(len(questions))[:PROBE_QUESTIONS]
    asked = [(questions[index], probe.graph.objects(questions[index].subject, questions[index].relation))
             for index in sorted(picked)]
    run_dir = os.path.join(log_dir, "adversarial")
    fine_tuner.fit(
        adversarial_dataset(examples, batch_size=32, seed=seed),
        epochs=QUICK_EPOCHS if quick else FULL_EPOCHS,
        callbacks=[
            # Before TensorBoard, which then writes the value it adds to the logs.
            ProbeHallucination(generator, asked, task.model_graph, os.path.join(run_dir, "history.json"),
                               keys=REPORTED),
            # With the graph write or a batch update_freq, this Keras/TF
            # version writes no scalars at all.
            keras.callbacks.TensorBoard(run_dir, write_graph=False),
            TextSamples(generator, [prompt.text for prompt, _ in asked[:4]], os.path.join(run_dir, "samples")),
            DivergenceGuard(monitor=MONITORED, max_increase={"mle_loss": 5.0}),
        ],
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    return generator
