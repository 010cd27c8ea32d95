"""`kfine finetune`: one method, one seed, a saved model you can load and query."""

import json
import os

import keras

from kfine.errors import ModelError
from kfine.evaluation.evaluate import evaluate_splits
from kfine.evaluation.task import SPLITS
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker import EntityLinker
from kfine.models.generation import Generator
from kfine.models.loading import METADATA_FILE, MODEL_FILE, load_metadata, save_model
from kfine.training.methods import get_method, method_options

KNOWLEDGE_GRAPH_DIR = "knowledge_graph"
FINE_TUNED_KIND = "kfine-fine-tuned"


def fine_tune(task, pretrained, method, out_dir, seed=0, quick=False, log_dir=None, verbose=1, command=None,
              init_embeddings=None):
    """Fine-tunes with `method`, evaluates every split, and saves the model with its KG.

    The model's KG (`task.model_graph`) is saved beside the model and its
    fingerprint recorded, so `load_fine_tuned` can refuse a different KG.

    `init_embeddings` (a `kfine kg embed` directory) goes to methods that take it.

    Returns:
        The metadata written to `training.json`, with per-split rates.
    """
    generator = get_method(method)(task, pretrained, seed, log_dir or os.path.normpath(out_dir) + "-logs",
                                   quick=quick, verbose=verbose, **method_options(method, init_embeddings))
    evaluation = evaluate_splits(generator, task, SPLITS)
    metadata = {
        "kind": FINE_TUNED_KIND,
        "method": method,
        "pretrained": pretrained,
        "seed": seed,
        "quick": quick,
        "kg_fingerprint": task.model_graph.fingerprint(),
        "endings": getattr(generator, "endings", None),
        "results": {split: rates for split, (rates, _) in evaluation.items()},
        "command": command,
        "init_embeddings": init_embeddings,
    }

    def write_graph(staging):
        task.model_graph.save(os.path.join(staging, KNOWLEDGE_GRAPH_DIR))

    save_model(generator.model, out_dir, metadata=metadata, write_extra=write_graph)
    return metadata


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

    metadata = load_metadata(directory)
    if metadata.get("kind") != FINE_TUNED_KIND:
        raise ModelError(f"{directory}: not a `kfine finetune` output (no {METADATA_FILE} of kind {FINE_TUNED_KIND})")
    if knowledge_graph is None:
        knowledge_graph = KnowledgeGraph.load(os.path.join(directory, KNOWLEDGE_GRAPH_DIR))
    if knowledge_graph.fingerprint() != metadata["kg_fingerprint"]:
        raise ModelError(
            f"{directory}: the model was fine-tuned with KG {metadata['kg_fingerprint'][:12]}…, "
            f"not with this one ({knowledge_graph.fingerprint()[:12]}…); pass the KG it was trained with"
        )
    model = keras.models.load_model(os.path.join(directory, MODEL_FILE), safe_mode=True, compile=False)
    if isinstance(model, knowledge.KnowledgeLanguageModel):
        model.injection.check_knowledge_graph(knowledge_graph)
        linker = EntityLinker(knowledge_graph, model.tokenizer)
        return knowledge.KnowledgeGenerator(model, linker, endings=metadata.get("endings") or (".",))
    return Generator(model, model.tokenizer)


def results_lines(metadata):
    return [f"{split:>10}: " + json.dumps({k: round(v, 3) for k, v in rates.items()})
            for split, rates in metadata["results"].items()]
