"""A feedback round's data: the references, and the checked samples as unlikelihood rows and preference pairs."""

import keras
import numpy as np
import tensorflow as tf

from kfine.factcheck.verdict import REFUTED, SUPPORTED

# The keys of a preference pair in a round's arrays.
PAIR_KEYS = ("chosen", "chosen_mask", "rejected", "rejected_mask", "chosen_reference", "rejected_reference",
             "pair_weight")


def prompt_references(task):
    """`{prompt: [reference sentences]}` for the finetune facts with the training templates."""
    references = {}
    for statement in task.verbalizer.statements(task.finetune_triples):
        references.setdefault(statement.prompt, []).append(statement.sentence)
    return references


def round_arrays(tokenizer, samples, verdicts, reference_rows, probe_prompts=frozenset()):
    """The round's arrays, but the pairs' reference-model log-probabilities, and counts of what went in.

    A refuted sample gives an unlikelihood row (masked at the token where it
    leaves every reference of its prompt) and a preference pair: the first
    supported sample of its prompt (else its first reference) over it.

    Args:
        tokenizer: `WordPieceTokenizer`.
        samples: list of `(prompt, sentence, completion_ids)`.
        verdicts: list of `Verdict`, one per sample.
        reference_rows: dict `{prompt: [token rows of its references]}`.
        probe_prompts: set of prompts of the probe slice: their pairs always
            prefer the round's target (e.g. the abstention) over a refuted sample.

    Returns:
        `(arrays, counts)`: padded `references`, `negatives` with
        `negative_mask`, and `chosen`/`rejected` rows with their completion
        masks and `pair_weight` (one all-zero row, weight 0, when there are none).
    """
    eos = tokenizer.eos_id
    negatives, negative_masks, pairs = [], [], []
    supported = {}
    # One tokenizer call for all prompts: one call a sample costs ~1000x more.
    unique_prompts = sorted({prompt for prompt, _, _ in samples})
    prompt_rows = dict(zip(unique_prompts, tokenizer.encode_batch(unique_prompts)))
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
        chosen = (reference_rows[prompt][0], len(prompt_ids)) if prompt in probe_prompts \
            else supported.get(prompt, (reference_rows[prompt][0], len(prompt_ids)))
        pairs.append((chosen, (row, len(prompt_ids))))
    references = [row for rows in reference_rows.values() for row in rows]
    arrays = {"references": _pad(references)}
    arrays["negatives"], arrays["negative_mask"] = _pad_with_masks(negatives, negative_masks)
    arrays["chosen"], arrays["chosen_mask"] = _pad_with_masks(
        [row for (row, _), _ in pairs], [_completion_mask(row, start) for (row, start), _ in pairs])
    arrays["rejected"], arrays["rejected_mask"] = _pad_with_masks(
        [row for _, (row, _) in pairs], [_completion_mask(row, start) for _, (row, start) in pairs])
    arrays["pair_weight"] = np.ones(max(len(pairs), 1), "float32") * (1.0 if pairs else 0.0)
    counts = {"samples": len(samples), "refuted": refuted, "refuted_share": refuted / max(len(samples), 1),
              "unlikelihood_rows": len(negatives), "preference_pairs": len(pairs)}
    return arrays, counts


def round_dataset(arrays, batch_size, seed):
    """Batches of the round: each step one batch of references, of unlikelihood rows and of pairs.

    An epoch is one pass over the references; the rows and pairs repeat
    (shuffled) as long as it lasts.
    """
    references = tf.data.Dataset.from_tensor_slices(arrays["references"]).shuffle(
        len(arrays["references"]), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    negatives = tf.data.Dataset.from_tensor_slices((arrays["negatives"], arrays["negative_mask"]))
    negatives = negatives.shuffle(len(arrays["negatives"]), seed=seed).repeat().batch(batch_size)
    pairs = tf.data.Dataset.from_tensor_slices({key: arrays[key] for key in PAIR_KEYS})
    pairs = pairs.shuffle(len(arrays["pair_weight"]), seed=seed).repeat().batch(batch_size)

    def merge(reference_batch, negative_batch, pair_batch):
        return {"references": reference_batch, "negatives": negative_batch[0],
                "negative_mask": negative_batch[1], **pair_batch}

    return tf.data.Dataset.zip(references, negatives, pairs).map(merge).prefetch(tf.data.AUTOTUNE)


def _divergence(row, references, prompt_length):
    """Index of the first token of `row` after the prompt that no reference has at that point; None if none."""
    for index in range(prompt_length, len(row)):
        if not any(reference[:index + 1] == row[:index + 1] for reference in references):
            return index
    return None


def _completion_mask(row, prompt_length):
    """Target mask `(len(row) - 1,)` over the completion tokens (the prompt's are 0)."""
    return [0.0] * (prompt_length - 1) + [1.0] * (len(row) - prompt_length)


def _pad(rows):
    """Rows right-padded into an int32 array; one all-zero row when there are none (a dataset needs one)."""
    return keras.utils.pad_sequences(rows or [[0, 0]], padding="post", dtype="int32")


def _pad_with_masks(rows, masks):
    """Rows and their target masks padded alike; one all-zero row when there are none."""
    tokens = _pad(rows)
    return tokens, keras.utils.pad_sequences(masks or [[0.0]], maxlen=tokens.shape[1] - 1, padding="post",
                                             dtype="float32")
