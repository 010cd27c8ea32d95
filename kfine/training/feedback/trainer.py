"""`FeedbackTrainer`: one train step over references, refuted samples and preference pairs."""

import keras
import tensorflow as tf

from kfine.training.feedback.losses import preference_loss, token_log_probs, unlikelihood_loss
from kfine.training.mle import next_token_loss


class FeedbackTrainer(keras.Model):
    """Trains a language model on references, refuted samples and preference pairs.

    A training wrapper (not saved): `fit` receives, per step, a dict of three
    batches — `references` `(batch, length)` token rows for MLE; `negatives`
    rows with `negative_mask` (the tokens to unlikelihood-train); and pairs
    `chosen`/`rejected` rows with their completion masks, their reference
    model log-probabilities and a `pair_weight` (0 for padding pairs).

    Args:
        language_model: `CausalLanguageModel` being fine-tuned.
        config: `FeedbackConfig`.
    """

    def __init__(self, language_model, config, **kwargs):
        super().__init__(**kwargs)
        self.language_model = language_model
        self.config = config
        self.next_token_loss = next_token_loss()
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "mle_loss", "unlikelihood_loss", "preference_loss")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, token_ids, training=False):
        return self.language_model(token_ids, training=training)

    def train_step(self, data):
        config = self.config
        with tf.GradientTape() as tape:
            references = data["references"]
            logits = self.language_model(references[:, :-1], training=True)
            mle = self.next_token_loss(references[:, 1:], logits)
            unlikelihood = unlikelihood_loss(
                token_log_probs(self.language_model, data["negatives"], training=True), data["negative_mask"])
            loss = mle + config.unlikelihood_weight * unlikelihood
            preference = keras.ops.convert_to_tensor(0.0)
            if config.preference_weight > 0:
                chosen = keras.ops.sum(
                    token_log_probs(self.language_model, data["chosen"], training=True) * data["chosen_mask"], 1)
                rejected = keras.ops.sum(
                    token_log_probs(self.language_model, data["rejected"], training=True) * data["rejected_mask"], 1)
                preference = preference_loss(chosen, rejected, data["chosen_reference"], data["rejected_reference"],
                                             data["pair_weight"], config.beta)
                loss += config.preference_weight * preference
        variables = self.language_model.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        for name, value in (("loss", loss), ("mle_loss", mle), ("unlikelihood_loss", unlikelihood),
                            ("preference_loss", preference)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
