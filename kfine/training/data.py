"""tf.data pipelines: sentences tokenized in-graph into next-token batches."""

import tensorflow as tf


def token_batches(tokenizer, sentences, sequence_length, batch_size, shuffle_seed=None):
    """Returns a `tf.data.Dataset` of `(inputs, targets)` for causal LM training.

    Each sentence becomes `[BOS] tokens [EOS]`, cut or right-padded with
    `[PAD]` to `sequence_length + 1`; inputs drop the last position and
    targets the first. Tokenization runs in-graph (tensorflow-text), batches
    have a static shape (so XLA compiles once), and `[PAD]` targets carry no
    loss (`ignore_class=0` in the loss).

    Args:
        tokenizer: `WordPieceTokenizer`.
        sentences: list of str.
        sequence_length: int. Model input length.
        batch_size: int.
        shuffle_seed: int or None. Shuffle each epoch with this seed; None keeps order.
    """
    dataset = tf.data.Dataset.from_tensor_slices(list(sentences))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(sentences), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def to_examples(batch):
        ids = tokenizer.tokenize(batch)
        rows = ids.nrows()
        bos = tf.fill([rows, 1], tokenizer.bos_id)
        eos = tf.fill([rows, 1], tokenizer.eos_id)
        ids = tf.concat([bos, ids, eos], axis=1)
        dense = ids.to_tensor(default_value=tokenizer.pad_id, shape=[None, sequence_length + 1])
        dense = tf.ensure_shape(dense, [None, sequence_length + 1])
        return dense[:, :-1], dense[:, 1:]

    return dataset.map(to_examples, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
