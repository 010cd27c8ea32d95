"""Fact-check-feedback fine-tuning: sample, check, and learn from what the checker refutes.

After the baseline's MLE fine-tune, each round (a) samples completions of the
training prompts, (b) checks the sentences with a fact checker (neural
`FactChecker` or the exact `KnowledgeGraphChecker`), and (c) trains on:

- MLE on the reference sentences (the finetune facts), so the model keeps them;
- unlikelihood (Welleck et al., 2020) on refuted samples,
  `-log(1 - p(c | prefix))`, at the token `c` where the refuted continuation
  leaves every reference of its prompt: the first wrong token of the answer,
  not the words it shares with a right one, nor the sentence's ending;
- the probe slice (`kfine.training.probe`): questions about finetune-split
  subjects kept out of the MLE sentences; their refuted answers make the
  abstention phrase the target (SFT) and the chosen side of DPO pairs,
  their supported ones are kept as positives, so the model learns to
  abstain where its knowledge ends;
- optionally a DPO preference loss (Rafailov et al., 2023; FactTune) on pairs
  of the same prompt, supported sample (or the reference when no sample was
  supported) over refuted sample, against the frozen model of the start of
  the feedback rounds: `-log σ(β [(log π(w) - log π_ref(w)) - (log π(l) - log π_ref(l))])`.
"""

import dataclasses
import json
import os

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kfine.errors import KfineError
from kfine.factcheck.fact_checker import FactChecker, train_fact_checker
from kfine.factcheck.claims import corrupt_triples, labelled_claims
from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.factcheck.verdict import REFUTED, SUPPORTED
from kfine.knowledge.templates import Templates
from kfine.models.generation import Generator
from kfine.training.baseline import fine_tune_baseline
from kfine.training.mle import next_token_loss
from kfine.training.probe import AbstentionTargets, ProbeSlice

CHECKERS = ("neural", "kg")
FACT_CHECKER_DIR = "fact_checker"
TEMPLATES_FILE = "templates.json"
SAMPLES_LOGGED = 12
CHECKER_QUICK_EPOCHS = 6
CHECKER_FULL_EPOCHS = 8


@dataclasses.dataclass(frozen=True)
class FeedbackConfig:
    """How the feedback rounds run.

    Args:
        rounds: int. Sample -> check -> train rounds.
        samples_per_prompt: int. Sampled completions of each training prompt per round.
        epochs_per_round: int. Passes over the references per round.
        unlikelihood_weight: float. Weight of the unlikelihood loss.
        preference_weight: float. Weight of the DPO loss (0 turns it off).
        beta: float. DPO temperature.
        top_k: int. Sampling keeps the `top_k` most likely tokens.
        temperature: float. Sampling temperature.
        learning_rate: float. AdamW learning rate of the rounds.
        batch_size: int. References per step (and refuted samples, pairs).
    """

    rounds: int = 3
    samples_per_prompt: int = 4
    epochs_per_round: int = 2
    unlikelihood_weight: float = 1.0
    preference_weight: float = 0.0
    beta: float = 0.5
    top_k: int = 10
    temperature: float = 1.0
    learning_rate: float = 3e-4
    batch_size: int = 32

    def __post_init__(self):
        for name in ("rounds", "samples_per_prompt", "epochs_per_round", "top_k", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        for name in ("unlikelihood_weight", "preference_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0. Received: {name}={getattr(self, name)!r}")
        for name in ("beta", "temperature", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0. Received: {name}={getattr(self, name)!r}")


# The quick configuration keeps a bench seed within minutes of the baseline's on a CPU.
QUICK_FEEDBACK = FeedbackConfig(rounds=2, samples_per_prompt=2, epochs_per_round=2)
FULL_FEEDBACK = FeedbackConfig()


def token_log_probs(model, token_ids, training=False):
    """Log-probability of each next token: `(batch, sequence - 1)` for `[BOS] ... ` rows."""
    logits = model(token_ids[:, :-1], training=training)
    log_probs = tf.nn.log_softmax(tf.cast(logits, "float32"), axis=-1)
    return tf.gather(log_probs, token_ids[:, 1:], axis=-1, batch_dims=2)


def unlikelihood_loss(log_probs, mask):
    """Mean of `-log(1 - p)` over the masked tokens (0 when none)."""
    one_minus_p = -tf.math.expm1(tf.minimum(log_probs, -1e-6))  # 1 - p, kept > 0
    losses = -tf.math.log(one_minus_p) * mask
    return tf.reduce_sum(losses) / tf.maximum(tf.reduce_sum(mask), 1.0)


def preference_loss(chosen, rejected, chosen_reference, rejected_reference, weights, beta):
    """DPO loss on sequence log-probabilities; pairs with weight 0 are padding."""
    margin = beta * ((chosen - chosen_reference) - (rejected - rejected_reference))
    losses = -tf.math.log_sigmoid(margin) * weights
    return tf.reduce_sum(losses) / tf.maximum(tf.reduce_sum(weights), 1.0)


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
            preference = tf.constant(0.0)
            if config.preference_weight > 0:
                chosen = tf.reduce_sum(
                    token_log_probs(self.language_model, data["chosen"], training=True) * data["chosen_mask"], 1)
                rejected = tf.reduce_sum(
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
            (in `fit`'s dict with no references) are trained on the
            targets it derives from the verdicts; its counts (false alarms
            included) join each round's statistics.

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
        self.reference_model = language_model.__class__.from_config(language_model.get_config())
        self.reference_model.set_weights(language_model.get_weights())
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
                self._log_round(writer, round_index, stats, samples, verdicts, probabilities)
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
        eos = self.tokenizer.eos_id
        negatives, negative_masks, pairs = [], [], []
        supported = {}
        # One tokenizer call for all prompts: one call a sample costs ~1000x more.
        unique_prompts = sorted({prompt for prompt, _, _ in samples})
        prompt_rows = dict(zip(unique_prompts, self.tokenizer.encode_batch(unique_prompts)))
        probe_counts, probe = {}, set()
        if self.abstention_targets is not None:
            # Probe prompts (never trained on) get the checker's verdicts as targets: see `kfine.training.probe`.
            reference_rows, probe_counts = self.abstention_targets.round_references(
                samples, verdicts, reference_rows, prompt_rows)
            probe = set(self.abstention_targets.prompts)
        for (prompt, _, ids), verdict in zip(samples, verdicts):
            prompt_ids = prompt_rows[prompt]
            row = prompt_ids + ids + [eos]
            if verdict.label == SUPPORTED:
                supported.setdefault(prompt, (row, len(prompt_ids)))
        seen = set()
        refuted = 0
        for (prompt, _, ids), verdict in zip(samples, verdicts):
            if verdict.label != REFUTED:
                continue
            refuted += 1
            prompt_ids = prompt_rows[prompt]
            row = prompt_ids + ids + [eos]
            divergence = _divergence(row, reference_rows[prompt], len(prompt_ids))
            if divergence is None or tuple(row) in seen:
                continue  # the "refuted" sample is a reference (checker error) or a repeat
            seen.add(tuple(row))
            mask = [0.0] * (len(row) - 1)
            mask[divergence - 1] = 1.0  # targets are shifted by one
            negatives.append(row)
            negative_masks.append(mask)
            chosen = (reference_rows[prompt][0], len(prompt_ids)) if prompt in probe \
                else supported.get(prompt, (reference_rows[prompt][0], len(prompt_ids)))
            pairs.append((chosen, (row, len(prompt_ids))))
        references = [row for rows in reference_rows.values() for row in rows]
        data = {"references": _pad(references)}
        data["negatives"], data["negative_mask"] = _pad_with_masks(negatives, negative_masks)
        chosen_rows = [row for (row, _), _ in pairs]
        rejected_rows = [row for _, (row, _) in pairs]
        data["chosen"], data["chosen_mask"] = _pad_with_masks(
            chosen_rows, [_completion_mask(row, start) for (row, start), _ in pairs])
        data["rejected"], data["rejected_mask"] = _pad_with_masks(
            rejected_rows, [_completion_mask(row, start) for _, (row, start) in pairs])
        data["pair_weight"] = np.ones(max(len(pairs), 1), "float32") * (1.0 if pairs else 0.0)
        if self.config.preference_weight > 0:
            data["chosen_reference"] = self._sequence_log_probs(data["chosen"], data["chosen_mask"])
            data["rejected_reference"] = self._sequence_log_probs(data["rejected"], data["rejected_mask"])
        else:
            data["chosen_reference"] = data["rejected_reference"] = np.zeros_like(data["pair_weight"])
        dataset = self._batches(data)
        counts = {"samples": len(samples), "refuted": refuted, "refuted_share": refuted / max(len(samples), 1),
                  "unlikelihood_rows": len(negatives), "preference_pairs": len(pairs), **probe_counts}
        return dataset, counts

    def _sequence_log_probs(self, rows, masks):
        """Reference-model log-probability of each row's completion."""
        values = []
        for start in range(0, len(rows), 256):
            log_probs = token_log_probs(self.reference_model, tf.constant(rows[start:start + 256]))
            values.append(tf.reduce_sum(log_probs * masks[start:start + 256], axis=1).numpy())
        return np.concatenate(values).astype("float32")

    def _batches(self, data):
        size = self.config.batch_size
        references = tf.data.Dataset.from_tensor_slices(data["references"]).shuffle(
            len(data["references"]), seed=self.seed, reshuffle_each_iteration=True).batch(size)
        negatives = tf.data.Dataset.from_tensor_slices((data["negatives"], data["negative_mask"]))
        negatives = negatives.shuffle(len(data["negatives"]), seed=self.seed).repeat().batch(size)
        pair_keys = ("chosen", "chosen_mask", "rejected", "rejected_mask", "chosen_reference",
                     "rejected_reference", "pair_weight")
        pairs = tf.data.Dataset.from_tensor_slices({key: data[key] for key in pair_keys})
        pairs = pairs.shuffle(len(data["pair_weight"]), seed=self.seed).repeat().batch(size)

        def merge(reference_batch, negative_batch, pair_batch):
            return {"references": reference_batch, "negatives": negative_batch[0],
                    "negative_mask": negative_batch[1], **pair_batch}

        return tf.data.Dataset.zip(references, negatives, pairs).map(merge).prefetch(tf.data.AUTOTUNE)

    def _log_round(self, writer, round_index, stats, samples, verdicts, probabilities):
        with writer.as_default():
            for name, value in stats.items():
                tf.summary.scalar(f"feedback/{name}", value, step=round_index)
            if len(probabilities):
                tf.summary.histogram("checker/probabilities", probabilities, step=round_index)
            lines = ["| sentence | verdict | P(supported) |", "|---|---|---|"]
            refuted_first = sorted(zip(samples, verdicts), key=lambda pair: pair[1].label != REFUTED)
            lines += [f"| {sentence} | {verdict.label} | {verdict.probability} |"
                      for (_, sentence, _), verdict in refuted_first[:SAMPLES_LOGGED]]
            tf.summary.text("feedback/samples", "\n".join(lines), step=round_index)
        writer.flush()


def _divergence(row, references, prompt_length):
    """Index of the first token of `row` after the prompt that no reference has at that point; None if none."""
    for index in range(prompt_length, len(row)):
        if not any(reference[:index + 1] == row[:index + 1] for reference in references):
            return index
    return None


def _completion_mask(row, prompt_length):
    """Target mask `(len(row) - 1,)` over the completion tokens (the prompt's are 0)."""
    return [0.0] * (prompt_length - 1) + [1.0] * (len(row) - prompt_length)


def _pad(rows, length=None):
    length = length or max((len(row) for row in rows), default=2)
    array = np.zeros((max(len(rows), 1), length), "int32")
    for index, row in enumerate(rows):
        array[index, : len(row)] = row
    return array


def _pad_with_masks(rows, masks):
    """Rows and their target masks padded alike; one all-zero row when there are none."""
    tokens = _pad(rows)
    padded_masks = np.zeros((len(tokens), tokens.shape[1] - 1), "float32")
    for index, mask in enumerate(masks):
        padded_masks[index, : len(mask)] = mask
    return tokens, padded_masks


def prompt_references(task):
    """`{prompt: [reference sentences]}` for the finetune facts with the training templates."""
    references = {}
    for subject, relation, obj in task.finetune_triples:
        for template in task.templates.training_templates(relation):
            references.setdefault(Templates.prompt(template, subject), []).append(
                Templates.fill(template, subject, obj))
    return references


class FeedbackGenerator(Generator):
    """The fine-tuned model's `Generator`, with the checker that taught it.

    Args:
        model: the fine-tuned `CausalLanguageModel`.
        fact_checker: the `FactChecker` or `KnowledgeGraphChecker` used.
        feedback_history: list of per-round statistics (`FactCheckFineTuner.fit`).
        templates: `Templates` of the task, saved for the KG checker.
    """

    def __init__(self, model, fact_checker, feedback_history, templates, **kwargs):
        super().__init__(model, model.tokenizer, **kwargs)
        self.fact_checker = fact_checker
        self.feedback_history = feedback_history
        self.templates = templates

    def write_artifacts(self, directory):
        """Saves, for `kfine check`, a neural checker as `fact_checker/` and the templates the KG checker reads."""
        if isinstance(self.fact_checker, FactChecker):
            self.fact_checker.save_to(os.path.join(directory, FACT_CHECKER_DIR))
        self.templates.save(os.path.join(directory, TEMPLATES_FILE))


def build_checker(kind, task, language_model, seed=0, log_dir=None, quick=False, verbose=0):
    """The checker a factcheck method feeds back: `"neural"` or `"kg"`.

    The neural checker starts from a copy of `language_model` (after the
    MLE stage it has read the finetune facts) and learns the finetune facts
    against corruptions. It is evaluated on corruptions it never saw, of the
    same facts, with the training templates and with the reserved
    paraphrases; the results go to `log_dir/checker_evaluation.json`.

    Returns:
        `(checker, evaluation)`; `evaluation` is None for the KG checker.
    """
    if kind not in CHECKERS:
        raise KfineError(f"--checker must be one of {', '.join(CHECKERS)}. Received: {kind!r}")
    graph = task.model_graph
    if kind == "kg":
        return KnowledgeGraphChecker(graph, task.templates), None
    backbone = language_model.__class__.from_config(language_model.get_config())
    backbone.set_weights(language_model.get_weights())
    checker, seen_corruptions = train_fact_checker(
        backbone, graph, task.templates, task.finetune_triples,
        epochs=CHECKER_QUICK_EPOCHS if quick else CHECKER_FULL_EPOCHS, seed=seed,
        log_dir=os.path.join(log_dir, "checker") if log_dir else None, verbose=verbose)
    evaluation = evaluate_checker(checker, task, seen_corruptions, seed)
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "checker_evaluation.json"), "w", encoding="utf-8") as stream:
            json.dump(evaluation, stream, indent=2)
    return checker, evaluation


def evaluate_checker(checker, task, seen_corruptions, seed=0, negatives_per_fact=4):
    """Accuracy, AUROC and agreement with the KG checker on new corruptions of the finetune facts.

    Returns:
        `{which: {"accuracy", "auroc", "claims", "agreement_with_kg"}}` for
        `which` in `"training"` (training templates) and `"paraphrase"`.
    """
    graph = task.model_graph
    corruptions = corrupt_triples(graph, task.finetune_triples, negatives_per_fact, seed=seed + 1,
                                  exclude=seen_corruptions)
    exact = KnowledgeGraphChecker(graph, task.templates)
    evaluation = {}
    for which in ("training", "paraphrase"):
        sentences, labels = labelled_claims(task.verbalizer, task.finetune_triples, corruptions, which=which)
        if not sentences:
            continue
        scores = checker.evaluate_claims(sentences, labels)
        neural = [verdict.label for verdict in checker.check(sentences)]
        reference = [verdict.label for verdict in exact.check(sentences)]
        scores["agreement_with_kg"] = float(np.mean([a == b for a, b in zip(neural, reference)]))
        evaluation[which] = scores
    return evaluation


def fine_tune_with_feedback(task, pretrained, seed, log_dir, quick=False, verbose=0, checker="neural",
                            preference_weight=0.0):
    """The baseline's MLE fine-tune, then fact-check-feedback rounds (see the module docs)."""
    if checker not in CHECKERS:
        raise KfineError(f"--checker must be one of {', '.join(CHECKERS)}. Received: {checker!r}")
    generator = fine_tune_baseline(task, pretrained, seed, os.path.join(log_dir, "mle"), quick=quick,
                                   verbose=verbose)
    model = generator.model
    fact_checker, _ = build_checker(checker, task, model, seed=seed, log_dir=log_dir, quick=quick, verbose=verbose)
    config = QUICK_FEEDBACK if quick else FULL_FEEDBACK
    config = dataclasses.replace(config, preference_weight=preference_weight)
    reference_checker = KnowledgeGraphChecker(task.model_graph, task.templates) if checker == "neural" else None
    probe = ProbeSlice(task)
    probe_prompts = probe.prompts()
    targets = AbstentionTargets(probe_prompts, model.tokenizer, KnowledgeGraphChecker(probe.graph, probe.templates))
    tuner = FactCheckFineTuner(model, fact_checker, config, reference_checker=reference_checker, seed=seed,
                               log_dir=log_dir, verbose=verbose, abstention_targets=targets)
    history = tuner.fit({**prompt_references(task), **{prompt: [] for prompt in probe_prompts}})
    return FeedbackGenerator(model, fact_checker, history, task.templates)


def fine_tune_factcheck(task, pretrained, seed, log_dir, quick=False, verbose=0, checker="neural"):
    """MLE + unlikelihood on what the fact checker refutes."""
    return fine_tune_with_feedback(task, pretrained, seed, log_dir, quick=quick, verbose=verbose, checker=checker)


def fine_tune_factcheck_preference(task, pretrained, seed, log_dir, quick=False, verbose=0, checker="neural"):
    """MLE + unlikelihood + a DPO preference loss (supported over refuted samples)."""
    return fine_tune_with_feedback(task, pretrained, seed, log_dir, quick=quick, verbose=verbose, checker=checker,
                                   preference_weight=1.0)

