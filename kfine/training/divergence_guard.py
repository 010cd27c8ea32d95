"""A callback that stops a diverging run and puts back the last good weights."""

import math
import sys

import keras


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training on a non-finite or exploding loss; restores the last good weights.

    After every epoch whose monitored values are all finite (and those named
    in `max_increase` not above that factor times their first-epoch value),
    the model's weights are kept as the last good checkpoint: in memory, and
    in `checkpoint_path` when given. When a batch or an epoch breaks that
    rule, training stops, the last good weights are restored and one line
    saying why is printed to stderr (and kept in `stop_message`).

    Args:
        monitor: list of str. Names of the logged values to watch.
        max_increase: dict `{name: factor}`. Values that count as diverged
            above `factor` times their first epoch's (a GAN's own losses may
            rightly grow; the generator's likelihood loss should not).
        checkpoint_path: str or None. A `.weights.h5` file for the last good weights.

    Example:

    >>> guard = DivergenceGuard(monitor=["d_loss", "g_loss", "mle_loss"], max_increase={"mle_loss": 5.0})
    >>> fine_tuner.fit(dataset, epochs=5, callbacks=[guard])
    """

    def __init__(self, monitor=("loss",), max_increase=None, checkpoint_path=None):
        super().__init__()
        max_increase = dict(max_increase or {})
        if any(not factor > 1 for factor in max_increase.values()):
            raise ValueError(f"`max_increase` factors must be > 1. Received: max_increase={max_increase}")
        if checkpoint_path is not None and not checkpoint_path.endswith(".weights.h5"):
            raise ValueError(
                f"`checkpoint_path` must end with .weights.h5. Received: checkpoint_path={checkpoint_path}"
            )
        self.monitor = list(monitor)
        self.max_increase = max_increase
        self.checkpoint_path = checkpoint_path
        self.stop_message = None
        self._good_weights = None
        self._good_epoch = None
        self._first_values = None

    def on_train_begin(self, logs=None):
        self.stop_message = None
        self._first_values = None
        self._keep(epoch=None)

    def on_train_batch_end(self, batch, logs=None):
        problem = self._problem(logs)
        if problem:
            self._stop(f"batch {batch}: {problem}")

    def on_epoch_end(self, epoch, logs=None):
        problem = self._problem(logs)
        if problem:
            self._stop(f"epoch {epoch + 1}: {problem}")
            return
        if self._first_values is None:
            self._first_values = {name: float(logs[name]) for name in self.monitor if name in (logs or {})}
        self._keep(epoch=epoch + 1)

    def _problem(self, logs):
        for name in self.monitor:
            if name not in (logs or {}):
                continue
            value = float(logs[name])
            if not math.isfinite(value):
                return f"{name} = {value} is not finite"
            first = (self._first_values or {}).get(name)
            factor = self.max_increase.get(name)
            if factor and first is not None and abs(value) > factor * max(abs(first), 1e-8):
                return f"{name} = {value:.4g} exceeds {factor} x its first-epoch value {first:.4g}"
        return None

    def _keep(self, epoch):
        self._good_weights = self.model.get_weights()
        self._good_epoch = epoch
        if self.checkpoint_path is not None:
            self.model.save_weights(self.checkpoint_path)

    def _stop(self, problem):
        self.model.set_weights(self._good_weights)
        self.model.stop_training = True
        restored = "the initial weights" if self._good_epoch is None else f"the weights after epoch {self._good_epoch}"
        self.stop_message = f"kfine: training diverged at {problem}; stopped and restored {restored}"
        print(self.stop_message, file=sys.stderr)
