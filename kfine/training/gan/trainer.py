"""`AdversarialFineTuner`: a causal LM (the generator) trained against a sequence discriminator.

The objective is `L_adv = E_x[log D(x)] + E_z[log(1 - D(G(z)))]`: the
discriminator maximizes it, the generator minimizes its second term
(minimax) or maximizes `log D(G(z))` (non-saturating, TF-GAN's default), and,
as TF-GAN's `combine_adversarial_loss`, the generator's loss adds the
maximum-likelihood loss on the real sentences with a weight. Tokens are
discrete; the gradient reaches the generator through Gumbel-softmax samples
(optionally straight-through) or through REINFORCE with a moving-average
baseline. The math is `keras.ops`; the two gradient tapes are TensorFlow's.
"""

import keras
import tensorflow as tf

from kfine.models.discriminator import knowledge_match

ESTIMATORS = ("gumbel", "reinforce")
GENERATOR_LOSSES = ("non_saturating", "minimax")


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
       `corrupted_ids`) knowledge corruptions with the discriminator (a
       knowledge-aware one also reads each window's `knowledge_match` against
       the batch's `knowledge_ids`, the KG's objects of the row's question);
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
            for name in ("mle_loss", "d_loss", "g_loss", "d_real", "d_fake", "d_corrupted", "d_gap", "temperature",
                         "wrong_rollouts")
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
                `corruption_weight` `(batch,)`, `knowledge_ids` `(batch,
                objects, answer_length)` (the KG's objects of each row's
                question, as `knowledge_match` reads them; with them the
                metric `wrong_rollouts` is the share of samples that spell
                none) and `mle_ids` `(batch, width)` (the sentences of the MLE
                term, when they are not the rows' own; see `adversarial_examples`).

        Returns:
            `(values, generator_gradients, discriminator_gradients)`: a dict of
            scalars for the metrics, and one gradient list per network (empty
            for a frozen network).
        """
        ops = keras.ops
        token_ids = ops.convert_to_tensor(data["token_ids"], "int32")
        prompt_length = ops.convert_to_tensor(data["prompt_length"], "int32")
        positions = ops.arange(token_ids.shape[1], dtype="int32")[None, :]
        steps = ops.arange(self.answer_length, dtype="int32")[None, :]
        # (batch, width, answer_length): where each generated token goes.
        slots = ops.cast(ops.equal(positions[:, :, None], (prompt_length[:, None] + steps)[:, None, :]), "float32")
        in_prompt = ops.less(positions, prompt_length[:, None])
        in_window = ops.less(positions, prompt_length[:, None] + self.answer_length)
        real_window = ops.where(in_window, token_ids, 0)
        answer_positions = ops.minimum(prompt_length[:, None] + steps, token_ids.shape[1] - 1)
        knowledge_ids = self._knowledge_ids(data)
        noise = self._gumbel_noise(ops.shape(token_ids)[0])
        prompt_ids = ops.where(in_prompt, token_ids, 0)
        sampled_prefix, prefix_tokens = self._sample_prefix(prompt_ids, prompt_length, noise)

        generator_variables = self.generator.trainable_variables
        discriminator_variables = self.discriminator.trainable_variables
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            logits = self._answer_logits(sampled_prefix, prompt_length)
            last_token = ops.argmax(logits[:, -1] + noise[:, -1], axis=-1)
            tokens = ops.concatenate([prefix_tokens, last_token[:, None]], axis=1)
            # Up to and including the first [EOS]; later samples are padding.
            is_eos = ops.cast(ops.equal(tokens, self.eos_id), "int32")
            generated_valid = ops.cast(ops.equal(ops.cumsum(is_eos, axis=1) - is_eos, 0), "float32")
            fake_mask = ops.logical_or(in_prompt, ops.einsum("bwk,bk->bw", slots, generated_valid) > 0)
            temperature = self.current_temperature()
            fake_logit = self._score_generated(prompt_ids, slots, tokens, fake_mask, logits + noise, temperature,
                                               knowledge_ids)
            real_logit = self.discriminator(real_window, padding_mask=ops.not_equal(real_window, 0),
                                            knowledge_match=self._match(real_window, answer_positions, knowledge_ids),
                                            training=True)
            discriminator_loss, values = self._discriminator_loss(real_logit, fake_logit, data, in_window,
                                                                  answer_positions, knowledge_ids)
            reward, adversarial_loss = self._adversarial_loss(fake_logit, logits, tokens, generated_valid)
            generator_loss = self.adversarial_weight * adversarial_loss
            if self.mle_weight > 0:
                mle_ids = ops.convert_to_tensor(data["mle_ids"], "int32") if "mle_ids" in data else token_ids
                mle_loss = self._mle_loss(mle_ids)
                generator_loss += self.mle_weight * mle_loss
                values["mle_loss"] = mle_loss

        if self.estimator == "reinforce":
            self.reward_baseline.assign(0.9 * self.reward_baseline + 0.1 * ops.mean(reward))
        generator_gradients = (
            generator_tape.gradient(generator_loss, generator_variables) if generator_variables else []
        )
        discriminator_gradients = (
            discriminator_tape.gradient(discriminator_loss, discriminator_variables) if discriminator_variables else []
        )
        d_real = ops.mean(ops.sigmoid(real_logit))
        d_fake = ops.mean(ops.sigmoid(fake_logit))
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
        if "knowledge_ids" in data:
            values["wrong_rollouts"] = 1.0 - ops.mean(knowledge_match(tokens, ops.convert_to_tensor(
                data["knowledge_ids"], "int32")))
        return values, generator_gradients, discriminator_gradients

    def _knowledge_ids(self, data):
        """The batch's `knowledge_ids` when the discriminator reads them, else None."""
        if not self.discriminator.knowledge_aware:
            return None
        if "knowledge_ids" not in data:
            raise ValueError("A knowledge-aware discriminator needs `knowledge_ids` in each batch "
                             f"(see `adversarial_examples`). Received keys: {sorted(data)}")
        knowledge_ids = keras.ops.convert_to_tensor(data["knowledge_ids"], "int32")
        if knowledge_ids.shape[-1] != self.answer_length:
            raise ValueError(f"`knowledge_ids` must hold answer_length={self.answer_length} tokens an object. "
                             f"Received: shape={tuple(knowledge_ids.shape)}")
        return knowledge_ids

    def _match(self, token_ids, answer_positions, knowledge_ids):
        """`knowledge_match` of the answer window of `token_ids`, or None without knowledge."""
        if knowledge_ids is None:
            return None
        return knowledge_match(keras.ops.take_along_axis(token_ids, answer_positions, axis=1), knowledge_ids)

    def _score_generated(self, prompt_ids, slots, tokens, fake_mask, noisy_logits, temperature, knowledge_ids):
        """Discriminator logits of the prompts continued by the samples.

        Gumbel: the generated positions are embedded from the Gumbel-softmax
        samples, so the gradient reaches the generator; REINFORCE: the
        discriminator reads the hard tokens.
        """
        ops = keras.ops
        if self.estimator == "reinforce":
            generated_ids = ops.sum(ops.cast(slots, "int32") * tokens[:, None, :], axis=-1)
            fake_ids = ops.where(fake_mask, prompt_ids + generated_ids, 0)
            match = None if knowledge_ids is None else knowledge_match(tokens, knowledge_ids)
            return self.discriminator(fake_ids, padding_mask=fake_mask, knowledge_match=match, training=True)
        soft = ops.softmax(noisy_logits / temperature, axis=-1)
        if self.straight_through:
            soft = ops.one_hot(tokens, self.vocabulary_size) + soft - ops.stop_gradient(soft)
        # The match reads the samples too, so the generator learns to spell the KG's objects.
        match = None if knowledge_ids is None else knowledge_match(soft, knowledge_ids)
        # Prompt tokens embedded from ids, generated positions from (soft)
        # samples: the vocabulary product only where needed.
        outside = 1.0 - ops.sum(slots, axis=-1, keepdims=True)
        embeddings = self.discriminator.embed(prompt_ids) * outside + ops.einsum(
            "bwk,bkd->bwd", slots, self.discriminator.embed(soft))
        return self.discriminator.classify(embeddings, fake_mask, knowledge_match=match, training=True)

    def _discriminator_loss(self, real_logit, fake_logit, data, in_window, answer_positions, knowledge_ids):
        """The discriminator's loss (fakes: generated windows and any knowledge corruptions), and metric values."""
        ops = keras.ops
        values = {}
        # log D = -softplus(-l); log(1 - D) = -softplus(l).
        smoothing = self.label_smoothing
        real_loss = ops.mean((1 - smoothing) * ops.softplus(-real_logit) + smoothing * ops.softplus(real_logit))
        fake_losses = [ops.mean(ops.softplus(fake_logit))]
        if "corrupted_ids" in data:
            corrupted_logit, corruption_weight = self._score_corruptions(data, in_window, answer_positions,
                                                                         knowledge_ids)
            weight_sum = ops.maximum(ops.sum(corruption_weight), 1.0)
            fake_losses.append(ops.sum(ops.softplus(corrupted_logit) * corruption_weight) / weight_sum)
            values["d_corrupted"] = ops.sum(ops.sigmoid(corrupted_logit) * corruption_weight) / weight_sum
        return real_loss + sum(fake_losses) / len(fake_losses), values

    def _adversarial_loss(self, fake_logit, logits, tokens, generated_valid):
        """The generator's reward per row and its adversarial loss under the chosen estimator."""
        ops = keras.ops
        if self.generator_loss == "non_saturating":
            reward = -ops.softplus(-fake_logit)  # log D(G(z))
        else:
            reward = ops.softplus(fake_logit)  # -log(1 - D(G(z)))
        if self.estimator == "gumbel":
            return reward, -ops.mean(reward)
        log_probs = ops.take_along_axis(ops.log_softmax(logits, axis=-1), tokens[:, :, None], axis=-1)[..., 0]
        advantage = ops.stop_gradient(reward - self.reward_baseline)
        return reward, -ops.mean(advantage * ops.sum(log_probs * generated_valid, axis=1))

    def _gumbel_noise(self, batch_size):
        shape = (batch_size, self.answer_length, self.vocabulary_size)
        uniform = keras.random.uniform(shape, minval=1e-9, maxval=1.0, seed=self.seed_generator)
        return -keras.ops.log(-keras.ops.log(uniform))

    def _logits_at(self, token_ids, positions):
        """Generator logits `(batch, k, vocab)` predicting the tokens at `positions` `(batch, k)`."""
        before = (positions - 1)[:, :, None]
        head = self.generator.head
        if head is not None and self.generator.layers[-1] is head:
            # Project only the positions needed: the vocabulary product is
            # most of a small LM's cost.
            hidden = self.generator.hidden_states(token_ids, training=False)
            return head(keras.ops.take_along_axis(hidden, before, axis=1))
        return keras.ops.take_along_axis(self.generator(token_ids, training=False), before, axis=1)

    def _sample_prefix(self, buffer, prompt_length, noise):
        """Samples all but the last answer token without gradient (Gumbel-max).

        Returns:
            The buffer with the samples written after each prompt, and the
            samples `(batch, answer_length - 1)`.
        """
        columns = keras.ops.arange(buffer.shape[1], dtype="int32")[None, :]
        tokens = []
        for step in range(self.answer_length - 1):
            position = prompt_length + step
            logits = keras.ops.stop_gradient(self._logits_at(buffer, position[:, None])[:, 0])
            tokens.append(keras.ops.argmax(logits + noise[:, step], axis=-1))
            buffer = keras.ops.where(keras.ops.equal(columns, position[:, None]), tokens[-1][:, None], buffer)
        if not tokens:
            return buffer, keras.ops.zeros_like(prompt_length)[:, None][:, :0]
        return buffer, keras.ops.stack(tokens, axis=1)

    def _answer_logits(self, sampled_prefix, prompt_length):
        """Logits of every answer position in one pass (causal: each sees only its prefix)."""
        positions = prompt_length[:, None] + keras.ops.arange(self.answer_length, dtype="int32")[None, :]
        return self._logits_at(sampled_prefix, positions)

    def _score_corruptions(self, data, in_window, answer_positions, knowledge_ids):
        corrupted = keras.ops.convert_to_tensor(data["corrupted_ids"], "int32")
        choice = keras.random.randint(keras.ops.shape(corrupted)[:1], 0, corrupted.shape[1], seed=self.seed_generator)
        chosen = keras.ops.take_along_axis(corrupted, choice[:, None, None], axis=1)[:, 0]
        corrupted = keras.ops.where(in_window, chosen, 0)
        logit = self.discriminator(corrupted, padding_mask=keras.ops.not_equal(corrupted, 0),
                                   knowledge_match=self._match(corrupted, answer_positions, knowledge_ids),
                                   training=True)
        return logit, keras.ops.cast(data["corruption_weight"], "float32")

    def _mle_loss(self, token_ids):
        inputs, targets = token_ids[:, :-1], token_ids[:, 1:]
        logits = self.generator(inputs, training=True)
        losses = keras.ops.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        weights = keras.ops.cast(keras.ops.not_equal(targets, 0), losses.dtype)
        return keras.ops.sum(losses * weights) / keras.ops.maximum(keras.ops.sum(weights), 1.0)
