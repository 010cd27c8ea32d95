"""TensorBoard extras: the KG embeddings in the projector."""

import os

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector


def write_projector(log_dir, embeddings):
    """Writes embeddings for TensorBoard's projector, each with its labels as metadata.

    Args:
        log_dir: str. The TensorBoard log folder (created if missing).
        embeddings: dict `{name: (matrix, labels)}`: a float array
            `(rows, dim)` and one label per row (e.g. entity names).

    Returns:
        The path of the checkpoint that holds the matrices.
    """
    os.makedirs(log_dir, exist_ok=True)
    config = projector.ProjectorConfig()
    variables = {}
    for name, (matrix, labels) in embeddings.items():
        matrix = np.asarray(matrix, "float32")
        if len(labels) != len(matrix):
            raise ValueError(f"`{name}` has {len(matrix)} rows but {len(labels)} labels.")
        metadata = f"{name}_metadata.tsv"
        with open(os.path.join(log_dir, metadata), "w", encoding="utf-8") as file:
            # One label a line; a tab or newline inside a name would split it.
            file.writelines(" ".join(str(label).split()) + "\n" for label in labels)
        variables[name] = tf.Variable(matrix, name=name)
        entry = config.embeddings.add()
        entry.tensor_name = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
        entry.metadata_path = metadata
    path = tf.train.Checkpoint(**variables).save(os.path.join(log_dir, "embeddings.ckpt"))
    projector.visualize_embeddings(log_dir, config)
    return path


class KnowledgeGraphProjector(keras.callbacks.Callback):
    """Shows a `KnowledgeGraphEncoder`'s entity and relation embeddings in TensorBoard's projector.

    At the end of training it writes the encoded entity table (row per
    entity, labelled with its name) and the relation embeddings (forward and
    inverse, labelled `r` and `^r`).

    Args:
        log_dir: str. The TensorBoard log folder.
        encoder: `KnowledgeGraphEncoder`.
        knowledge_graph: `KnowledgeGraph` the encoder was built from.

    Example:

    >>> callbacks = [keras.callbacks.TensorBoard(log_dir),
    ...              KnowledgeGraphProjector(log_dir, layer.encoder, kg)]
    """

    def __init__(self, log_dir, encoder, knowledge_graph):
        super().__init__()
        encoder.check_knowledge_graph(knowledge_graph)
        self.log_dir = log_dir
        self.encoder = encoder
        self.knowledge_graph = knowledge_graph

    def on_train_end(self, logs=None):
        entities = keras.ops.convert_to_numpy(self.encoder.entity_table())[1:]
        relations = keras.ops.convert_to_numpy(self.encoder.relation_embeddings)
        names = self.knowledge_graph.relations
        write_projector(
            self.log_dir,
            {
                "entities": (entities, self.knowledge_graph.entities),
                "relations": (relations, names + [f"^{name}" for name in names]),
            },
        )
