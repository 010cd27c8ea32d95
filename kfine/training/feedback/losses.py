"""The losses of the feedback rounds on top of MLE.

- unlikelihood (Welleck et al., 2020) on refuted samples,
  `-log(1 - p(c | prefix))`, at the token `c` where the refuted continuation
  leaves every reference of its prompt;
- a DPO preference loss (Rafailov et al., 2023; FactTune) on pairs of the
  same prompt, supported over refuted, against a frozen reference model:
  `-log σ(β [(log π(w) - log π_ref(w)) - (log π(l) - log π_ref(l))])`.
"""

import keras
import numpy as np

# Rows per reference-model call when scoring a round's pairs.
_SCORING_BATCH = 256


def token_log_probs(model, token_ids, training=False):
    """Log-probability of each next token: `(batch, sequence - 1)` for `[BOS] ... ` rows."""
    logits = model(token_ids[:, :-1], training=training)
    log_probs = keras.ops.log_softmax(keras.ops.cast(logits, "float32"), axis=-1)
    return keras.ops.take_along_axis(log_probs, token_ids[:, 1:, None], axis=-1)[..., 0]


def sequence_log_probs(model, rows, masks):
    """`model`'s log-probability of each row's masked tokens (its completion), as float32 numpy."""
    values = []
    for start in range(0, len(rows), _SCORING_BATCH):
        log_probs = token_log_probs(model, keras.ops.convert_to_tensor(rows[start:start + _SCORING_BATCH]))
        values.append(keras.ops.convert_to_numpy(
            keras.ops.sum(log_probs * masks[start:start + _SCORING_BATCH], axis=1)))
    return np.concatenate(values).astype("float32")


def unlikelihood_loss(log_probs, mask):
    """Mean of `-log(1 - p)` over the masked tokens (0 when none)."""
    one_minus_p = -keras.ops.expm1(keras.ops.minimum(log_probs, -1e-6))  # 1 - p, kept > 0
    losses = -keras.ops.log(one_minus_p) * mask
    return keras.ops.sum(losses) / keras.ops.maximum(keras.ops.sum(mask), 1.0)


def preference_loss(chosen, rejected, chosen_reference, rejected_reference, weights, beta):
    """DPO loss on sequence log-probabilities; pairs with weight 0 are padding."""
    margin = beta * ((chosen - chosen_reference) - (rejected - rejected_reference))
    losses = -keras.ops.log_sigmoid(margin) * weights
    return keras.ops.sum(losses) / keras.ops.maximum(keras.ops.sum(weights), 1.0)
