"""Training data of `AdversarialFineTuner`: finetune facts as real sentences, corrupted facts as fakes."""

import keras
import numpy as np
import tensorflow as tf

from kfine.knowledge.templates import Templates


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
    statements = task.verbalizer.statements(task.finetune_triples)
    rows = tokenizer.encode_batch([statement.sentence for statement in statements], add_eos=True)
    prompts = tokenizer.encode_batch([statement.prompt for statement in statements])
    prompt_lengths = np.array([len(row) for row in prompts], "int32")
    width = min(sequence_length, max(max(len(row) for row in rows), int(prompt_lengths.max()) + answer_length))
    keep = np.flatnonzero(prompt_lengths + answer_length <= width)

    def to_array(token_rows):
        return keras.utils.pad_sequences(token_rows, maxlen=width, padding="post", truncating="post", dtype="int32")

    examples = {"token_ids": to_array(rows)[keep], "prompt_length": prompt_lengths[keep]}
    if corruptions:
        corrupted, weights = _corrupted_sentences(statements, task.model_graph, corruptions, seed)
        corrupted_rows = to_array(tokenizer.encode_batch(corrupted, add_eos=True))
        examples["corrupted_ids"] = corrupted_rows.reshape(len(rows), corruptions, width)[keep]
        examples["corruption_weight"] = np.array(weights, "float32")[keep]
    return examples


def _corrupted_sentences(statements, graph, corruptions, seed):
    """`corruptions` sentences per statement with another object of the relation's range, and a weight each.

    Returns:
        `(sentences, weights)`: the weight is 0 (and the sentences repeat the
        true one) where the relation has no other object to swap in.
    """
    rng = np.random.default_rng(seed)
    ranges = {}
    sentences, weights = [], []
    for statement in statements:
        if statement.relation not in ranges:
            ranges[statement.relation] = sorted(graph.relation_range(statement.relation))
        wrong = sorted(set(ranges[statement.relation]) - graph.objects(statement.subject, statement.relation))
        picks = rng.choice(wrong, size=corruptions) if wrong else [statement.object] * corruptions
        sentences.extend(Templates.fill(statement.template, statement.subject, pick) for pick in picks)
        weights.append(1.0 if wrong else 0.0)
    return sentences, weights


def adversarial_dataset(examples, batch_size, seed=0):
    """A shuffled `tf.data.Dataset` of full batches (static shapes for XLA)."""
    rows = len(examples["token_ids"])
    batch_size = min(batch_size, rows)
    dataset = tf.data.Dataset.from_tensor_slices(examples).shuffle(rows, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
