"""`FactChecker`: a neural claim verifier, sentence -> P(supported)."""

import keras
import numpy as np

from kfine.errors import ModelError
from kfine.factcheck.claims import corrupt_triples, labelled_claims
from kfine.factcheck.verdict import REFUTED, SUPPORTED, Verdict
from kfine.knowledge.verbalizer import Verbalizer
from kfine.models.causal_lm import CausalLanguageModel
from kfine.models.loading import load_keras_file, model_file, save_model
from kfine.models.seeding import seed_training

FACT_CHECKER_KIND = "kfine-fact-checker"


@keras.saving.register_keras_serializable(package="kfine")
class FactChecker(keras.Model):
    """A claim verifier built on a kfine language model's backbone.

    The sentence, tokenized as `[BOS] sentence [EOS]`, runs through every
    layer of `language_model` before its head (token and position
    embeddings, `TransformerDecoder` blocks). Attention is causal, so the
    hidden state at `[EOS]` is the only one that has read the whole claim;
    a `Dense` layer maps it to the logit of "supported". Train it with
    `train_fact_checker` on verbalized KG facts against corruptions.

    Args:
        language_model: `CausalLanguageModel`. Its backbone is fine-tuned
            with the classifier; its LM head is kept (frozen, unused) so the
            tokenizer and config round-trip unchanged.
        dropout: float. Dropout on the pooled state.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        token_ids: int32 `(batch, sequence)`, `[BOS] ... [EOS]`, right-padded with 0.

    Returns:
        float32 logits `(batch, 1)`; `sigmoid` gives P(supported).

    Example:

    >>> checker = train_fact_checker(load_model("saved_models/geonames-lm"), graph, templates,
    ...                              task.finetune_triples)  # doctest: +SKIP
    >>> checker.check(["The capital of France is Lyon."])[0].label  # doctest: +SKIP
    'refuted'
    """

    def __init__(self, language_model, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(language_model, CausalLanguageModel):
            raise ValueError(
                f"`language_model` must be a CausalLanguageModel. Received: language_model={language_model!r}"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.language_model = language_model
        self.dropout = dropout
        language_model.head.trainable = False
        # === Layers ===
        self.pooled_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="pooled_dropout")
        self.classifier = keras.layers.Dense(1, dtype=self.dtype_policy, name="supported_logit")

    @property
    def tokenizer(self):
        return self.language_model.tokenizer

    def build(self, token_ids_shape):
        self.classifier.build((None, self.language_model.hidden_dim))
        self.built = True

    def call(self, token_ids, training=False):
        hidden_states = self.language_model.hidden_states(token_ids, training=training)
        last = keras.ops.sum(keras.ops.cast(token_ids != 0, "int32"), axis=1) - 1
        at_last = keras.ops.one_hot(last, keras.ops.shape(token_ids)[1], dtype=hidden_states.dtype)
        pooled = keras.ops.einsum("bt,btd->bd", at_last, hidden_states)
        return keras.ops.cast(self.classifier(self.pooled_dropout(pooled, training=training)), "float32")

    def compute_output_shape(self, token_ids_shape):
        return (token_ids_shape[0], 1)

    # === Checking ===

    def encode(self, sentences):
        """`[BOS] sentence [EOS]` rows right-padded into an int32 array."""
        rows = self.tokenizer.encode_batch(list(sentences), add_eos=True)
        limit = self.language_model.sequence_length
        token_ids = np.zeros((len(rows), min(max(map(len, rows)), limit)), "int32")
        for index, row in enumerate(rows):
            row = row[: limit - 1] + row[-1:] if len(row) > limit else row  # keep [EOS], which is read
            token_ids[index, : len(row)] = row
        return token_ids

    def probabilities(self, sentences, batch_size=256):
        """Returns P(supported) for each sentence, a float array."""
        if not sentences:
            return np.zeros((0,), "float32")
        logits = self.predict(self.encode(sentences), batch_size=batch_size, verbose=0)
        return keras.ops.convert_to_numpy(keras.ops.sigmoid(logits))[:, 0]

    def check(self, sentences, threshold=0.5):
        """Returns one `Verdict` per sentence: supported when P(supported) >= threshold."""
        return [
            Verdict(sentence, SUPPORTED if probability >= threshold else REFUTED, float(probability))
            for sentence, probability in zip(sentences, self.probabilities(sentences))
        ]

    def evaluate_claims(self, sentences, labels, threshold=0.5):
        """Returns `{"accuracy", "auroc", "claims"}` on labelled sentences (1 = supported)."""
        probabilities = self.probabilities(sentences)
        labels = np.asarray(labels)
        auroc = keras.metrics.AUC(num_thresholds=1000)
        auroc.update_state(labels, probabilities)
        return {
            "accuracy": float(np.mean((probabilities >= threshold) == (labels == 1))),
            "auroc": float(auroc.result()),
            "claims": int(len(labels)),
        }

    # === Saving ===

    def get_config(self):
        config = super().get_config()
        config.update({
            "language_model": keras.saving.serialize_keras_object(self.language_model),
            "dropout": self.dropout,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        language_model = keras.saving.deserialize_keras_object(config.pop("language_model"))
        checker = cls(language_model, **config)
        checker.build((None, None))  # built, so `save_model` copies weights without the optimizer
        return checker

    def save_to(self, directory, metadata=None):
        """Writes the checker as a kfine model directory (`model.keras` + `training.json`)."""
        if not self.built:  # an untrained checker has not been called yet
            self.build((None, None))
        save_model(self, directory, metadata={"kind": FACT_CHECKER_KIND, **(metadata or {})})


def load_fact_checker(path):
    """Loads a `FactChecker` from a directory written by `FactChecker.save_to` (or a `.keras` file).

    Raises:
        ModelError: the path holds no fact checker.
    """
    path = model_file(path)
    checker = load_keras_file(path)
    if not isinstance(checker, FactChecker):
        raise ModelError(f"{path}: not a kfine fact checker (got {type(checker).__name__})")
    return checker


def train_fact_checker(language_model, knowledge_graph, templates, triples, epochs=12, negatives_per_fact=4,
                       batch_size=64, learning_rate=1e-3, seed=0, log_dir=None, verbose=0):
    """Trains a `FactChecker` on `triples` (supported) against their corruptions (refuted).

    Each fact is stated with every training template; each is corrupted
    `negatives_per_fact` times (object replaced by another entity of the
    relation's range, `corrupt_triples`), and supported sentences are weighted
    so both classes weigh the same.

    Args:
        language_model: `CausalLanguageModel`. The backbone (e.g. `load_model(pretrained)`).
        knowledge_graph: `KnowledgeGraph`. Ranges and truth for corruptions.
        templates: `Templates`.
        triples: list of facts to learn.
        epochs: int.
        negatives_per_fact: int.
        batch_size: int.
        learning_rate: float. Peak AdamW learning rate (cosine decay).
        seed: int. Seeds the corruptions, the head, shuffling and the dropout of
            `language_model` (even if it was built before the call).
        log_dir: str or None. TensorBoard directory.
        verbose: Keras verbosity.

    Returns:
        `(checker, corruptions)`: the trained `FactChecker` and the corrupted
        triples it saw (exclude them to evaluate on new ones).
    """
    seed_training(seed, language_model)
    corruptions = corrupt_triples(knowledge_graph, triples, negatives_per_fact, seed=seed)
    sentences, labels = labelled_claims(Verbalizer(templates), triples, corruptions)
    checker = FactChecker(language_model, name="fact_checker")
    token_ids = checker.encode(sentences)
    positives = max(int(labels.sum()), 1)
    weights = np.where(labels == 1, (len(labels) - positives) / positives, 1.0).astype("float32")
    steps = max(1, epochs * -(-len(labels) // batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.1)
    checker.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.01),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    callbacks = [keras.callbacks.TensorBoard(log_dir)] if log_dir else []
    checker.fit(token_ids, labels[:, None].astype("float32"), sample_weight=weights, batch_size=batch_size,
                epochs=epochs, shuffle=True, callbacks=callbacks, verbose=verbose)
    return checker, corruptions
