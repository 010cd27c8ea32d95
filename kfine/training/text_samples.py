"""A callback that shows sample generations in TensorBoard's text tab."""

import keras
import tensorflow as tf


class TextSamples(keras.callbacks.Callback):
    """Writes the completions of a few prompts to TensorBoard at each epoch's end.

    Args:
        generator: an object with `generate(prompts, max_new_tokens)` (e.g. a
            `kfine.models.generation.Generator` over the model being trained).
        prompts: list of str.
        log_dir: str. TensorBoard run directory.
        max_new_tokens: int.
        tag: str. The summary's name.

    Example:

    >>> samples = TextSamples(Generator(model, model.tokenizer), ["The capital of France is"], "runs/x/samples")
    >>> model.fit(dataset, callbacks=[samples])
    """

    def __init__(self, generator, prompts, log_dir, max_new_tokens=8, tag="samples"):
        super().__init__()
        if not prompts:
            raise ValueError(f"`prompts` must be a non-empty list of str. Received: prompts={prompts!r}")
        self.generator = generator
        self.prompts = list(prompts)
        self.max_new_tokens = max_new_tokens
        self.tag = tag
        self.log_dir = log_dir
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        completions = self.generator.generate(self.prompts, self.max_new_tokens)
        lines = ["| prompt | completion |", "|---|---|"]
        lines += [f"| {prompt} | {completion} |" for prompt, completion in zip(self.prompts, completions)]
        with self._writer.as_default():
            tf.summary.text(self.tag, "\n".join(lines), step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._writer.close()
