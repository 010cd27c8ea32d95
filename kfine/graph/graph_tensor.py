"""A `KnowledgeGraph` as a TF-GNN GraphTensor: schema text plus tf.Example records.

A graph directory holds

- `schema.pbtxt`: the `GraphSchema`. Node set `entity` (feature `name`),
  edge set `fact` (entity -> entity, feature `relation`: the relation id;
  the relation names, in id order, are the edge set's metadata entry
  `relations`), node set `alias` (feature `name`) and edge set `alias_of`
  (alias -> entity);
- `graph.tfrecords`: GraphTensors as tf.Example records (`tfgnn.write_example`).
  `export_graph` writes the whole KG as one; the Beam sampler writes one per
  seed entity, and `import_graph` unites them;
- `nodes-*.tfrecords`, `edges-*.tfrecords`: the same graph as unigraph
  tables (one tf.Example per node or edge with `#id` / `#source` /
  `#target`), named in the schema's metadata, which is the input format of
  TF-GNN's Beam tools (`tfgnn_sampler`, `tfgnn_graph_sampler`).

Only this package imports TF-GNN (it needs Keras 2 as `tf.keras`; see
`kfine/graph/__main__.py`).
"""

import json
import os

import tensorflow as tf
import tensorflow_gnn as tfgnn
from google.protobuf import text_format

from kfine.errors import KnowledgeGraphError, located
from kfine.io import atomic_directory
from kfine.knowledge.graph import KnowledgeGraph

SCHEMA_FILE = "schema.pbtxt"
GRAPH_FILE = "graph.tfrecords"
ENTITY, ALIAS, FACT, ALIAS_OF = "entity", "alias", "fact", "alias_of"
NAME, RELATION = "name", "relation"
RELATIONS_KEY = "relations"
REVERSED_SUFFIX = "_reversed"


def knowledge_graph_schema(relations):
    """Returns the `GraphSchema` of a KG whose relation ids name `relations`.

    Args:
        relations: list of str. Relation names; position = the `relation` feature's value.

    Returns:
        A `tfgnn.GraphSchema` that `tfgnn.validate_schema` accepts, with the
        unigraph table of every set named in its metadata.
    """
    schema = tfgnn.GraphSchema()
    for node_set in (ENTITY, ALIAS):
        nodes = schema.node_sets[node_set]
        nodes.description = f"{node_set} names"
        nodes.features[NAME].dtype = tf.string.as_datatype_enum
        nodes.metadata.filename = f"nodes-{node_set}.tfrecords"
    facts = schema.edge_sets[FACT]
    facts.description = "one edge per fact, subject -> object"
    facts.source, facts.target = ENTITY, ENTITY
    facts.features[RELATION].dtype = tf.int64.as_datatype_enum
    facts.features[RELATION].description = f"relation id: position in the metadata entry {RELATIONS_KEY!r}"
    facts.metadata.filename = f"edges-{FACT}.tfrecords"
    facts.metadata.extra.add(key=RELATIONS_KEY, value=json.dumps(list(relations), ensure_ascii=False))
    aliases = schema.edge_sets[ALIAS_OF]
    aliases.description = "alias -> the entity it names"
    aliases.source, aliases.target = ALIAS, ENTITY
    aliases.metadata.filename = f"edges-{ALIAS_OF}.tfrecords"
    return schema


def graph_tensor(knowledge_graph):
    """Returns `knowledge_graph` as one `tfgnn.GraphTensor` of `knowledge_graph_schema`."""
    sources, relations, targets = knowledge_graph.adjacency()
    alias_pairs = knowledge_graph.alias_pairs
    alias_names = [alias for _, alias in alias_pairs]
    alias_targets = [knowledge_graph.entity_id(entity) for entity, _ in alias_pairs]

    def names(values):
        return tf.constant(values, dtype=tf.string, shape=(len(values),))

    def indices(values):
        return tf.constant(values, dtype=tf.int64, shape=(len(values),))

    return tfgnn.GraphTensor.from_pieces(
        node_sets={
            ENTITY: tfgnn.NodeSet.from_fields(
                sizes=[knowledge_graph.num_entities], features={NAME: names(knowledge_graph.entities)}
            ),
            ALIAS: tfgnn.NodeSet.from_fields(sizes=[len(alias_names)], features={NAME: names(alias_names)}),
        },
        edge_sets={
            FACT: tfgnn.EdgeSet.from_fields(
                sizes=[knowledge_graph.num_triples],
                adjacency=tfgnn.Adjacency.from_indices((ENTITY, indices(sources)), (ENTITY, indices(targets))),
                features={RELATION: indices(relations)},
            ),
            ALIAS_OF: tfgnn.EdgeSet.from_fields(
                sizes=[len(alias_names)],
                adjacency=tfgnn.Adjacency.from_indices(
                    (ALIAS, indices(range(len(alias_names)))), (ENTITY, indices(alias_targets))
                ),
            ),
        },
    )


def export_graph(knowledge_graph, directory):
    """Writes `knowledge_graph` to `directory` (replaced atomically) as described in the module docstring.

    Returns:
        The path of the schema file.
    """
    schema = knowledge_graph_schema(knowledge_graph.relations)
    tfgnn.validate_schema(schema)
    with atomic_directory(directory) as staging:
        tfgnn.write_schema(schema, os.path.join(staging, SCHEMA_FILE))
        with tf.io.TFRecordWriter(os.path.join(staging, GRAPH_FILE)) as writer:
            writer.write(tfgnn.write_example(graph_tensor(knowledge_graph)).SerializeToString())
        _write_unigraph_tables(knowledge_graph, schema, staging)
    return os.path.join(directory, SCHEMA_FILE)


def _write_unigraph_tables(knowledge_graph, schema, directory):
    def example(**features):
        proto = tf.train.Example()
        for key, value in features.items():
            if isinstance(value, int):
                proto.features.feature[key].int64_list.value.append(value)
            else:
                proto.features.feature[key].bytes_list.value.append(value.encode("utf-8"))
        return proto.SerializeToString()

    rows = {
        ENTITY: (example(**{"#id": name, NAME: name}) for name in knowledge_graph.entities),
        ALIAS: (example(**{"#id": alias, NAME: alias}) for _, alias in knowledge_graph.alias_pairs),
        FACT: (
            example(**{"#source": subject, "#target": obj, RELATION: knowledge_graph.relation_id(relation)})
            for subject, relation, obj in knowledge_graph.triples
        ),
        ALIAS_OF: (example(**{"#source": alias, "#target": entity}) for entity, alias in knowledge_graph.alias_pairs),
    }
    for set_type, set_name, graph_piece in tfgnn.iter_sets(schema):
        if set_type == "context":
            continue
        with tf.io.TFRecordWriter(os.path.join(directory, graph_piece.metadata.filename)) as writer:
            for row in rows[set_name]:
                writer.write(row)


def read_schema(directory):
    """Reads `directory/schema.pbtxt` and validates it; `KnowledgeGraphError` if it is missing or invalid."""
    path = os.path.join(directory, SCHEMA_FILE)
    if not os.path.isfile(path):
        raise KnowledgeGraphError(located(directory, None, f"no {SCHEMA_FILE}: not a TF-GNN graph directory"))
    try:
        schema = tfgnn.read_schema(path)
        tfgnn.validate_schema(schema)
    except (text_format.ParseError, tfgnn.ValidationError) as error:
        raise KnowledgeGraphError(located(path, None, f"not a valid GraphSchema: {error}")) from None
    return schema


def import_graph(directory, name=None):
    """Reads the GraphTensors of a graph directory back into one `KnowledgeGraph`.

    Besides kfine's own shape (module docstring), any schema of the same
    shape written by other TF-GNN tools reads: facts are the edges of every
    edge set between node sets other than `alias`; a node's name is its
    `name` feature, else its `#id` (what the Beam sampler writes); an edge's
    relation is its `relation` feature looked up in the edge set's
    `relations` metadata (or taken as text when it is a string feature),
    else the edge set's name. Several GraphTensors (sampled subgraphs) are
    united.

    Args:
        directory: str. Holds `schema.pbtxt` and `graph.tfrecords`.
        name: str or None. The graph's name (default: the directory's).

    Returns:
        A `KnowledgeGraph`.

    Raises:
        KnowledgeGraphError: files are missing or invalid, or hold no fact.
    """
    schema = read_schema(directory)
    records = os.path.join(directory, GRAPH_FILE)
    if not os.path.isfile(records):
        raise KnowledgeGraphError(located(directory, None, f"no {GRAPH_FILE} (GraphTensors as tf.Example records)"))
    spec = tfgnn.create_graph_spec_from_schema_pb(schema)
    triples, aliases = set(), set()
    try:
        for serialized in tf.data.TFRecordDataset(records):
            graph = tfgnn.parse_single_example(spec, serialized)
            triples.update(_facts(graph, schema))
            aliases.update(_aliases(graph))
    except tf.errors.OpError as error:
        raise KnowledgeGraphError(
            located(records, None, f"cannot be parsed with {SCHEMA_FILE}: {error.message}")
        ) from None
    if not triples:
        raise KnowledgeGraphError(located(records, None, "holds no fact (no edge between entities)"))
    entities = {subject for subject, _, _ in triples} | {obj for _, _, obj in triples}
    return KnowledgeGraph(
        triples,
        [pair for pair in aliases if pair[0] in entities],
        name=name or os.path.basename(os.path.normpath(directory)),
    )


def _node_names(graph, node_set):
    features = graph.node_sets[node_set].features
    key = NAME if NAME in features else "#id" if "#id" in features else None
    if key is None:
        raise KnowledgeGraphError(
            f"node set {node_set!r} has neither a {NAME!r} nor an '#id' feature to name its nodes"
        )
    return [value.decode("utf-8") for value in features[key].numpy().tolist()]


def _facts(graph, schema):
    for edge_set_name, edge_set in graph.edge_sets.items():
        source_set, target_set = edge_set.adjacency.source_name, edge_set.adjacency.target_name
        if ALIAS in (source_set, target_set):
            continue
        source_names, target_names = _node_names(graph, source_set), _node_names(graph, target_set)
        sources = [source_names[index] for index in edge_set.adjacency.source.numpy().tolist()]
        targets = [target_names[index] for index in edge_set.adjacency.target.numpy().tolist()]
        schema_edge_set = schema.edge_sets[edge_set_name]
        relation_name = edge_set_name
        if _is_reversed(schema_edge_set):  # a reversed edge set (unigraph) runs from object to subject
            sources, targets = targets, sources
            relation_name = edge_set_name.removesuffix(REVERSED_SUFFIX)
        relations = _edge_relations(edge_set, relation_name, schema_edge_set)
        yield from zip(sources, relations, targets)


def _is_reversed(schema_edge_set):
    return any(kv.key == "edge_type" and kv.value == "reversed" for kv in schema_edge_set.metadata.extra)


def _edge_relations(edge_set, edge_set_name, schema_edge_set):
    count = int(edge_set.total_size)
    if RELATION not in edge_set.features:
        return [edge_set_name] * count
    values = edge_set.features[RELATION].numpy().tolist()
    if values and isinstance(values[0], bytes):
        return [value.decode("utf-8") for value in values]
    vocabulary = next((json.loads(kv.value) for kv in schema_edge_set.metadata.extra if kv.key == RELATIONS_KEY), None)
    if vocabulary is None:
        raise KnowledgeGraphError(
            f"edge set {edge_set_name!r} has integer relation ids but no {RELATIONS_KEY!r} metadata naming them"
        )
    bad = [value for value in values if not 0 <= value < len(vocabulary)]
    if bad:
        raise KnowledgeGraphError(
            f"edge set {edge_set_name!r}: relation id {bad[0]} is not in its {len(vocabulary)} relations"
        )
    return [vocabulary[value] for value in values]


def _aliases(graph):
    """`(entity, alias)` pairs of every edge set between the alias node set and another one, either way."""
    for edge_set in graph.edge_sets.values():
        ends = {edge_set.adjacency.source_name: edge_set.adjacency.source,
                edge_set.adjacency.target_name: edge_set.adjacency.target}
        if ALIAS not in ends or len(ends) != 2:
            continue
        (entity_set, entity_indices), = ((name, indices) for name, indices in ends.items() if name != ALIAS)
        alias_names, entity_names = _node_names(graph, ALIAS), _node_names(graph, entity_set)
        for alias, entity in zip(ends[ALIAS].numpy().tolist(), entity_indices.numpy().tolist()):
            yield entity_names[entity], alias_names[alias]
