"""Saving and loading kfine model directories (and bare `.keras` files)."""

import contextlib
import json
import os
import tempfile
import zipfile

import keras

from kfine.errors import ModelError, first_line
from kfine.io import artifact_path, atomic_directory

MODEL_FILE = "model.keras"
METADATA_FILE = "training.json"


def model_file(path):
    """Returns the `.keras` file of a model directory (or `path` if it is one)."""
    if os.path.isdir(path):
        path = artifact_path(path, MODEL_FILE, ModelError)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such model file (expected a directory holding {MODEL_FILE}, or a .keras file)")
    return path


def check_model_path(path):
    """Raises `ModelError` in one line unless `path` names a loadable model or keras-hub preset (read nothing yet)."""
    from kfine.models.keras_hub_backbone import is_preset

    if not is_preset(path):
        model_file(path)


DTYPES = ("float32", "bfloat16", "mixed_bfloat16")
_load_options = {"dtype": None, "lora_rank": None}


@contextlib.contextmanager
def load_options(dtype=None, lora_rank=None):
    """Within it, `load_model` gives keras-hub presets `dtype` and LoRA of rank `lora_rank`.

    How `kfine finetune --dtype/--lora-rank` reach the model each method
    loads. With LoRA, keras-hub's `backbone.enable_lora(rank)` freezes the
    backbone's weights and trains rank-`lora_rank` updates of its attention
    projections; Keras merges them into the kernels when the model is saved,
    so the saved model is a plain one that loads without LoRA.

    Args:
        dtype: str or None. One of `DTYPES`: the backbone's dtype policy
            ("mixed_bfloat16" computes in bfloat16 and keeps float32 weights).
        lora_rank: int or None. A positive rank enables LoRA.

    Raises:
        ModelError: a bad `dtype` or `lora_rank`.
    """
    if dtype is not None and dtype not in DTYPES:
        raise ModelError(f"--dtype must be one of {', '.join(DTYPES)}. Received: {dtype!r}")
    if lora_rank is not None and (isinstance(lora_rank, bool) or not isinstance(lora_rank, int) or lora_rank < 1):
        raise ModelError(f"--lora-rank must be a positive integer. Received: {lora_rank!r}")
    previous = dict(_load_options)
    _load_options.update(dtype=dtype, lora_rank=lora_rank)
    try:
        yield
    finally:
        _load_options.update(previous)


def load_model(path, dtype=None):
    """Loads a kfine model from a directory, a `.keras` file or a keras-hub preset, in safe mode.

    Args:
        path: str. A model directory written by `save_model`, a `.keras` file,
            or a keras-hub preset: a folder written by `save_to_preset` or a
            handle such as `kaggle://keras/gpt2/keras/gpt2_base_en` (see
            `kfine.models.keras_hub_backbone`).
        dtype: str or None. A keras-hub preset's dtype policy (e.g. "bfloat16");
            default: that of the enclosing `load_options`.

    Returns:
        The model; a `CausalLanguageModel` for kfine language models.

    Raises:
        ModelError: the path is missing, not a `.keras` archive, refused by
            safe mode (e.g. it holds a Lambda layer), or not a language model.
    """
    import kfine.layers  # noqa: F401  (registers kfine's serializable layers)
    from kfine.models.causal_lm import CausalLanguageModel
    from kfine.models.keras_hub_backbone import is_preset, load_keras_hub_preset  # also registers its layers

    dtype = dtype or _load_options["dtype"]
    lora_rank = _load_options["lora_rank"]
    if is_preset(path) and not os.path.exists(os.path.join(path, MODEL_FILE)):
        model = load_keras_hub_preset(path, dtype=dtype)
        if lora_rank:
            model.layers[0].backbone.enable_lora(lora_rank)
        return model
    if lora_rank or dtype not in (None, "float32"):
        raise ModelError(f"{path}: --dtype and --lora-rank apply to keras-hub presets, not to kfine's own models")
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
    import kfine.models.keras_hub_backbone  # noqa: F401  (registers the layers a keras-hub-based model holds)

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


def on_pretraining_split(task, pretrained):
    """Returns `task` on the subject split `pretrained` was pretrained with, if it was pretrained on this KG.

    A model kfine pretrained records its KG's fingerprint and split seed
    (training.json); held-out subjects stay out of its pretraining text only
    on that split. Any other model (a preset kfine did not pretrain, another
    KG) leaves `task` as it is.
    """
    from kfine.knowledge.task import FactTask

    metadata = load_metadata(pretrained)
    if "split_seed" not in metadata or metadata.get("kg_fingerprint") != task.knowledge_graph.fingerprint():
        return task
    return FactTask(task.knowledge_graph, task.templates, split_seed=metadata["split_seed"], size=task.size)


def copy_model(model):
    """Returns a new model of `model`'s class and config holding its weights, without optimizer state.

    The copy trains apart from `model` (a frozen reference, a second trainer
    on the same start). Its dropout draws new seeds from the global
    generators when it is built, as any new layer does: a run that must not
    depend on what ran before reseeds it (`kfine.models.seeding.seed_training`).

    Raises:
        ModelError: `model`'s config does not build it (a subclassed model is
            built only by a call), so there is nothing to copy its weights into.
    """
    copy = model.__class__.from_config(model.get_config())
    if not copy.built:
        raise ModelError(f"{type(model).__name__}: its config builds no weights, so they cannot be copied")
    # Through a weights file rather than set_weights: Keras saves a LoRA
    # layer's kernel with its update merged, which a copy without LoRA loads.
    with tempfile.TemporaryDirectory() as scratch:
        weights = os.path.join(scratch, "copy.weights.h5")
        model.save_weights(weights)
        copy.load_weights(weights)
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
