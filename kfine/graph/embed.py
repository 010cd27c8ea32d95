"""`kfine kg embed`: GNN and TransE embeddings of a KG, evaluated and written for `--init-embeddings`."""

import os
import time

import numpy as np
import tensorflow as tf

from kfine.graph.embeddings import directed_relations, write_embeddings
from kfine.graph.link_prediction import LinkPredictionModel, rank_metrics, split_facts, train_link_prediction
from kfine.io import write_json

METRICS_FILE = "metrics.json"


def embed_knowledge_graph(knowledge_graph, out_dir, dim=64, num_layers=1, decoder="distmult", epochs=30,
                          held_out=0.05, seed=0, log=None):
    """Trains the GNN model and the TransE baseline on one split and writes both.

    With a decoder other than TransE, a plain table with that decoder is
    trained too (`out_dir/<decoder>/`), so the GNN's share of the gain shows.
    Writes `out_dir/gnn/` and `out_dir/transe/` (embeddings directories, see
    `kfine.graph.embeddings`) and `out_dir/metrics.json`. The written
    embeddings are those trained on the training facts only, the ones the
    metrics describe.

    Args:
        knowledge_graph: `KnowledgeGraph`.
        out_dir: str.
        dim: int. Embedding size.
        num_layers: int. The GNN's message-passing rounds.
        decoder: str. The GNN's decoder, `"transe"` or `"distmult"`.
        epochs: int. Training epochs of each model.
        held_out: float. Fraction of facts in each of valid and test.
        seed: int. Seed of the split, initialization and negatives.
        log: callable for progress lines, or None.

    Returns:
        The metrics dict written to `metrics.json`.
    """
    log = log or (lambda line: None)
    train, valid, test = split_facts(knowledge_graph, held_out, seed)
    known = knowledge_graph.triple_ids.astype(np.int64)
    log(f"{knowledge_graph!r}: {len(train)} training, {len(valid)} validation, {len(test)} test facts")
    configurations = {
        "gnn": (num_layers, decoder, f"{num_layers}-round VanillaMPNN + {decoder}"),
        "transe": (0, "transe", "plain TransE table"),
    }
    if decoder != "transe":  # the ablation that separates the GNN's share from the decoder's
        configurations[decoder] = (0, decoder, f"plain {decoder} table, no GNN")
    metrics = {"split": {"train": len(train), "valid": len(valid), "test": len(test), "seed": seed},
               "epochs": epochs, "dim": dim, "models": {}}
    for name, (layers, model_decoder, description) in configurations.items():
        tf.keras.utils.set_random_seed(seed)
        model = LinkPredictionModel(knowledge_graph.num_entities, knowledge_graph.num_relations, train,
                                    dim=dim, num_layers=layers, decoder=model_decoder, name=name)
        started = time.time()
        losses = train_link_prediction(model, train, epochs, seed=seed,
                                       log=lambda line, name=name: log(f"[{name}] {line}"))
        seconds = time.time() - started
        row = {"description": description, "decoder": model_decoder, "layers": layers, "train_seconds": seconds,
               "final_loss": losses[-1], "valid": rank_metrics(model, valid, known),
               "test": rank_metrics(model, test, known)}
        metrics["models"][name] = row
        log(f"[{name}] test MRR {row['test']['mrr']:.3f}, Hits@10 {row['test']['hits_at_10']:.3f} ({seconds:.0f} s)")
        write_embeddings(os.path.join(out_dir, name), knowledge_graph.entities, model.entity_embeddings().numpy(),
                         directed_relations(knowledge_graph.relations), model.directed_relation_embeddings().numpy())
    write_json(os.path.join(out_dir, METRICS_FILE), metrics)
    return metrics
