"""Perplexity of a causal LM on held-out sentences (fluency)."""

import math

import numpy as np
import tensorflow as tf

from kfine.models.batches import token_batches


def perplexity(generator, sentences, batch_size=64):
    """exp(mean next-token negative log-likelihood) over `sentences`, `[EOS]` included.

    Args:
        generator: a `Generator` (its `sequence_logits` gives the logits, so
            models with side inputs, like linked entities, are measured too).
        sentences: list of str.
        batch_size: int.
    """
    if not sentences:
        return float("nan")
    tokenizer = generator.tokenizer
    total_nll, total_tokens = 0.0, 0
    for inputs, targets in token_batches(tokenizer, sentences, generator.sequence_limit, batch_size):
        logits = generator.sequence_logits(inputs)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        weights = tf.cast(targets != tokenizer.pad_id, nll.dtype)
        total_nll += float(tf.reduce_sum(nll * weights))
        total_tokens += int(np.sum(weights))
    return math.exp(total_nll / max(total_tokens, 1))
