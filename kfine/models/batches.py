"""tf.data pipelines: sentences tokenized in-graph into next-token batches."""

import tensorflow as tf

# Padded lengths of the length buckets; sentences are padded to the smallest
# bucket they fit, so short facts do not pay for the longest one.
_BUCKET_LENGTHS = (16, 24, 32, 48, 64, 96, 128, 256, 512)


def token_batches(tokenizer, sentences, sequence_length, batch_size, shuffle_seed=None):
    """Returns a `tf.data.Dataset` of `(inputs, targets)` for causal LM training.

    Each sentence becomes `[BOS] tokens [EOS]`, cut to `sequence_length + 1`
    tokens; inputs drop the last position and targets the first. Tokenization
    runs in-graph (tensorflow-text). Batches group sentences of similar length
    and are right-padded with `[PAD]` to a few fixed lengths, so the train step
    is traced once per bucket and little compute goes to padding; `[PAD]`
    targets carry no loss (`kfine.training.mle.NextTokenLoss`).

    Args:
        tokenizer: `WordPieceTokenizer`.
        sentences: list of str.
        sequence_length: int. Longest model input.
        batch_size: int.
        shuffle_seed: int or None. Shuffle each epoch with this seed; None keeps order.
    """
    dataset = tf.data.Dataset.from_tensor_slices(list(sentences))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(sentences), seed=shuffle_seed, reshuffle_each_iteration=True)

    def to_ids(sentence):
        ids = tokenizer.tokenize(sentence)
        ids = tf.concat([[tokenizer.bos_id], ids, [tokenizer.eos_id]], axis=0)
        return ids[: sequence_length + 1]

    boundaries = [length + 1 for length in _BUCKET_LENGTHS if length < sequence_length + 1]
    boundaries.append(sequence_length + 2)
    dataset = dataset.map(to_ids, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda ids: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=tokenizer.pad_id,
        pad_to_bucket_boundary=True,
    )
    return dataset.map(lambda ids: (ids[:, :-1], ids[:, 1:])).prefetch(tf.data.AUTOTUNE)
