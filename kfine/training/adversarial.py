"""Adversarial fine-tuning: the LM as a generator against a sequence discriminator.

The design documents' objective is `L_adv = E_x[log D(x)] + E_z[log(1 - D(G(z)))]`:
the discriminator maximizes it, the generator minimizes its second term
(minimax) or maximizes `log D(G(z))` (non-saturating, TF-GAN's default), and,
as TF-GAN's `combine_adversarial_loss`, the generator's loss adds the
maximum-likelihood loss on the real sentences with a weight.

Here "z" is a fact prompt plus sampling noise: the generator continues the
prompt for `answer_length` tokens, and the discriminator compares that window
with the true sentence's (and, knowledge-aware, with the same sentence whose
object was swapped for another entity of the relation's range, labelled fake,
so it must learn which facts are true and not only what text looks like).
Tokens are discrete; the gradient reaches the generator through
Gumbel-softmax samples (optionally straight-through: hard tokens forward,
soft gradients back) or through REINFORCE with a moving-average baseline.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from kfine.knowledge.templates import Templates
from kfine.models.discriminator import build_discriminator
from kfine.models.generation import Generator
from kfine.training.baseline import fine_tune_baseline
from kfine.training.divergence_guard import DivergenceGuard
from kfine.training.text_samples import TextSamples

ESTIMATORS = ("gumbel", "reinforce")
GENERATOR_LOSSES = ("non_saturating", "minimax")
MONITORED = ("mle_loss", "d_loss", "g_loss")

QUICK_EPOCHS = 5
FULL_EPOCHS = 10


class AdversarialFineTuner(keras.Model):
    """Trains a causal LM (the generator) against a `SequenceDiscriminator`.

    Each `train_step` (TensorFlow backend; runs under XLA with
    `compile(jit_compile=True)`):

    1. samples `answer_length` tokens after each prompt, one step at a time,
       with the Gumbel-max trick (the generator in inference mode; hard
       tokens are fed back, so shapes are static and no gradient flows
       through the conditioning);
    2. re-reads the sampled window once under the generator's tape and
       rebuilds each step's sample as a Gumbel-softmax with the same noise
       (temperature `max(min_temperature, temperature * exp(-temperature_decay
       * step))`), or, for REINFORCE, the log-probability of the sample;
    3. scores real windows, generated windows and (when the batch has
       `corrupted_ids`) knowledge corruptions with the discriminator;
    4. applies the discriminator's and the generator's gradients with their
       own optimizers (gradient clipping is the optimizers' `global_clipnorm`).

    Freeze a network by setting its `trainable = False` before `compile`.
    The fine-tuner is a training harness, not an artifact: save the generator
    (and, if wanted, the discriminator), each a self-contained `.keras` model.

    Args:
        generator: `CausalLanguageModel`. Trained in place.
        discriminator: `SequenceDiscriminator` over the generator's vocabulary.
        answer_length: int. Tokens generated after each prompt.
        estimator: str. `"gumbel"` or `"reinforce"`.
        generator_loss: str. `"non_saturating"` (`-log D(G(z))`) or
            `"minimax"` (`log(1 - D(G(z)))`).
        mle_weight: float. Weight of the next-token loss on real sentences.
        adversarial_weight: float. Weight of the generator's adversarial loss.
        label_smoothing: float. One-sided: real targets are `1 - label_smoothing`.
        straight_through: bool. Gumbel estimator: feed the discriminator hard
            one-hot tokens with the soft sample's gradient.
        temperature: float. Initial Gumbel-softmax temperature.
        min_temperature: float. Temperature floor.
        temperature_decay: float. Exponential decay per generator step.
        seed: int or None. Seed of the sampling noise.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        token_ids: int32 `(batch, sequence)`; returns the generator's logits.

    Example:

    >>> fine_tuner = AdversarialFineTuner(model, build_discriminator(model))
    >>> fine_tuner.compile()
    >>> fine_tuner.fit(adversarial_dataset(examples, batch_size=32), epochs=5)
    """

    def __init__(
        self,
        generator,
        discriminator,
        answer_length=4,
        estimator="gumbel",
        generator_loss="non_saturating",
        mle_weight=1.0,
        adversarial_weight=1.0,
        label_smoothing=0.0,
        straight_through=True,
        temperature=1.0,
        min_temperature=0.5,
        temperature_decay=1e-3,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(answer_length, int) or answer_length < 1:
            raise ValueError(f"`answer_length` must be a positive int. Received: answer_length={answer_length}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"`estimator` must be one of {ESTIMATORS}. Received: estimator={estimator!r}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(
                f"`generator_loss` must be one of {GENERATOR_LOSSES}. Received: generator_loss={generator_loss!r}"
            )
        for argument, value in (("mle_weight", mle_weight), ("adversarial_weight", adversarial_weight)):
            if value < 0:
                raise ValueError(f"`{argument}` must be >= 0. Received: {argument}={value}")
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f"`label_smoothing` must be in [0, 0.5). Received: label_smoothing={label_smoothing}")
        if not 0 < min_temperature <= temperature:
            raise ValueError(
                "Temperatures must satisfy 0 < min_temperature <= temperature. "
                f"Received: temperature={temperature}, min_temperature={min_temperature}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.answer_length = answer_length
        self.estimator = estimator
        self.generator_loss = generator_loss
        self.mle_weight = mle_weight
        self.adversarial_weight = adversarial_weight
        self.label_smoothing = label_smoothing
        self.straight_through = straight_through
        self.temperature = temperature
        self.min_temperature = min_temperature
        self.temperature_decay = temperature_decay
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.eos_id = generator.tokenizer.eos_id
        self.vocabulary_size = generator.tokenizer.vocabulary_size
        self.reward_baseline = keras.Variable(0.0, trainable=False, name="reward_baseline")
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("mle_loss", "d_loss", "g_loss", "d_real", "d_fake", "d_corrupted", "d_gap", "temperature")
        }
        self.built = True

    def call(self, token_ids, training=False):
        return self.generator(token_ids, training=training)

    def compile(self, generator_optimizer=None, discriminator_optimizer=None, jit_compile="auto", **kwargs):
        """Sets the two optimizers (default: Adam 1e-4, global norm clipped to 1).

        Args:
            generator_optimizer: `keras.optimizers.Optimizer` for the generator.
            discriminator_optimizer: `keras.optimizers.Optimizer` for the discriminator.
            jit_compile: bool or "auto". XLA for the train step ("auto": on
                accelerators only; XLA was not faster on CPU for these models).
        """
        generator_optimizer = generator_optimizer or keras.optimizers.Adam(1e-4, global_clipnorm=1.0)
        self.discriminator_optimizer = discriminator_optimizer or keras.optimizers.Adam(1e-4, global_clipnorm=1.0)
        super().compile(optimizer=generator_optimizer, jit_compile=jit_compile, **kwargs)
        # Built here, outside the compiled step, each on its own network's variables.
        self.optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def current_temperature(self):
        """The Gumbel-softmax temperature at the generator's current step."""
        optimizer = getattr(self, "optimizer", None)
        step = keras.ops.cast(optimizer.iterations if optimizer is not None else 0, "float32")
        decayed = self.temperature * keras.ops.exp(-self.temperature_decay * step)
        return keras.ops.maximum(decayed, self.min_temperature)

    # === The train step ===

    def train_step(self, data):
        data, _, _ = keras.utils.unpack_x_y_sample_weight(data)  # `train_on_batch` passes (x, None, None)
        losses, generator_gradients, discriminator_gradients = self.compute_gradients(data)
        if generator_gradients:
            self.optimizer.apply(generator_gradients, self.generator.trainable_variables)
        if discriminator_gradients:
            self.discriminator_optimizer.apply(discriminator_gradients, self.discriminator.trainable_variables)
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items() if name in losses}

    def compute_gradients(self, data):
        """Runs the generator and discriminator on one batch; returns their gradients.

        Args:
            data: dict of `token_ids` `(batch, width)` (`[BOS]` sentence
                `[EOS]`, right-padded), `prompt_length` `(batch,)` and
                optionally `corrupted_ids` `(batch, corruptions, width)` with
                `corruption_weight` `(batch,)` (see `adversarial_examples`).

        Returns:
            `(values, generator_gradients, discriminator_gradients)`: a dict of
            scalars for the metrics, and one gradient list per network (empty
            for a frozen network).
        """
        token_ids = tf.convert_to_tensor(data["token_ids"], tf.int32)
        prompt_length = tf.convert_to_tensor(data["prompt_length"], tf.int32)
        width = token_ids.shape[1]
        positions = tf.range(width)[None, :]
        steps = tf.range(self.answer_length)[None, :]
        # (batch, width, answer_length): where each generated token goes.
        slots = tf.cast(positions[:, :, None] == (prompt_length[:, None] + steps)[:, None, :], tf.float32)
        in_window = positions < (prompt_length[:, None] + self.answer_length)
        real_window = tf.where(in_window, token_ids, 0)
        noise = self._gumbel_noise(tf.shape(token_ids)[0])
        prompt_ids = tf.where(positions < prompt_length[:, None], token_ids, 0)
        sampled_prefix, prefix_tokens = self._sample_prefix(prompt_ids, prompt_length, noise)

        generator_variables = self.generator.trainable_variables
        discriminator_variables = self.discriminator.trainable_variables
        values = {}
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            logits = self._answer_logits(sampled_prefix, prompt_length)
            last_token = tf.argmax(logits[:, -1] + noise[:, -1], axis=-1, output_type=tf.int32)
            tokens = tf.concat([prefix_tokens, last_token[:, None]], axis=1)
            # Up to and including the first [EOS]; later samples are padding.
            is_eos = tf.cast(tokens == self.eos_id, tf.int32)
            generated_valid = tf.cast(tf.cumsum(is_eos, axis=1, exclusive=True) == 0, tf.float32)
            fake_mask = (positions < prompt_length[:, None]) | (tf.einsum("bwk,bk->bw", slots, generated_valid) > 0)
            generated_ids = tf.reduce_sum(tf.cast(slots, tf.int32) * tokens[:, None, :], axis=-1)
            fake_ids = tf.where(fake_mask, prompt_ids + generated_ids, 0)
            temperature = self.current_temperature()
            if self.estimator == "gumbel":
                soft = tf.nn.softmax((logits + noise) / temperature, axis=-1)
                if self.straight_through:
                    soft = tf.one_hot(tokens, self.vocabulary_size) + soft - tf.stop_gradient(soft)
                # Prompt tokens embedded from ids, generated positions from
                # (soft) samples: the vocabulary product only where needed.
                outside = 1.0 - tf.reduce_sum(slots, axis=-1, keepdims=True)
                embeddings = self.discriminator.embed(prompt_ids) * outside + tf.einsum(
                    "bwk,bkd->bwd", slots, self.discriminator.embed(soft))
                fake_logit = self.discriminator.classify(embeddings, fake_mask, training=True)
            else:
                fake_logit = self.discriminator(fake_ids, padding_mask=fake_mask, training=True)
            real_logit = self.discriminator(real_window, padding_mask=real_window != 0, training=True)

            # log D = -softplus(-l); log(1 - D) = -softplus(l).
            smoothing = self.label_smoothing
            real_loss = tf.reduce_mean((1 - smoothing) * tf.nn.softplus(-real_logit) + smoothing * tf.nn.softplus(real_logit))
            fake_losses = [tf.reduce_mean(tf.nn.softplus(fake_logit))]
            if "corrupted_ids" in data:
                corrupted_logit, corruption_weight = self._score_corruptions(data, in_window)
                weight_sum = tf.maximum(tf.reduce_sum(corruption_weight), 1.0)
                fake_losses.append(tf.reduce_sum(tf.nn.softplus(corrupted_logit) * corruption_weight) / weight_sum)
                values["d_corrupted"] = tf.reduce_sum(tf.sigmoid(corrupted_logit) * corruption_weight) / weight_sum
            discriminator_loss = real_loss + tf.add_n(fake_losses) / len(fake_losses)

            if self.generator_loss == "non_saturating":
                reward = -tf.nn.softplus(-fake_logit)  # log D(G(z))
            else:
                reward = tf.nn.softplus(fake_logit)  # -log(1 - D(G(z)))
            if self.estimator == "gumbel":
                adversarial_loss = -tf.reduce_mean(reward)
            else:
                log_probs = tf.gather(tf.nn.log_softmax(logits, axis=-1), tokens, batch_dims=2)
                advantage = tf.stop_gradient(reward - self.reward_baseline)
                adversarial_loss = -tf.reduce_mean(advantage * tf.reduce_sum(log_probs * generated_valid, axis=1))
            generator_loss = self.adversarial_weight * adversarial_loss
            if self.mle_weight > 0:
                mle_loss = self._mle_loss(token_ids)
                generator_loss += self.mle_weight * mle_loss
                values["mle_loss"] = mle_loss

        if self.estimator == "reinforce":
            self.reward_baseline.assign(0.9 * self.reward_baseline + 0.1 * tf.reduce_mean(reward))
        generator_gradients = generator_tape.gradient(generator_loss, generator_variables) if generator_variables else []
        discriminator_gradients = (
            discriminator_tape.gradient(discriminator_loss, discriminator_variables) if discriminator_variables else []
        )
        d_real = tf.reduce_mean(tf.sigmoid(real_logit))
        d_fake = tf.reduce_mean(tf.sigmoid(fake_logit))
        values.update(
            {
                "d_loss": discriminator_loss,
                "g_loss": adversarial_loss,
                "d_real": d_real,
                "d_fake": d_fake,
                "d_gap": d_real - d_fake,
                "temperature": temperature,
            }
        )
        return values, generator_gradients, discriminator_gradients

    def _gumbel_noise(self, batch_size):
        shape = (batch_size, self.answer_length, self.vocabulary_size)
        uniform = keras.random.uniform(shape, minval=1e-9, maxval=1.0, seed=self.seed_generator)
        return -tf.math.log(-tf.math.log(uniform))

    def _logits_at(self, token_ids, positions):
        """Generator logits `(batch, k, vocab)` predicting the tokens at `positions` `(batch, k)`."""
        before = positions - 1
        head = self.generator.head
        if head is not None and self.generator.layers[-1] is head:
            # Project only the positions needed: the vocabulary product is
            # most of a small LM's cost.
            hidden = self.generator.hidden_states(token_ids, training=False)
            return head(tf.gather(hidden, before, batch_dims=1))
        return tf.gather(self.generator(token_ids, training=False), before, batch_dims=1)

    def _sample_prefix(self, buffer, prompt_length, noise):
        """Samples all but the last answer token without gradient (Gumbel-max).

        Returns:
            The buffer with the samples written after each prompt, and the
            samples `(batch, answer_length - 1)`.
        """
        tokens = []
        for step in range(self.answer_length - 1):
            position = prompt_length + step
            logits = tf.stop_gradient(self._logits_at(buffer, position[:, None])[:, 0])
            tokens.append(tf.argmax(logits + noise[:, step], axis=-1, output_type=tf.int32))
            buffer = tf.where(tf.range(buffer.shape[1])[None, :] == position[:, None], tokens[-1][:, None], buffer)
        if not tokens:
            return buffer, tf.zeros_like(prompt_length)[:, None][:, :0]
        return buffer, tf.stack(tokens, axis=1)

    def _answer_logits(self, sampled_prefix, prompt_length):
        """Logits of every answer position in one pass (causal: each sees only its prefix)."""
        positions = prompt_length[:, None] + tf.range(self.answer_length)[None, :]
        return self._logits_at(sampled_prefix, positions)

    def _score_corruptions(self, data, in_window):
        corrupted = tf.convert_to_tensor(data["corrupted_ids"], tf.int32)
        choice = keras.random.randint(tf.shape(corrupted)[:1], 0, corrupted.shape[1], seed=self.seed_generator)
        corrupted = tf.where(in_window, tf.gather(corrupted, choice, batch_dims=1), 0)
        logit = self.discriminator(corrupted, padding_mask=corrupted != 0, training=True)
        return logit, tf.cast(data["corruption_weight"], tf.float32)

    def _mle_loss(self, token_ids):
        inputs, targets = token_ids[:, :-1], token_ids[:, 1:]
        logits = self.generator(inputs, training=True)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        weights = tf.cast(targets != 0, losses.dtype)
        return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def adversarial_examples(task, tokenizer, answer_length, sequence_length, corruptions=4, seed=0):
    """Training arrays for `AdversarialFineTuner`: one row per (finetune fact, training template).

    Args:
        task: `FactTask`. Its finetune facts are the real data; corruptions
            draw wrong objects from `task.model_graph`.
        tokenizer: `WordPieceTokenizer`.
        answer_length: int. Generated tokens after each prompt.
        sequence_length: int. The generator's longest input; longer rows are cut.
        corruptions: int. Corrupted sentences per row (0: not knowledge-aware).
        seed: int. Seeds the choice of wrong objects.

    Returns:
        dict of arrays: `token_ids` (rows, width) int32, `prompt_length`
        (rows,) int32 and, with corruptions, `corrupted_ids` (rows,
        corruptions, width) int32 and `corruption_weight` (rows,) float32 (0
        where the relation has no other object to swap in).
    """
    graph = task.model_graph
    rng = np.random.default_rng(seed)
    ranges = {}
    sentences, prompts, corrupted, weights = [], [], [], []
    for subject, relation, obj in task.finetune_triples:
        if relation not in ranges:
            ranges[relation] = sorted(graph.relation_range(relation))
        wrong = sorted(set(ranges[relation]) - graph.objects(subject, relation))
        for template in task.templates.training_templates(relation):
            sentences.append(Templates.fill(template, subject, obj))
            prompts.append(Templates.prompt(template, subject))
            if corruptions:
                picks = rng.choice(wrong, size=corruptions) if wrong else [obj] * corruptions
                corrupted.extend(Templates.fill(template, subject, pick) for pick in picks)
                weights.append(1.0 if wrong else 0.0)
    rows = tokenizer.encode_batch(sentences, add_eos=True)
    prompt_lengths = np.array([len(row) for row in tokenizer.encode_batch(prompts)], "int32")
    width = min(sequence_length, max(max(len(row) for row in rows), int(prompt_lengths.max()) + answer_length))
    keep = np.flatnonzero(prompt_lengths + answer_length <= width)

    def to_array(token_rows):
        array = np.zeros((len(token_rows), width), "int32")
        for index, row in enumerate(token_rows):
            array[index, : min(len(row), width)] = row[:width]
        return array

    examples = {"token_ids": to_array(rows)[keep], "prompt_length": prompt_lengths[keep]}
    if corruptions:
        corrupted_rows = to_array(tokenizer.encode_batch(corrupted, add_eos=True))
        examples["corrupted_ids"] = corrupted_rows.reshape(len(rows), corruptions, width)[keep]
        examples["corruption_weight"] = np.array(weights, "float32")[keep]
    return examples


def adversarial_dataset(examples, batch_size, seed=0):
    """A shuffled `tf.data.Dataset` of full batches (static shapes for XLA)."""
    rows = len(examples["token_ids"])
    batch_size = min(batch_size, rows)
    dataset = tf.data.Dataset.from_tensor_slices(examples).shuffle(rows, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


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
