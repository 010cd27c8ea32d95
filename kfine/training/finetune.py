"""`kfine finetune`: one method, one seed, a saved model you can load and query."""

import json
import os
import shutil

from kfine.errors import KfineError, ModelError
from kfine.evaluation.evaluate import evaluate_splits
from kfine.factcheck.fact_checker import load_fact_checker
from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.io import artifact_path, write_json
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.templates import Templates
from kfine.models.generation import Generator
from kfine.models.keras_hub_backbone import is_preset_handle
from kfine.models.loading import METADATA_FILE, MODEL_FILE, load_keras_file, load_metadata, load_options, save_model
from kfine.training.factcheck import FACT_CHECKER_DIR, TEMPLATES_FILE
from kfine.training.methods import get_method
from kfine.training.methods import method_options as checked_method_options
from kfine.training.resume import resumable
from kfine.training.strategy import strategy_scope

KNOWLEDGE_GRAPH_DIR = "knowledge_graph"
FINE_TUNED_KIND = "kfine-fine-tuned"
BACKUP_RUN_FILE = "run.json"


def fine_tune(task, pretrained, method, out_dir, seed=0, quick=False, log_dir=None, verbose=1, command=None,
              strategy=None, backup_dir=None, checkpoint_every=None, method_options=None, init_embeddings=None,
              dtype=None, lora_rank=None):
    """Fine-tunes with `method`, evaluates every split, and saves the model with its KG.

    The model's KG (`task.model_graph`) is saved beside the model and its
    fingerprint recorded, so `load_fine_tuned` can refuse a different KG.
    `method_options` (a dict) are passed to the method as keyword arguments
    (e.g. `{"checker": "kg"}` for factcheck); a generator with
    `write_artifacts(directory)` saves its own extra files beside the model.

    Training is resumable: the method's `fit`s back up their state to
    `backup_dir` every epoch (see `kfine.training.resume`); if the process
    dies, the same call resumes from the last backup. The backup is deleted
    once the model is saved.

    Args:
        strategy: `tf.distribute.Strategy` or None. The method runs in its
            scope (see `kfine.training.strategy`).
        backup_dir: str or None. Default: `out_dir` + "-backup".
        checkpoint_every: int or None. Also back up every this many steps.

    `init_embeddings` (a `kfine kg embed` directory) goes to methods that take it.
    `dtype` and `lora_rank` apply to a keras-hub preset (see `load_options`).

    Returns:
        The metadata written to `training.json`, with per-split rates.
    """
    backup_dir = backup_dir or os.path.normpath(out_dir) + "-backup"
    pretrained_id = pretrained if is_preset_handle(pretrained) else os.path.abspath(pretrained)
    run = {"method": method, "pretrained": pretrained_id, "seed": seed, "quick": quick,
           "kg_fingerprint": task.model_graph.fingerprint(), "method_options": method_options or {},
           "init_embeddings": init_embeddings, "dtype": dtype, "lora_rank": lora_rank}
    options = {**(method_options or {}), **checked_method_options(method, init_embeddings)}
    _claim_backup(backup_dir, run)
    try:
        with strategy_scope(strategy), resumable(backup_dir, checkpoint_every), load_options(dtype, lora_rank):
            generator = get_method(method)(task, pretrained, seed, log_dir or os.path.normpath(out_dir) + "-logs",
                                           quick=quick, verbose=verbose, **options)
    except BaseException:
        if os.listdir(backup_dir) == [BACKUP_RUN_FILE]:  # failed before any backup: leave nothing behind
            shutil.rmtree(backup_dir)
        raise
    evaluation = evaluate_splits(generator, task, task.evaluated_splits)
    metadata = {
        "kind": FINE_TUNED_KIND,
        "method": method,
        "pretrained": pretrained,
        "seed": seed,
        "quick": quick,
        "method_options": method_options or {},
        "kg_fingerprint": task.model_graph.fingerprint(),
        "endings": getattr(generator, "endings", None),
        "results": {split: rates for split, (rates, _) in evaluation.items()},
        "command": command,
        "init_embeddings": init_embeddings,
        "dtype": dtype,
        "lora_rank": lora_rank,
    }

    def write_graph(staging):
        task.model_graph.save(os.path.join(staging, KNOWLEDGE_GRAPH_DIR))
        task.templates.save(os.path.join(staging, TEMPLATES_FILE))  # compositions, and the keys of KG updates
        if hasattr(generator, "write_artifacts"):
            generator.write_artifacts(staging)

    save_model(generator.model, out_dir, metadata=metadata, write_extra=write_graph)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return metadata


def _claim_backup(backup_dir, run):
    """Marks `backup_dir` as `run`'s; refuses a backup left by a different run."""
    path = os.path.join(backup_dir, BACKUP_RUN_FILE)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as stream:
                previous = json.load(stream)
        except (OSError, ValueError) as error:
            raise KfineError(f"{path}: unreadable ({error}); delete {backup_dir} to start afresh") from None
        if previous != run:
            changed = ", ".join(key for key in run if previous.get(key) != run[key])
            raise KfineError(f"{backup_dir}: holds the backup of another run (different {changed}); "
                             f"delete it to start afresh, or pass another --backup-dir")
        return
    os.makedirs(backup_dir, exist_ok=True)
    write_json(path, run)


def is_fine_tuned(path):
    """Whether `path` is a directory written by `fine_tune`."""
    return os.path.isdir(path) and load_metadata(path).get("kind") == FINE_TUNED_KIND


def load_fine_tuned_graph(directory):
    """The `KnowledgeGraph` saved beside a fine-tuned model (the one it was fine-tuned with)."""
    return KnowledgeGraph.load(artifact_path(directory, KNOWLEDGE_GRAPH_DIR, ModelError))


def load_fact_checkers(path):
    """The fact checkers saved at `path`, as `[(name, checker)]`.

    Args:
        path: str. A `kfine finetune --method factcheck` output (its neural
            checker, `"neural"`, if it was trained with one, and `"kg"`, the
            `KnowledgeGraphChecker` over its KG and templates), or a fact
            checker directory (`FactChecker.save_to`).

    Raises:
        ModelError: `path` holds no fact checker.
    """
    if not is_fine_tuned(path):
        return [("neural", load_fact_checker(path))]
    checkers = []
    neural = artifact_path(path, FACT_CHECKER_DIR, ModelError)
    if os.path.isfile(os.path.join(neural, MODEL_FILE)):
        checkers.append(("neural", load_fact_checker(neural)))
    templates = artifact_path(path, TEMPLATES_FILE, ModelError)
    if os.path.isfile(templates):
        checkers.append(("kg", KnowledgeGraphChecker(load_fine_tuned_graph(path), Templates.from_file(templates))))
    if not checkers:
        raise ModelError(f"{path}: a fine-tuned model without a fact checker; fine-tune with --method factcheck")
    return checkers


def load_fine_tuned(directory, knowledge_graph=None):
    """Loads a `kfine finetune` directory as a ready `Generator`.

    Args:
        directory: str. Written by `fine_tune`.
        knowledge_graph: `KnowledgeGraph` or None. The KG to use; it must be the
            one the model was fine-tuned with (default: the copy saved beside it).

    Raises:
        ModelError: not a fine-tuned model directory, or a different KG.
    """
    import kfine.training.knowledge as knowledge  # registers KnowledgeLanguageModel
    from kfine.layers import FactDatastore
    from kfine.training.knowledge_add import KnowledgeAddGenerator

    if not is_fine_tuned(directory):
        raise ModelError(f"{directory}: not a `kfine finetune` output (no {METADATA_FILE} of kind {FINE_TUNED_KIND})")
    metadata = load_metadata(directory)
    if knowledge_graph is None:
        knowledge_graph = load_fine_tuned_graph(directory)
    if knowledge_graph.fingerprint() != metadata["kg_fingerprint"]:
        raise ModelError(
            f"{directory}: the model was fine-tuned with KG {metadata['kg_fingerprint'][:12]}…, "
            f"not with this one ({knowledge_graph.fingerprint()[:12]}…); pass the KG it was trained with"
        )
    model = load_keras_file(artifact_path(directory, MODEL_FILE, ModelError))
    # Directories written before templates were saved beside the model have none.
    templates_path = os.path.join(directory, TEMPLATES_FILE)
    templates = Templates.from_file(templates_path) if os.path.exists(templates_path) else None
    if isinstance(model, knowledge.KnowledgeLanguageModel):
        model.injection.check_knowledge_graph(knowledge_graph)
        linker = EntityLinker(knowledge_graph, model.tokenizer)
        return knowledge.KnowledgeGenerator(model, linker, endings=metadata.get("endings") or (".",),
                                            templates=templates)
    for layer in model.layers:
        if hasattr(layer, "check_knowledge_graph"):  # e.g. the `model.add` path's datastore
            layer.check_knowledge_graph(knowledge_graph)
    if templates is not None and isinstance(model.layers[-1], FactDatastore):
        return KnowledgeAddGenerator(model, templates)
    return Generator(model, model.tokenizer)


def results_lines(metadata):
    return [f"{split:>10}: " + json.dumps({k: round(v, 3) for k, v in rates.items()})
            for split, rates in metadata["results"].items()]
