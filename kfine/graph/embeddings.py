"""KG embedding files: what `kfine kg embed` writes and `--init-embeddings` reads.

An embeddings directory holds `entity_embeddings.npy` `(num_entities, dim)`
with `entities.txt` (one entity name a line, row order), and
`relation_embeddings.npy` `(2 * num_relations, dim)` with `relations.txt`:
each relation, then its inverse named `^relation` (the order of
`KnowledgeGraphEncoder.relation_embeddings`). Rows are matched to a graph by
name, so the files fit any graph whose entities and relations they cover
(e.g. the KG minus the unknown split's facts).

This module needs only NumPy: Keras 3 processes read the files with it.
"""

import os

import numpy as np

from kfine.errors import KfineError
from kfine.io import atomic_file
from kfine.knowledge.graph import INVERSE_PREFIX

ENTITY_EMBEDDINGS, ENTITIES = "entity_embeddings.npy", "entities.txt"
RELATION_EMBEDDINGS, RELATIONS = "relation_embeddings.npy", "relations.txt"


def directed_relations(relations):
    """The relation names in `KnowledgeGraphEncoder` order: each relation, then `^relation` for each."""
    return list(relations) + [INVERSE_PREFIX + relation for relation in relations]


def write_embeddings(directory, entities, entity_embeddings, relations, relation_embeddings):
    """Writes the four files into `directory` (created if needed), each atomically.

    Args:
        entities: list of str, one per row of `entity_embeddings`.
        relations: list of str, one per row of `relation_embeddings`
            (`directed_relations` order).
    """
    os.makedirs(directory, exist_ok=True)
    for names, array, names_file, array_file in (
        (entities, entity_embeddings, ENTITIES, ENTITY_EMBEDDINGS),
        (relations, relation_embeddings, RELATIONS, RELATION_EMBEDDINGS),
    ):
        if len(names) != len(array):
            raise ValueError(f"{len(names)} names for {len(array)} rows of {array_file}")
        with atomic_file(os.path.join(directory, array_file), "wb") as stream:
            np.save(stream, np.asarray(array, np.float32))
        with atomic_file(os.path.join(directory, names_file)) as stream:
            stream.writelines(f"{name}\n" for name in names)


def read_embeddings(directory, knowledge_graph):
    """Returns `(entity_table, relation_table)` for `knowledge_graph`, rows matched by name.

    Args:
        directory: str. Written by `write_embeddings`.
        knowledge_graph: `KnowledgeGraph` whose ids order the rows.

    Returns:
        float32 arrays `(num_entities, dim)` (row = entity id) and
        `(2 * num_relations, dim)` (row = relation id, inverse at id + num_relations).

    Raises:
        KfineError: files are missing or malformed, or lack an entity or
            relation of the graph.
    """
    tables = []
    for names_file, array_file, wanted in (
        (ENTITIES, ENTITY_EMBEDDINGS, knowledge_graph.entities),
        (RELATIONS, RELATION_EMBEDDINGS, directed_relations(knowledge_graph.relations)),
    ):
        names_path, array_path = os.path.join(directory, names_file), os.path.join(directory, array_file)
        for path in (names_path, array_path):
            if not os.path.isfile(path):
                raise KfineError(f"--init-embeddings: no {path} (write it with `kfine kg embed --out DIR`)")
        with open(names_path, encoding="utf-8") as stream:
            names = stream.read().splitlines()
        try:
            array = np.load(array_path, allow_pickle=False)
        except ValueError as error:
            raise KfineError(f"{array_path}: not a NumPy array file ({error})") from None
        if array.ndim != 2 or len(array) != len(names) or not np.issubdtype(array.dtype, np.floating):
            raise KfineError(
                f"{array_path}: expected a float array with one row per line of {names_file} ({len(names)}), "
                f"got dtype {array.dtype} and shape {array.shape}"
            )
        rows = {name: index for index, name in enumerate(names)}
        missing = [name for name in wanted if name not in rows]
        if missing:
            raise KfineError(
                f"{names_path}: {len(missing)} of the knowledge graph's {len(wanted)} names are missing "
                f"(first: {missing[0]!r}); the embeddings were trained on another knowledge graph"
            )
        tables.append(array[[rows[name] for name in wanted]].astype(np.float32))
    if tables[0].shape[1] != tables[1].shape[1]:
        raise KfineError(f"{directory}: entity and relation embeddings differ in size "
                         f"({tables[0].shape[1]} vs {tables[1].shape[1]})")
    return tables[0], tables[1]


def initialize_encoder(encoder, knowledge_graph, directory):
    """Sets a built `KnowledgeGraphEncoder`'s entity and relation tables from an embeddings directory.

    Raises:
        KfineError: the files do not fit `knowledge_graph` or the encoder's size.
    """
    encoder.check_knowledge_graph(knowledge_graph)
    entity_table, relation_table = read_embeddings(directory, knowledge_graph)
    if entity_table.shape[1] != encoder.embedding_dim:
        raise KfineError(
            f"--init-embeddings: {directory} holds {entity_table.shape[1]}-dimensional embeddings, but the "
            f"model's KG encoder has embedding_dim={encoder.embedding_dim}; run `kfine kg embed --dim "
            f"{encoder.embedding_dim}`"
        )
    rows = np.concatenate([np.zeros((1, entity_table.shape[1]), np.float32), entity_table])
    encoder.entity_embeddings.assign(rows.astype(encoder.entity_embeddings.dtype))
    encoder.relation_embeddings.assign(relation_table.astype(encoder.relation_embeddings.dtype))
