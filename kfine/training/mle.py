"""Maximum-likelihood (next-token) training: pretraining and the baseline fine-tune."""

import warnings

import keras

from kfine.models.batches import token_batches
from kfine.models.optimizer import build_optimizer


@keras.saving.register_keras_serializable(package="kfine")
class NextTokenLoss(keras.losses.Loss):
    """Sparse cross-entropy on logits, averaged over the targets that are not `[PAD]` (id 0).

    The value and gradients of `SparseCategoricalCrossentropy(from_logits=True,
    ignore_class=0)` with one pass over the logits fewer: Keras also sets the
    logits of ignored positions to zero, a select over the whole `(batch,
    sequence, vocabulary)` tensor forward and backward (~2.5% of a step of the
    shipped LM on CPU). Here their loss is dropped instead, so their gradient
    is zero all the same. Each kept loss is scaled by `total / (valid + epsilon)`
    as Keras scales a masked loss before averaging over all positions.

    Args:
        name: str.
        reduction: str. A Keras loss reduction.
        dtype: the loss's dtype (default float32).
    """

    def __init__(self, name="next_token_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        valid = keras.ops.not_equal(y_true, 0)
        losses = keras.ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        weights = keras.ops.cast(valid, losses.dtype)
        total = keras.ops.cast(keras.ops.size(weights), losses.dtype)
        scale = total / (keras.ops.sum(weights) + keras.config.epsilon())
        return keras.ops.where(valid, losses, 0.0) * scale

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}


def next_token_loss():
    """Cross-entropy on logits that ignores `[PAD]` (id 0) targets (`NextTokenLoss`)."""
    return NextTokenLoss()


def compile_mle(model, learning_rate, decay_steps, jit_compile=False):
    """Compiles `model` for next-token training as `train_mle` does: AdamW, cosine decay to 10%.

    Args:
        model: `CausalLanguageModel`.
        learning_rate: float. Peak learning rate.
        decay_steps: int. Steps of the cosine decay.
        jit_compile: bool. Compile the train step with XLA.
    """
    model.compile(optimizer=mle_optimizer(learning_rate, decay_steps), loss=next_token_loss(), jit_compile=jit_compile)


def mle_optimizer(learning_rate, decay_steps):
    """AdamW (weight decay 0.01) with cosine decay from `learning_rate` to 10% over `decay_steps`."""
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=decay_steps, alpha=0.1)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.01)


def train_mle(
    model,
    sentences,
    epochs,
    batch_size=64,
    learning_rate=1e-3,
    seed=0,
    callbacks=(),
    verbose=1,
    jit_compile=False,
):
    """Trains `model` on `sentences` with next-token cross-entropy.

    Args:
        model: `CausalLanguageModel`.
        sentences: list of str.
        epochs: int.
        batch_size: int.
        learning_rate: float. Peak AdamW learning rate (cosine decay to 10%).
        seed: int. Seeds shuffling and dropout.
        callbacks: Keras callbacks (TensorBoard, progress...).
        verbose: Keras verbosity (1 = progress bar).
        jit_compile: bool. Compile the train step with XLA.

    Returns:
        The Keras `History`.
    """
    keras.utils.set_random_seed(seed)
    dataset = token_batches(model.tokenizer, sentences, model.sequence_length, batch_size, shuffle_seed=seed)
    steps = max(1, epochs * -(-len(sentences) // batch_size))
    compile_mle(model, learning_rate, steps, jit_compile=jit_compile)
    build_optimizer(model)
    with warnings.catch_warnings():
        # Length bucketing hides the dataset's size from Keras, which then
        # warns once per run that the first epoch "ran out of data".
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        return model.fit(dataset, epochs=epochs, callbacks=list(callbacks), verbose=verbose, shuffle=False)
