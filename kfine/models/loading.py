"""Saving and loading kfine model directories (and bare `.keras` files)."""

import json
import os
import zipfile

import keras

from kfine.errors import ModelError, first_line
from kfine.io import artifact_path, atomic_directory

MODEL_FILE = "model.keras"
METADATA_FILE = "training.json"
KERAS_HUB_CONFIG = "config.json"  # marks a keras-hub preset folder


def model_file(path):
    """Returns the `.keras` file of a model directory (or `path` if it is one)."""
    if os.path.isdir(path):
        path = artifact_path(path, MODEL_FILE, ModelError)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such model file (expected a directory holding {MODEL_FILE}, or a .keras file)")
    return path


def load_model(path):
    """Loads a kfine model from a directory or a `.keras` file, in safe mode.

    Args:
        path: str. A model directory written by `save_model`, a `.keras` file,
            or a keras-hub preset folder with a kfine vocabulary (see
            `kfine.models.keras_hub_backbone`).

    Returns:
        The model; a `CausalLanguageModel` for kfine language models.

    Raises:
        ModelError: the path is missing, not a `.keras` archive, refused by
            safe mode (e.g. it holds a Lambda layer), or not a language model.
    """
    import kfine.layers  # noqa: F401  (registers kfine's serializable layers)
    from kfine.models.causal_lm import CausalLanguageModel
    from kfine.models.keras_hub_backbone import load_keras_hub_preset

    if os.path.isdir(path) and os.path.exists(os.path.join(path, KERAS_HUB_CONFIG)):
        return load_keras_hub_preset(path)
    path = model_file(path)
    model = load_keras_file(path)
    if not isinstance(model, CausalLanguageModel) or model.tokenizer is None:
        raise ModelError(f"{path}: not a kfine language model (got {type(model).__name__} without a tokenizer)")
    return model


def load_keras_file(path):
    """Loads a `.keras` file in safe mode, without compiling; any failure is one `ModelError` line.

    Safe mode refuses Lambda layers and classes that are not registered
    (`keras.saving.register_keras_serializable`): a model file is data, and
    loading it never runs code it carries.
    """
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a .keras archive (corrupt or of another kind)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types; report them in one line
        raise ModelError(f"{path}: cannot load the model: {first_line(error)}") from error


def load_metadata(path):
    """Returns the training metadata saved beside a model ({} if none)."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    metadata_path = artifact_path(directory, METADATA_FILE, ModelError)
    if not os.path.exists(metadata_path):
        return {}
    try:
        with open(metadata_path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError) as error:
        raise ModelError(f"{metadata_path}: unreadable metadata: {error}") from error


def copy_model(model):
    """Returns a new model of `model`'s class and config holding its weights, without optimizer state.

    The copy trains apart from `model` (a frozen reference, a second trainer
    on the same start). Its dropout draws new seeds from the global
    generators when it is built, as any new layer does: a run that must not
    depend on what ran before reseeds it (`kfine.training.seeding.seed_training`).

    Raises:
        ModelError: `model`'s config does not build it (a subclassed model is
            built only by a call), so there is nothing to copy its weights into.
    """
    copy = model.__class__.from_config(model.get_config())
    if not copy.built:
        raise ModelError(f"{type(model).__name__}: its config builds no weights, so they cannot be copied")
    copy.set_weights(model.get_weights())
    return copy


def save_model(model, directory, metadata=None, card=None, write_extra=None):
    """Writes `model` (without optimizer state), its metadata and card, atomically.

    Args:
        model: a Keras model.
        directory: str. Created or replaced as a whole.
        metadata: dict. Written as `training.json`.
        card: str. Markdown written as `README.md` (the model card).
        write_extra: callable(staging_directory) writing more files (e.g. the KG).
    """
    # A fresh copy has no optimizer, so the artifact holds weights only.
    # Subclassed models are built only by a call; those are saved as they are.
    try:
        inference_copy = copy_model(model)
    except ModelError:
        inference_copy = model
    with atomic_directory(directory) as staging:
        inference_copy.save(os.path.join(staging, MODEL_FILE))
        if write_extra is not None:
            write_extra(staging)
        if metadata is not None:
            with open(os.path.join(staging, METADATA_FILE), "w", encoding="utf-8") as stream:
                json.dump(metadata, stream, indent=2, ensure_ascii=False)
        if card is not None:
            with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as stream:
                stream.write(card)
