"""The baseline: plain maximum-likelihood fine-tuning on the finetune split."""

import os

import keras

from kfine.models.generation import Generator
from kfine.models.loading import load_model
from kfine.training.mle import train_mle
from kfine.training.resume import backup_callbacks

QUICK_EPOCHS = 30
FULL_EPOCHS = 40


def fine_tune_baseline(task, pretrained, seed, log_dir, quick=False, verbose=0):
    """Fine-tunes the pretrained LM on the finetune sentences with next-token loss."""
    # Seed before loading: layers draw their dropout seeds when they are built.
    keras.utils.set_random_seed(seed)
    model = load_model(pretrained)
    fit_finetune_sentences(model, task, seed, log_dir, QUICK_EPOCHS if quick else FULL_EPOCHS, 2e-3, verbose)
    return Generator(model, model.tokenizer)


def fit_finetune_sentences(model, task, seed, log_dir, epochs, learning_rate, verbose=0):
    """`train_mle` on `task`'s finetune sentences (batch 32), logged to `log_dir/fit` and resumable."""
    train_mle(
        model,
        task.finetune_sentences,
        epochs=epochs,
        batch_size=32,
        learning_rate=learning_rate,
        seed=seed,
        callbacks=[keras.callbacks.TensorBoard(os.path.join(log_dir, "fit")), *backup_callbacks("fit")],
        verbose=verbose,
    )
