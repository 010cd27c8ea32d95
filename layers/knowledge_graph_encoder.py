"""Relational message passing (R-GCN) over a knowledge graph's entities."""

import keras
import numpy as np

from kfine.errors import ModelError
from kfine.layers.layer_utils import check_positive_int, check_rate, clone_initializer, is_int, xla_training_function


@keras.saving.register_keras_serializable(package="kfine")
class KnowledgeGraphEncoder(keras.layers.Layer):
    """Encodes every entity of a knowledge graph from its neighbourhood.

    The layer owns an entity table and refines it with `num_layers` rounds of
    R-GCN message passing (Schlichtkrull et al., 2018). Every fact
    `(subject, relation, object)` sends a message along the relation and one
    back along its inverse, so there are `2 * num_relations` relation-specific
    transforms. One round computes, for every entity `i`,

        h_i' = h_i + act(W_self h_i + b + sum_r 1/c_{i,r} sum_{j in N_r(i)} W_r h_j)

    where `N_r(i)` are the entities sending to `i` along relation `r` and
    `c_{i,r} = |N_r(i)|`; the `h_i +` is a residual connection. The edges
    are stored sorted by relation, so each `W_r` multiplies only its own
    relation's messages (a static slice), and the messages are summed into
    their receivers with `keras.ops.segment_sum`: the work grows with the
    number of facts, not with entities times relations, and the layer runs
    under `jit_compile=True`.

    Row 0 of the table stands for "no entity" (the `EntityLinker` writes
    entity `i` as `i + 1` and 0 outside mentions) and is always zero in
    the output, so `layer(entity_ids)` can be fed linker output directly.

    Built from a `KnowledgeGraph`, the layer stores the graph's edges as
    non-trainable int32 weights: they are saved with the weights of a
    `.keras` file, while the config holds only counts, sizes and the
    graph's fingerprint, so `keras.models.load_model` rebuilds the layer
    without the graph.

    The layer also owns `relation_embeddings`, one vector per relation and
    inverse relation (inverse of `r` is `r + num_relations`). Message passing
    does not read them; layers that read facts (`KnowledgeInjectionLayer`)
    use them as keys, so they train only inside such a layer.

    Args:
        knowledge_graph: `kfine.knowledge.KnowledgeGraph` or None. The graph
            whose counts, fingerprint and edges the layer takes. None when
            the counts are given instead (as `from_config` does); the edges
            then come from the saved weights.
        embedding_dim: int. Size of every entity and relation vector.
        num_layers: int. Rounds of message passing; 0 leaves a plain
            embedding table.
        activation: activation of every round.
        initial_embeddings: float array of shape
            `(num_entities, embedding_dim)` or None. Pretrained KG embeddings
            (row `i` for entity id `i`) that initialize the table. Not part
            of the config: after saving, the trained table is in the weights.
        dropout: float. Dropout rate on every round's update.
        num_entities: int or None. Number of entities; taken from
            `knowledge_graph` when given.
        num_relations: int or None. Number of relations (not counting
            inverses); taken from `knowledge_graph` when given.
        num_edges: int or None. Number of facts; taken from
            `knowledge_graph` when given.
        edges_per_relation: list of int or None. Number of facts of each
            relation (the stored edges are sorted by relation); taken from
            `knowledge_graph` when given.
        kg_fingerprint: str or None. `knowledge_graph.fingerprint()`, kept so
            that `check_knowledge_graph` can tell whether entity ids match.
        embeddings_initializer: initializer for the entity table (unless
            `initial_embeddings` is given) and the relation embeddings.
        kernel_initializer: initializer for the self and relation transforms.
        embeddings_regularizer: regularizer of the entity table (e.g. a
            `KnowledgeConstraintRegularizer`) or None.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        entity_ids: int tensor of any shape, or None. Rows of the table:
            entity id + 1, 0 for no entity.
        training: bool. Whether dropout is active.

    Returns:
        For `entity_ids`, a float tensor of shape
        `(*entity_ids.shape, embedding_dim)` (zeros where the id is 0); for
        None, the whole table of shape `(num_entities + 1, embedding_dim)`.

    Example:

    >>> kg = KnowledgeGraph([("France", "capital", "Paris")])
    >>> encoder = KnowledgeGraphEncoder(kg, embedding_dim=8)
    >>> encoder().shape
    (3, 8)
    >>> encoder(keras.ops.array([[0, 2]])).shape
    (1, 2, 8)
    """

    def __init__(
        self,
        knowledge_graph=None,
        embedding_dim=64,
        num_layers=1,
        activation="gelu",
        initial_embeddings=None,
        dropout=0.0,
        num_entities=None,
        num_relations=None,
        num_edges=None,
        edges_per_relation=None,
        kg_fingerprint=None,
        embeddings_initializer="uniform",
        kernel_initializer="glorot_uniform",
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("embedding_dim", embedding_dim)
        if not is_int(num_layers) or num_layers < 0:
            raise ValueError(f"`num_layers` must be a non-negative int. Received: num_layers={num_layers}")
        check_rate("dropout", dropout)
        if isinstance(edges_per_relation, tuple):
            edges_per_relation = list(edges_per_relation)
        counts = {
            "num_entities": num_entities,
            "num_relations": num_relations,
            "num_edges": num_edges,
            "edges_per_relation": edges_per_relation,
        }
        if knowledge_graph is not None:
            counts, kg_fingerprint = _counts_from_graph(knowledge_graph, counts, kg_fingerprint)
        _check_counts(counts)
        if kg_fingerprint is not None and not isinstance(kg_fingerprint, str):
            raise ValueError(f"`kg_fingerprint` must be a str or None. Received: kg_fingerprint={kg_fingerprint!r}")

        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.num_entities = int(counts["num_entities"])
        self.num_relations = int(counts["num_relations"])
        self.num_edges = int(counts["num_edges"])
        self.edges_per_relation = [int(count) for count in counts["edges_per_relation"]]
        self.kg_fingerprint = kg_fingerprint
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        # Kept only until `build` writes them into weights; never in the config.
        self._edges = _edges_by_relation(knowledge_graph) if knowledge_graph is not None else None
        self._initial_embeddings = self._check_initial_embeddings(initial_embeddings)

        # === Layers ===
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def _check_initial_embeddings(self, initial_embeddings):
        if initial_embeddings is None:
            return None
        array = np.asarray(initial_embeddings)
        expected = (self.num_entities, self.embedding_dim)
        if array.shape != expected or not np.issubdtype(array.dtype, np.number):
            raise ValueError(
                f"`initial_embeddings` must be a numeric array of shape (num_entities, embedding_dim) = {expected}. "
                f"Received: an array of dtype={array.dtype}, shape={array.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError("`initial_embeddings` must be finite. Received: an array with NaN or infinite values")
        return array

    def build(self, entity_ids_shape=None):
        rows, dim = self.num_entities + 1, self.embedding_dim
        num_directed = 2 * self.num_relations
        self.entity_embeddings = self.add_weight(
            name="entity_embeddings",
            shape=(rows, dim),
            initializer=clone_initializer(self.embeddings_initializer),
            regularizer=self.embeddings_regularizer,
        )
        if self._initial_embeddings is not None:
            table = np.concatenate([np.zeros((1, dim)), self._initial_embeddings])
            self.entity_embeddings.assign(table.astype(self.entity_embeddings.dtype))
        self.relation_embeddings = self.add_weight(
            name="relation_embeddings",
            shape=(num_directed, dim),
            initializer=clone_initializer(self.embeddings_initializer),
        )
        # The edges are data, not parameters: int32 weights that fit() leaves
        # alone but .keras files save, so the config stays small.
        self.edge_sources, self.edge_relations, self.edge_targets = (
            self.add_weight(name=name, shape=(self.num_edges,), dtype="int32", initializer="zeros", trainable=False)
            for name in ("edge_sources", "edge_relations", "edge_targets")
        )
        if self._edges is not None:
            for weight, values in zip((self.edge_sources, self.edge_relations, self.edge_targets), self._edges):
                weight.assign(np.asarray(values, dtype="int32"))
        self.self_kernels, self.relation_kernels, self.biases = [], [], []
        for index in range(self.num_layers):
            self.self_kernels.append(
                self.add_weight(
                    name=f"self_kernel_{index}",
                    shape=(dim, dim),
                    initializer=clone_initializer(self.kernel_initializer),
                )
            )
            self.relation_kernels.append(
                self.add_weight(
                    name=f"relation_kernel_{index}",
                    shape=(num_directed, dim, dim),
                    initializer=clone_initializer(self.kernel_initializer),
                )
            )
            self.biases.append(self.add_weight(name=f"bias_{index}", shape=(dim,), initializer="zeros"))
        self.dropout_layer.build((rows, dim))
        self._edges = self._initial_embeddings = None

    def entity_table(self, training=False):
        """Returns the encoded table, `(num_entities + 1, embedding_dim)` in the compute dtype; row 0 is zeros."""
        if not self.built:
            self.build()
        if training is True and self.num_layers and self.compiles_with_xla:
            return xla_training_function(self, "_entity_table")()
        return self._entity_table(training)

    @property
    def compiles_with_xla(self):
        """Whether work on the whole graph in a training step is compiled with XLA: on graphs of
        `XLA_MIN_EDGES` facts or more (see there)."""
        return self.num_edges >= XLA_MIN_EDGES

    def _entity_table(self, training):
        dtype = self.compute_dtype
        rows = self.num_entities + 1
        num_directed = 2 * self.num_relations
        is_entity = keras.ops.cast(keras.ops.arange(rows) > 0, dtype)[:, None]
        states = keras.ops.cast(self.entity_embeddings, dtype) * is_entity
        if self.num_layers == 0:
            return states

        # Weights hold entity ids; table rows are ids + 1. Each fact sends
        # subject -> object along r and object -> subject along r + R.
        sources = keras.ops.cast(self.edge_sources, "int32") + 1
        targets = keras.ops.cast(self.edge_targets, "int32") + 1
        relations = keras.ops.cast(self.edge_relations, "int32")
        senders = keras.ops.concatenate([sources, targets])
        receivers = keras.ops.concatenate([targets, sources])
        directed_relations = keras.ops.concatenate([relations, relations + self.num_relations])
        # 1 / c_{i,r}: one count per (receiver, relation).
        segments = receivers * num_directed + directed_relations
        counts = keras.ops.segment_sum(
            keras.ops.ones_like(segments, dtype="float32"), segments, num_segments=rows * num_directed
        )
        edge_weights = keras.ops.cast(1.0 / keras.ops.maximum(keras.ops.take(counts, segments), 1.0), dtype)
        # Directed relation r's messages are the r-th part of `senders`: the
        # edges are sorted by relation and the inverse copies follow them.
        # A split (not slices, whose gradients are each as big as the whole)
        # hands each W_r its own messages.
        parts = self.edges_per_relation * 2
        split_at = np.cumsum(parts)[:-1].tolist()
        for self_kernel, relation_kernel, bias in zip(self.self_kernels, self.relation_kernels, self.biases):
            sent = keras.ops.take(states, senders, axis=0) * edge_weights[:, None]
            relation_kernel = keras.ops.cast(relation_kernel, dtype)
            messages = [
                keras.ops.matmul(part, relation_kernel[relation])
                for relation, part in enumerate(keras.ops.split(sent, split_at))
            ]
            incoming = keras.ops.segment_sum(keras.ops.concatenate(messages, axis=0), receivers, num_segments=rows)
            update = (
                keras.ops.matmul(states, keras.ops.cast(self_kernel, dtype)) + incoming + keras.ops.cast(bias, dtype)
            )
            update = self.dropout_layer(self.activation(update), training=training)
            states = (states + update) * is_entity
        return states

    def update_edges(self, triple_ids):
        """Rewrites the edges (the KG's facts) in place; the trained weights stay.

        Args:
            triple_ids: int array `(num_edges, 3)` of `(subject, relation,
                object)` ids, with as many facts per relation as before
                (`edges_per_relation`), as a KG edit that replaces objects has.

        Raises:
            ValueError: ids out of range, or other counts per relation.
        """
        triple_ids = np.unique(np.asarray(triple_ids, np.int64).reshape(-1, 3), axis=0)
        limits = np.array([self.num_entities, self.num_relations, self.num_entities])
        if len(triple_ids) and ((triple_ids < 0) | (triple_ids >= limits)).any():
            raise ValueError(f"`triple_ids` must hold entity ids < {self.num_entities} and relation ids < "
                             f"{self.num_relations}. Received: ids up to {triple_ids.max(axis=0).tolist()}")
        per_relation = np.bincount(triple_ids[:, 1], minlength=self.num_relations).tolist()
        if per_relation != self.edges_per_relation:
            raise ValueError(
                "`triple_ids` must keep the number of facts of each relation (the edge arrays have fixed sizes); "
                f"an edit replaces objects. Received: {per_relation} facts per relation, the layer has "
                f"{self.edges_per_relation}"
            )
        if not self.built:
            self.build()
        order = np.argsort(triple_ids[:, 1], kind="stable")
        for weight, values in zip((self.edge_sources, self.edge_relations, self.edge_targets), triple_ids[order].T):
            weight.assign(values.astype("int32"))

    def call(self, entity_ids=None, training=None):
        table = self.entity_table(training=training)
        if entity_ids is None:
            return table
        return keras.ops.take(table, keras.ops.cast(entity_ids, "int32"), axis=0)

    def check_knowledge_graph(self, knowledge_graph):
        """Raises `ModelError` unless `knowledge_graph` is the graph the layer was built from."""
        check_fingerprint(self, knowledge_graph)

    def compute_output_shape(self, entity_ids_shape=None):
        if entity_ids_shape is None:
            return (self.num_entities + 1, self.embedding_dim)
        return (*entity_ids_shape, self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embedding_dim": self.embedding_dim,
                "num_layers": self.num_layers,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "num_entities": self.num_entities,
                "num_relations": self.num_relations,
                "num_edges": self.num_edges,
                "edges_per_relation": self.edges_per_relation,
                "kg_fingerprint": self.kg_fingerprint,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
            }
        )
        return config


# In training the message passing runs every step on the same shapes, so on
# the TensorFlow backend it is compiled with XLA, once per layer, even when
# the model around it is not (on a CPU the rest of a model may run better
# without): its gathers, scatters and element-wise work fuse. On the bundled
# KG that took the encoder's forward, backward and update from ~41 to ~34 ms
# of CPU a step. The compilation (~1 s) pays off from about this many facts;
# smaller graphs run as they are.
XLA_MIN_EDGES = 1000


def check_fingerprint(layer, knowledge_graph):
    """Raises `ModelError` unless `knowledge_graph` has the fingerprint `layer.kg_fingerprint`.

    Entity ids are positions in a graph's sorted entity list, so a layer
    trained on one graph reads another graph's ids as the wrong entities.
    """
    if layer.kg_fingerprint is None:
        raise ModelError(
            f"Layer {layer.name!r} was built without a knowledge-graph fingerprint, "
            f"so it cannot check that {knowledge_graph.name!r} is the graph it was trained on."
        )
    fingerprint = knowledge_graph.fingerprint()
    if fingerprint != layer.kg_fingerprint:
        raise ModelError(
            f"Layer {layer.name!r} was built for the knowledge graph with fingerprint {layer.kg_fingerprint[:12]}, "
            f"but {knowledge_graph.name!r} has fingerprint {fingerprint[:12]}: its entity ids would not match; "
            "use the graph the layer was trained on, or build a new layer from this graph."
        )


def _counts_from_graph(knowledge_graph, counts, kg_fingerprint):
    """Returns `(counts, fingerprint)` of `knowledge_graph`; raises if given ones disagree."""
    actual = {
        "num_entities": knowledge_graph.num_entities,
        "num_relations": knowledge_graph.num_relations,
        "num_edges": knowledge_graph.num_triples,
        "edges_per_relation": np.bincount(
            knowledge_graph.adjacency()[1], minlength=knowledge_graph.num_relations
        ).tolist(),
    }
    for name, value in counts.items():
        if value is not None and value != actual[name]:
            raise ValueError(
                f"`{name}` disagrees with the knowledge graph, which has {actual[name]}. Received: {name}={value}"
            )
    fingerprint = knowledge_graph.fingerprint()
    if kg_fingerprint is not None and kg_fingerprint != fingerprint:
        raise ValueError(
            f"`kg_fingerprint` is not the knowledge graph's ({fingerprint}). "
            f"Received: kg_fingerprint={kg_fingerprint!r}"
        )
    return actual, fingerprint


def _check_counts(counts):
    missing = [name for name, value in counts.items() if value is None]
    if missing:
        raise ValueError(
            "Pass a `knowledge_graph`, or all of `num_entities`, `num_relations`, `num_edges` and "
            "`edges_per_relation`. "
            f"Received: {', '.join(f'{name}=None' for name in missing)}"
        )
    check_positive_int("num_entities", counts["num_entities"])
    check_positive_int("num_relations", counts["num_relations"])
    if not is_int(counts["num_edges"]) or counts["num_edges"] < 0:
        raise ValueError(f"`num_edges` must be a non-negative int. Received: num_edges={counts['num_edges']}")
    per_relation = counts["edges_per_relation"]
    if (
        not isinstance(per_relation, (list, tuple))
        or len(per_relation) != counts["num_relations"]
        or not all(is_int(count) and count >= 0 for count in per_relation)
        or sum(per_relation) != counts["num_edges"]
    ):
        raise ValueError(
            "`edges_per_relation` must be a list of num_relations non-negative ints summing to num_edges "
            f"({counts['num_relations']} and {counts['num_edges']}). Received: edges_per_relation={per_relation!r}"
        )


def _edges_by_relation(knowledge_graph):
    """`knowledge_graph.adjacency()` (subjects, relations, objects), sorted by relation, stably."""
    subjects, relations, objects = knowledge_graph.adjacency()
    order = np.argsort(relations, kind="stable")
    return subjects[order], relations[order], objects[order]

