"""`FactCheckFineTuner`: rounds of sample -> check -> train on a language model.

Each round (a) samples completions of the training prompts, (b) checks the
sentences with a fact checker (neural `FactChecker` or the exact
`KnowledgeGraphChecker`), and (c) trains on MLE on the references (so the
model keeps them), unlikelihood on the refuted samples and, optionally, DPO
pairs (see `kfine.training.feedback.losses`).
"""

import os

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kfine.factcheck.verdict import REFUTED, SUPPORTED
from kfine.models.generation import Generator
from kfine.models.loading import copy_model
from kfine.training.feedback import summaries
from kfine.training.feedback.config import FeedbackConfig
from kfine.training.feedback.losses import sequence_log_probs
from kfine.training.feedback.round_data import round_arrays, round_dataset
from kfine.training.feedback.trainer import FeedbackTrainer


class FactCheckFineTuner:
    """Rounds of sample -> check -> train on a language model.

    Args:
        language_model: `CausalLanguageModel`, fine-tuned in place.
        checker: an object with `check(sentences) -> [Verdict]`
            (`FactChecker` or `KnowledgeGraphChecker`).
        config: `FeedbackConfig`.
        reference_checker: `KnowledgeGraphChecker` or None. When given, each
            round also logs how often `checker` agrees with it.
        seed: int. Seeds sampling and shuffling.
        log_dir: str or None. TensorBoard directory: `fit/` gets the losses
            per epoch, `feedback/` per round the share refuted, each loss,
            checker scores and sample generations.
        verbose: Keras verbosity.
        abstention_targets: `AbstentionTargets` or None. Its probe prompts
            (in `fit`'s dict with no references) are judged by its exact KG
            check and trained on the targets it derives; its counts (the
            checker's false alarms and misses on the probe included) join
            each round's statistics.

    Example:

    >>> tuner = FactCheckFineTuner(model, KnowledgeGraphChecker(kg, templates), FeedbackConfig(rounds=2))
    >>> history = tuner.fit(prompt_references)  # doctest: +SKIP
    """

    def __init__(self, language_model, checker, config=None, reference_checker=None, seed=0, log_dir=None,
                 verbose=0, abstention_targets=None):
        if not hasattr(checker, "check"):
            raise ValueError(f"`checker` must have a `check(sentences)` method. Received: checker={checker!r}")
        self.language_model = language_model
        self.tokenizer = language_model.tokenizer
        self.checker = checker
        self.config = config or FeedbackConfig()
        self.reference_checker = reference_checker
        self.abstention_targets = abstention_targets
        self.seed = seed
        self.log_dir = log_dir
        self.verbose = verbose
        # The frozen reference of the preference loss: the model before any feedback.
        self.reference_model = copy_model(language_model)
        self.trainer = FeedbackTrainer(language_model, self.config)
        self.trainer.compile(optimizer=keras.optimizers.AdamW(learning_rate=self.config.learning_rate,
                                                              weight_decay=0.01))

    def fit(self, prompt_references):
        """Runs the rounds.

        Args:
            prompt_references: dict `{prompt: [reference sentence, ...]}`; each
                reference starts with its prompt.

        Returns:
            A list with one dict of statistics per round.
        """
        prompts = list(prompt_references)
        reference_rows = {prompt: self.tokenizer.encode_batch(prompt_references[prompt], add_eos=True)
                          for prompt in prompts}
        writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "feedback")) if self.log_dir else None
        history = []
        for round_index in range(self.config.rounds):
            samples = self._sample(prompts, round_index)
            verdicts = self.checker.check([sentence for _, sentence, _ in samples])
            batches, counts = self._training_data(samples, verdicts, reference_rows)
            fit = self.trainer.fit(
                batches,
                epochs=(round_index + 1) * self.config.epochs_per_round,
                initial_epoch=round_index * self.config.epochs_per_round,
                shuffle=False,  # the dataset shuffles itself
                callbacks=[keras.callbacks.TensorBoard(os.path.join(self.log_dir, "fit"))] if self.log_dir else [],
                verbose=self.verbose,
            )
            stats = {**counts, **{name: float(values[-1]) for name, values in fit.history.items()}}
            probabilities = np.array([v.probability for v in verdicts if v.probability is not None], "float32")
            stats["checker_mean_probability"] = float(probabilities.mean()) if len(probabilities) else float("nan")
            if self.reference_checker is not None:
                exact = self.reference_checker.check([sentence for _, sentence, _ in samples])
                judged = [(v.label, e.label) for v, e in zip(verdicts, exact) if e.label in (SUPPORTED, REFUTED)]
                stats["agreement_with_kg"] = float(np.mean([a == b for a, b in judged])) if judged else float("nan")
                stats["kg_refuted_share"] = sum(e.label == REFUTED for e in exact) / len(exact)
            history.append(stats)
            if writer is not None:
                summaries.write_round(writer, round_index, stats, samples, verdicts, probabilities)
        if writer is not None:
            writer.close()
        return history

    def _sample(self, prompts, round_index):
        """`[(prompt, sentence, completion_ids)]`, `samples_per_prompt` per prompt."""
        config = self.config
        sampler = keras_hub.samplers.TopKSampler(k=config.top_k, temperature=config.temperature,
                                                 seed=self.seed * 1000 + round_index)
        generator = Generator(self.language_model, self.tokenizer, sampler=sampler)
        repeated = [prompt for prompt in prompts for _ in range(config.samples_per_prompt)]
        completions = generator.generate_ids(repeated)
        texts = self.tokenizer.decode_batch(completions)
        return [(prompt, f"{prompt} {text}", ids) for prompt, text, ids in zip(repeated, texts, completions)]

    def _training_data(self, samples, verdicts, reference_rows):
        """The round's `tf.data.Dataset` and counts of what went into it."""
        probe_counts, probe = {}, frozenset()
        if self.abstention_targets is not None:
            # Probe prompts (never trained on) get targets from the exact KG check: see `kfine.training.probe`.
            unique_prompts = sorted({prompt for prompt, _, _ in samples})
            prompt_rows = dict(zip(unique_prompts, self.tokenizer.encode_batch(unique_prompts)))
            reference_rows, verdicts, probe_counts = self.abstention_targets.round_references(
                samples, verdicts, reference_rows, prompt_rows)
            probe = frozenset(self.abstention_targets.prompts)
        arrays, counts = round_arrays(self.tokenizer, samples, verdicts, reference_rows, probe_prompts=probe)
        counts.update(probe_counts)
        if self.config.preference_weight > 0:
            arrays["chosen_reference"] = sequence_log_probs(self.reference_model, arrays["chosen"],
                                                            arrays["chosen_mask"])
            arrays["rejected_reference"] = sequence_log_probs(self.reference_model, arrays["rejected"],
                                                              arrays["rejected_mask"])
        else:
            arrays["chosen_reference"] = arrays["rejected_reference"] = np.zeros_like(arrays["pair_weight"])
        return round_dataset(arrays, self.config.batch_size, self.seed), counts
