"""The `adversarial` method: the baseline's MLE fine-tune, then the LM trained against a discriminator.

Here "z" of the GAN objective is a fact prompt plus sampling noise: the
generator continues the prompt for `answer_length` tokens, and the
discriminator compares that window with the true sentence's (and,
knowledge-aware, with the same sentence whose object was swapped for another
entity of the relation's range, labelled fake, so it must learn which facts
are true and not only what text looks like). The trainer, its objective and
estimators are in `kfine.training.gan.trainer`; its data in
`kfine.training.gan.examples`."""

import os

import keras

from kfine.models.discriminator import build_discriminator
from kfine.models.generation import Generator
from kfine.training.baseline import fine_tune_baseline
from kfine.training.divergence_guard import DivergenceGuard
from kfine.training.gan.examples import adversarial_dataset, adversarial_examples
from kfine.training.gan.trainer import AdversarialFineTuner
from kfine.training.text_samples import TextSamples

MONITORED = ("mle_loss", "d_loss", "g_loss")

QUICK_EPOCHS = 5
FULL_EPOCHS = 10


def build_adversarial_fine_tuner(model, seed):
    """The compiled `AdversarialFineTuner` of the `adversarial` method around `model` (with a new discriminator).

    `kfine bench --perf` times this same trainer, so the method's settings live here once.
    """
    fine_tuner = AdversarialFineTuner(model, build_discriminator(model), answer_length=4, mle_weight=1.0,
                                      adversarial_weight=0.5, label_smoothing=0.1, seed=seed)
    fine_tuner.compile(
        generator_optimizer=keras.optimizers.Adam(1e-4, global_clipnorm=1.0),
        discriminator_optimizer=keras.optimizers.Adam(5e-4, global_clipnorm=1.0),
    )
    return fine_tuner


def fine_tune_adversarial(task, pretrained, seed, log_dir, quick=False, verbose=0):
    """The baseline's MLE fine-tune, then adversarial epochs with the MLE term kept.

    The adversarial phase is knowledge-aware (corrupted facts are fakes),
    uses the straight-through Gumbel estimator and the non-saturating loss;
    its TensorBoard run is `log_dir/adversarial` (with sample generations),
    and a `DivergenceGuard` keeps the last good weights.
    """
    model = fine_tune_baseline(task, pretrained, seed, log_dir, quick=quick, verbose=verbose).model
    fine_tuner = build_adversarial_fine_tuner(model, seed)
    examples = adversarial_examples(task, model.tokenizer, fine_tuner.answer_length, model.sequence_length, seed=seed)
    generator = Generator(model, model.tokenizer)
    sample_prompts = [prompt.text for prompt, _ in task.evaluation_prompts("heldout")[:4]]
    run_dir = os.path.join(log_dir, "adversarial")
    fine_tuner.fit(
        adversarial_dataset(examples, batch_size=32, seed=seed),
        epochs=QUICK_EPOCHS if quick else FULL_EPOCHS,
        callbacks=[
            # With the graph write or a batch update_freq, this Keras/TF
            # version writes no scalars at all.
            keras.callbacks.TensorBoard(run_dir, write_graph=False),
            TextSamples(generator, sample_prompts, os.path.join(run_dir, "samples")),
            DivergenceGuard(monitor=MONITORED, max_increase={"mle_loss": 5.0}),
        ],
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    return generator
