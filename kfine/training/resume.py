"""Surviving a killed fine-tune: training state backed up as it goes, restored on rerun.

`fine_tune` runs a method inside `resumable(backup_dir)`. Each `fit` of the
method passes `backup_callbacks(stage)` among its callbacks, with a stage name
of its own ("fit", "discriminator", ...): the weights, the optimizer state and
the epoch are saved every epoch (or every `every_steps` batches), each save
replacing the previous one atomically. Run the same command again after a
crash and each stage starts from its last save; stages that had finished are
restored whole and train no further. `fine_tune` deletes the backups once
the fine-tuned model is saved.

Outside `resumable` (the bench, tests), `backup_callbacks` returns no callback.
"""

import contextlib
import os

import keras

from kfine.errors import KfineError
from kfine.io import atomic_directory, write_json

_STATE_DIR = "state"
_WEIGHTS_FILE = "weights.weights.h5"  # Keras requires this suffix
_PROGRESS_FILE = "progress.json"

_active = {"directory": None, "every_steps": None}


@contextlib.contextmanager
def resumable(backup_dir, every_steps=None):
    """Makes `backup_callbacks` back up to `backup_dir` while the context is open.

    Args:
        backup_dir: str. One folder per run; a rerun of the same run must
            pass the same folder.
        every_steps: int or None. Also save every this many batches (None:
            at the end of each epoch only).
    """
    if every_steps is not None and (not isinstance(every_steps, int) or every_steps < 1):
        raise KfineError(f"--checkpoint-every: expected a positive number of steps. Received: {every_steps!r}")
    previous = dict(_active)
    _active.update(directory=os.path.abspath(backup_dir), every_steps=every_steps)
    try:
        yield
    finally:
        _active.update(previous)


def backup_callbacks(stage):
    """The callbacks that make one `fit` resumable: `[AtomicBackupAndRestore]`, or `[]` outside `resumable`.

    Args:
        stage: str. Names this `fit` among the method's fits; each stage has
            its own backup.

    Example:

    >>> model.fit(data, epochs=8, callbacks=[tensorboard, *backup_callbacks("fit")])  # doctest: +SKIP
    """
    if _active["directory"] is None:
        return []
    return [AtomicBackupAndRestore(os.path.join(_active["directory"], stage),
                                   save_freq=_active["every_steps"] or "epoch")]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose every save replaces the previous one atomically.

    The weights (with the optimizer state) and the progress (epoch, batch)
    are written into a temporary folder that then replaces `backup_dir/state`
    by a rename, so a process killed while saving leaves the previous save
    intact, never a half-written file or weights from one save with the
    epoch of another. The backup is kept after `fit` ends (the caller
    deletes it once the result is safe): a rerun killed later restores a
    finished `fit` whole instead of repeating it.

    On restore, training resumes at the start of the epoch that was running
    at the last save, from the weights of that save; with `save_freq` in
    batches, the batches of that epoch done before the save are seen twice.

    Args:
        backup_dir: str. Folder of this `fit`'s backup.
        save_freq: `"epoch"` or int. Save at each epoch's end, or every this many batches.
    """

    def __init__(self, backup_dir, save_freq="epoch"):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        state = os.path.join(backup_dir, _STATE_DIR)
        self._weights_path = os.path.join(state, _WEIGHTS_FILE)
        self._training_metadata_path = os.path.join(state, _PROGRESS_FILE)

    def _save_model(self):
        # Keras writes the two files in place, one after the other.
        with atomic_directory(os.path.dirname(self._weights_path)) as staging:
            self.model.save_weights(os.path.join(staging, _WEIGHTS_FILE))
            write_json(os.path.join(staging, _PROGRESS_FILE),
                       {"epoch": self._current_epoch, "batch": self._last_batch_seen})
