"""Perplexity of a causal LM on held-out sentences (fluency)."""

import math

import numpy as np
import tensorflow as tf

from kfine.training.data import token_batches


def perplexity(model, sentences, batch_size=64):
    """exp(mean next-token negative log-likelihood) over `sentences`, `[EOS]` included."""
    if not sentences:
        return float("nan")
    tokenizer = model.tokenizer
    total_nll, total_tokens = 0.0, 0
    for inputs, targets in token_batches(tokenizer, sentences, model.sequence_length, batch_size):
        logits = model(inputs, training=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        weights = tf.cast(targets != tokenizer.pad_id, nll.dtype)
        total_nll += float(tf.reduce_sum(nll * weights))
        total_tokens += int(np.sum(weights))
    return math.exp(total_nll / max(total_tokens, 1))
