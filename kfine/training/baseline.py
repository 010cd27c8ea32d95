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
    train_mle(
        model,
        task.finetune_sentences,
        epochs=QUICK_EPOCHS if quick else FULL_EPOCHS,
        batch_size=32,
        learning_rate=2e-3,
        seed=seed,
        callbacks=[keras.callbacks.TensorBoard(os.path.join(log_dir, "fit")), *backup_callbacks("fit")],
        verbose=verbose,
    )
    return Generator(model, model.tokenizer)
