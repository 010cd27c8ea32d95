"""Injects knowledge-graph entities and their facts into a model's hidden states."""

import keras
import numpy as np

from kfine.knowledge.templates import Templates
from kfine.layers.fact_datastore import FactDatastore
from kfine.layers.knowledge_graph_encoder import KnowledgeGraphEncoder, check_fingerprint
from kfine.layers.layer_utils import check_positive_int, check_rate, clone_initializer, xla_training_function

MODES = ("concat", "gated", "add")
# Score of what must never be picked (padding facts, entity row 0); finite,
# so that no arithmetic on it gives NaN.
_LARGE_NEGATIVE = -1e9


@keras.saving.register_keras_serializable(package="kfine")
class KnowledgeInjectionLayer(keras.layers.Layer):
    """Fuses the knowledge-graph entity linked at each position into the hidden states.

    Each position reads its entity (the `EntityLinker`'s, or with
    `carry_entities` the latest one at or before it) as two vectors of size
    `entity_dim`: its row of a `KnowledgeGraphEncoder` (R-GCN), and a
    key-value memory read over its facts (keys: relation embeddings;
    values: object rows plus keys; query: a projection of the hidden state).
    Both are zeros where there is no entity. `mode` joins them, `k`, to the
    hidden states `h`: `"concat"` gives `[h, k]`; `"add"` gives `h + W k`;
    `"gated"` (ERNIE-style) gives `h + sigmoid(W_t h + W_g k + b) * W k`.
    `"add"` and `"gated"` keep the hidden size and leave positions without
    an entity unchanged. The layer also keeps each entity's facts as int32
    weights (`fact_relations`, `fact_objects`, for a fact pointer) and
    scores entities from features (`entity_scores`, tied to the encoder).

    A `CausalLanguageModel` hands added layers hidden states only: there
    `model.add(KnowledgeInjectionLayer(kg, templates=templates))` adds the
    `FactDatastore` that `for_language_model` makes in this layer's place.

    Args:
        knowledge_graph: `kfine.knowledge.KnowledgeGraph`, or None when
            rebuilt from a config (the facts are then in the weights).
        mode: str. One of `"concat"`, `"gated"`, `"add"`.
        encoder: `KnowledgeGraphEncoder` or None (one is built with
            `entity_dim`, `initial_embeddings`, `embeddings_regularizer`).
        entity_dim: int. Size of the entity and relation vectors.
        carry_entities: bool. Whether positions without a mention take the
            latest entity before them.
        max_facts: int or None. Most facts per entity kept for the fact
            pointer; the memory read always covers every fact.
        entity_head: bool. Whether to build the projection of `entity_scores`.
        dropout: float. Dropout rate on the entity and relation vectors.
        initial_embeddings: float array `(num_entities, entity_dim)` or None.
        kernel_initializer: initializer of the projections (one clone each).
        embeddings_regularizer: regularizer of the built encoder's table.
        num_entities, num_relations, max_degree, kg_fingerprint: set by
            `from_config`; taken from `knowledge_graph` otherwise.
        templates: `Templates` or None. Only for `for_language_model`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list `[hidden_states, entity_ids]`: float
            `(batch, sequence, hidden_dim)` and int `(batch, sequence)`
            (entity id + 1, 0 for no entity, as the linker writes them).
        mask: optional; the hidden states' mask passes through.
        training: bool. Whether dropout is active.

    Returns:
        `(batch, sequence, hidden_dim + 2 * entity_dim)` for `"concat"`,
        else `(batch, sequence, hidden_dim)`, in the compute dtype.

    Example:

    >>> kg = KnowledgeGraph([("France", "capital", "Paris")])
    >>> layer = KnowledgeInjectionLayer(kg, entity_dim=8)
    >>> layer([keras.ops.zeros((1, 3, 16)), keras.ops.array([[1, 0, 0]])]).shape
    (1, 3, 32)
    """

    def __init__(
        self,
        knowledge_graph=None,
        mode="concat",
        encoder=None,
        entity_dim=64,
        carry_entities=True,
        max_facts=None,
        entity_head=True,
        dropout=0.0,
        initial_embeddings=None,
        kernel_initializer="glorot_uniform",
        embeddings_regularizer=None,
        num_entities=None,
        num_relations=None,
        max_degree=None,
        kg_fingerprint=None,
        templates=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if templates is not None and not isinstance(templates, Templates):
            raise ValueError(f"`templates` must be a kfine Templates. Received: templates={templates!r}")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
        check_positive_int("entity_dim", entity_dim)
        if not isinstance(carry_entities, bool):
            raise ValueError(f"`carry_entities` must be a bool. Received: carry_entities={carry_entities!r}")
        if max_facts is not None:
            check_positive_int("max_facts", max_facts)
        if not isinstance(entity_head, bool):
            raise ValueError(f"`entity_head` must be a bool. Received: entity_head={entity_head!r}")
        check_rate("dropout", dropout)
        encoder = self._make_encoder(knowledge_graph, encoder, entity_dim, initial_embeddings, embeddings_regularizer)
        self._check_matches_encoder(encoder, num_entities, num_relations, kg_fingerprint)

        self._facts = None  # Written into weights by `build`; never in the config.
        if knowledge_graph is not None:
            self._facts = _fact_table(knowledge_graph, max_facts)
            degree = self._facts[0].shape[1]
            if max_degree is not None and max_degree != degree:
                raise ValueError(
                    f"`max_degree` disagrees with the knowledge graph, which gives {degree}. "
                    f"Received: max_degree={max_degree}"
                )
            max_degree = degree
        elif max_degree is None:
            raise ValueError(
                "Pass a `knowledge_graph`, or `max_degree` with an `encoder` (as `from_config` does). "
                "Received: knowledge_graph=None, max_degree=None"
            )
        check_positive_int("max_degree", max_degree)

        self.mode = mode
        self.encoder = encoder
        self.entity_dim = entity_dim
        self.carry_entities = carry_entities
        self.max_facts = max_facts
        self.entity_head = entity_head
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.num_entities = encoder.num_entities
        self.num_relations = encoder.num_relations
        self.max_degree = int(max_degree)
        self.kg_fingerprint = encoder.kg_fingerprint
        self.supports_masking = True
        # Only `for_language_model` reads these; never in the config.
        self._knowledge_graph = knowledge_graph
        self._templates = templates

        # === Layers ===
        # Sublayers whose input size is the hidden size are made in `build`.
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def _make_encoder(self, knowledge_graph, encoder, entity_dim, initial_embeddings, embeddings_regularizer):
        if encoder is None:
            if knowledge_graph is None:
                raise ValueError(
                    "Pass a `knowledge_graph` (or an `encoder` with `max_degree`, as `from_config` does). "
                    "Received: knowledge_graph=None, encoder=None"
                )
            return KnowledgeGraphEncoder(
                knowledge_graph,
                embedding_dim=entity_dim,
                initial_embeddings=initial_embeddings,
                embeddings_regularizer=embeddings_regularizer,
                dtype=self.dtype_policy,
                name="knowledge_graph_encoder",
            )
        if not isinstance(encoder, KnowledgeGraphEncoder):
            raise ValueError(f"`encoder` must be a KnowledgeGraphEncoder. Received: encoder={encoder!r}")
        if initial_embeddings is not None:
            raise ValueError(
                "`initial_embeddings` initialize the encoder this layer builds; pass them to the given "
                "encoder instead. Received: an `encoder` and `initial_embeddings`"
            )
        if embeddings_regularizer is not None:
            raise ValueError(
                "`embeddings_regularizer` regularizes the encoder this layer builds; pass it to the given "
                f"encoder instead. Received: an `encoder` and embeddings_regularizer={embeddings_regularizer!r}"
            )
        if encoder.embedding_dim != entity_dim:
            raise ValueError(
                f"`entity_dim` must equal the encoder's embedding_dim ({encoder.embedding_dim}). "
                f"Received: entity_dim={entity_dim}"
            )
        if knowledge_graph is not None and encoder.kg_fingerprint != knowledge_graph.fingerprint():
            raise ValueError(
                "`encoder` was built for another knowledge graph than `knowledge_graph`. "
                f"Received: encoder.kg_fingerprint={encoder.kg_fingerprint!r}, "
                f"knowledge_graph.fingerprint()={knowledge_graph.fingerprint()!r}"
            )
        return encoder

    @staticmethod
    def _check_matches_encoder(encoder, num_entities, num_relations, kg_fingerprint):
        given = {"num_entities": num_entities, "num_relations": num_relations, "kg_fingerprint": kg_fingerprint}
        for name, value in given.items():
            actual = getattr(encoder, name)
            if value is not None and value != actual:
                raise ValueError(
                    f"`{name}` disagrees with the encoder, which has {actual!r}. Received: {name}={value!r}"
                )

    def for_language_model(self, model, verbose=0):
        """Returns the layer `CausalLanguageModel.add` adds in this one's place: a `FactDatastore`.

        A language model hands added layers its hidden states, not the
        linker's entity ids, so the KG is read through a `FactDatastore`
        (kNN-LM) keyed by `model`'s hidden states over the facts written out
        with `templates`. It takes this layer's name.
        """
        if self._knowledge_graph is None or self._templates is None:
            raise ValueError(
                "Added with `model.add`, the layer sees only hidden states, so it reads the KG through a "
                "FactDatastore keyed by the model's hidden states over the facts written out with templates: create "
                "it as KnowledgeInjectionLayer(knowledge_graph, templates=templates) (or call it on "
                "[hidden_states, entity_ids] in a Functional model). Received: "
                f"knowledge_graph={'given' if self._knowledge_graph is not None else None}, "
                f"templates={'given' if self._templates is not None else None}"
            )
        return FactDatastore.from_model(model, self._knowledge_graph, self._templates, verbose=verbose, name=self.name)

    def build(self, input_shape):
        hidden_shape, entity_ids_shape = _split_shapes(input_shape)
        if entity_ids_shape is None:
            raise ValueError(_NEEDS_ENTITY_IDS)
        if len(hidden_shape) != 3 or hidden_shape[-1] is None or len(entity_ids_shape) != 2:
            raise ValueError(
                "KnowledgeInjectionLayer expects hidden states of shape (batch, sequence, hidden_dim) with a known "
                f"hidden_dim and entity ids of shape (batch, sequence). Received: shapes {hidden_shape} and "
                f"{entity_ids_shape}"
            )
        hidden_dim = hidden_shape[-1]
        knowledge_dim = 2 * self.entity_dim
        if not self.encoder.built:
            self.encoder.build()

        rows = self.num_entities + 1
        self.fact_relations, self.fact_objects = (
            self.add_weight(
                name=name, shape=(rows, self.max_degree), dtype="int32", initializer="zeros", trainable=False
            )
            for name in ("fact_relations", "fact_objects")
        )
        if self._facts is not None:
            self.fact_relations.assign(self._facts[0])
            self.fact_objects.assign(self._facts[1])
            self._facts = None

        # === Layers ===
        self.memory_query = self._dense(self.entity_dim, "memory_query", hidden_dim)
        if self.entity_head:
            self.entity_projection = self._dense(self.entity_dim, "entity_projection", hidden_dim)
        if self.mode == "gated":
            self.token_gate = self._dense(hidden_dim, "token_gate", hidden_dim)
            self.knowledge_gate = self._dense(hidden_dim, "knowledge_gate", knowledge_dim, use_bias=False)
        if self.mode in ("gated", "add"):
            # No bias: positions without an entity (zero knowledge) pass through unchanged.
            self.knowledge_projection = self._dense(hidden_dim, "knowledge_projection", knowledge_dim, use_bias=False)
        self.dropout_layer.build((None, None, knowledge_dim))

    def _dense(self, units, name, input_dim, use_bias=True):
        layer = keras.layers.Dense(
            units,
            use_bias=use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )
        layer.build((None, None, input_dim))
        return layer

    def call(self, inputs, mask=None, training=None):
        hidden_states, entity_ids = _split_inputs(inputs)
        if entity_ids is None:
            raise ValueError(_NEEDS_ENTITY_IDS)
        entity_rows = self.entity_rows(entity_ids)
        table, object_sums, fact_counts = self._knowledge_tables(training)
        entity_states = keras.ops.take(table, entity_rows, axis=0)
        relation_states = self._read_facts(hidden_states, entity_rows, object_sums, fact_counts)
        knowledge = self.dropout_layer(
            keras.ops.concatenate([entity_states, relation_states], axis=-1), training=training
        )
        return self._fuse(hidden_states, knowledge)

    def update_facts(self, triple_ids):
        """Replaces the facts the layer reads, with no gradient step (a KG edit).

        The encoder's edges and the fact-pointer tables are rewritten; every
        trained weight is kept. The ids are the layer's own (those of the KG
        it was built on), so an edit can only use entities and relations the
        layer has rows for, and it must keep the number of facts of each
        relation (the encoder's edge arrays have fixed sizes), as replacing
        the object of a fact does. An entity with more than `max_degree`
        facts keeps the first `max_degree` for the pointer, round-robin over
        relations.

        Args:
            triple_ids: int array `(num_facts, 3)` of `(subject, relation, object)` ids.

        Raises:
            ValueError: ids out of range or other counts of facts per relation.
        """
        self.encoder.update_edges(triple_ids)
        relation_table, object_table = _fact_table_from_ids(triple_ids, self.num_entities, self.num_relations,
                                                            self.max_degree)
        padding = ((0, 0), (0, self.max_degree - relation_table.shape[1]))
        self.fact_relations.assign(np.pad(relation_table, padding))
        self.fact_objects.assign(np.pad(object_table, padding))

    def entity_rows(self, entity_ids):
        """Returns the table row (entity id + 1, or 0) the layer reads at each position of `entity_ids`.

        With `carry_entities`, a position without a mention takes the most
        recent mention at or before it. Computed without a loop: `rank`
        counts the mentions up to each position, the linked ids are summed
        into one segment per rank (only the rank-k mention token adds a
        non-zero id to segment k), and each position reads its rank's
        segment.
        """
        entity_ids = keras.ops.cast(entity_ids, "int32")
        if not self.carry_entities:
            return entity_ids
        linked = entity_ids > 0
        rank = keras.ops.cumsum(keras.ops.cast(linked, "int32"), axis=1)
        batch_size, sequence_length = keras.ops.shape(entity_ids)[0], keras.ops.shape(entity_ids)[1]
        num_ranks = sequence_length + 1
        segments = keras.ops.arange(batch_size, dtype="int32")[:, None] * num_ranks + rank
        by_rank = keras.ops.segment_sum(
            keras.ops.reshape(keras.ops.where(linked, entity_ids, 0), (-1,)),
            keras.ops.reshape(segments, (-1,)),
            num_segments=batch_size * num_ranks,
        )
        by_rank = keras.ops.reshape(by_rank, (batch_size, num_ranks))
        return keras.ops.take_along_axis(by_rank, rank, axis=1)

    def _knowledge_tables(self, training):
        """Returns `(table, object_sums, fact_counts)`: what positions read, made once a step.

        `table` is the encoder's; `object_sums` `(num_entities + 1,
        relations, entity_dim)` sums the encodings of each (subject,
        relation)'s objects and `fact_counts` `(num_entities + 1, relations)`
        counts them. In training on a graph the encoder compiles with XLA,
        all three are made in one XLA function (no input shapes, so it
        compiles once): the sums' scatter fuses there, and TensorFlow's own
        segment sum was a tenth of the layer's time.
        """
        if training is True and self.encoder.compiles_with_xla:
            return xla_training_function(self, "_compute_knowledge_tables")()
        return self._compute_knowledge_tables(training)

    def _compute_knowledge_tables(self, training):
        table = self.encoder.entity_table(training=training)
        num_relations = self.num_relations
        num_segments = (self.num_entities + 1) * num_relations
        # Table rows are entity ids + 1; one segment per (subject, relation).
        subjects = keras.ops.cast(self.encoder.edge_sources, "int32") + 1
        objects = keras.ops.cast(self.encoder.edge_targets, "int32") + 1
        segments = subjects * num_relations + keras.ops.cast(self.encoder.edge_relations, "int32")
        fact_counts = keras.ops.segment_sum(
            keras.ops.ones_like(segments, dtype="float32"), segments, num_segments=num_segments
        )
        object_sums = keras.ops.segment_sum(keras.ops.take(table, objects, axis=0), segments, num_segments=num_segments)
        return (
            table,
            keras.ops.reshape(object_sums, (-1, num_relations, self.entity_dim)),
            keras.ops.reshape(fact_counts, (-1, num_relations)),
        )

    def _read_facts(self, hidden_states, entity_rows, object_sums, fact_counts):
        """Attention of a query from `hidden_states` over the facts of each position's entity.

        A fact's key is its relation's embedding and its value the object's
        encoding plus that key. All facts of one relation share a key, so
        they share a score, and the softmax over an entity's facts equals a
        softmax over its relations with `log(number of facts)` added to each
        score, every fact of a relation getting an equal part of its
        relation's weight. The read is computed that way: per position it
        gathers one sum of object encodings per relation (`object_sums`)
        instead of one encoding per fact slot, a third of the memory traffic
        on the bundled KG (6 relations against 17 slots).
        """
        dtype = self.compute_dtype
        num_relations = self.num_relations
        counts = keras.ops.take(fact_counts, entity_rows, axis=0)
        has_facts = counts > 0

        relation_keys = keras.ops.cast(self.encoder.relation_embeddings, dtype)[:num_relations]
        # The query only meets the keys, so memory_query's kernel and bias are
        # multiplied by them first: one (hidden_dim, relations) matmul per
        # position instead of a (hidden_dim, entity_dim) one and then another.
        key_columns = keras.ops.transpose(relation_keys)
        query_kernel = keras.ops.matmul(keras.ops.cast(self.memory_query.kernel, dtype), key_columns)
        query_bias = keras.ops.matmul(keras.ops.cast(self.memory_query.bias, dtype)[None, :], key_columns)
        # Softmax in float32 so that the mask value and sums are exact under mixed precision.
        scores = keras.ops.cast(keras.ops.matmul(hidden_states, query_kernel) + query_bias, "float32")
        scores = scores / np.sqrt(self.entity_dim).astype("float32") + keras.ops.log(keras.ops.maximum(counts, 1.0))
        # An entity without facts has no relation to attend to: its read is zeros.
        scores = keras.ops.where(has_facts, scores, _LARGE_NEGATIVE)
        exponents = keras.ops.exp(scores - keras.ops.max(scores, axis=-1, keepdims=True))
        exponents = exponents * keras.ops.cast(has_facts, "float32")
        relation_weights = exponents / keras.ops.maximum(keras.ops.sum(exponents, axis=-1, keepdims=True), 1e-30)

        fact_weights = keras.ops.cast(relation_weights / keras.ops.maximum(counts, 1.0), dtype)
        position_sums = keras.ops.take(object_sums, entity_rows, axis=0)
        # A multiply and a sum rather than an einsum: on a CPU the einsum is a
        # batched matmul of (1 x relations) by (relations x dim) blocks, slower.
        return keras.ops.sum(fact_weights[..., None] * position_sums, axis=-2) + keras.ops.matmul(
            keras.ops.cast(relation_weights, dtype), relation_keys
        )

    def _fuse(self, hidden_states, knowledge):
        if self.mode == "concat":
            return keras.ops.concatenate([hidden_states, knowledge], axis=-1)
        if self.mode == "add":
            return hidden_states + self.knowledge_projection(knowledge)
        # knowledge_gate and knowledge_projection read the same input: one
        # matmul with their kernels side by side instead of two.
        kernels = keras.ops.concatenate([self.knowledge_gate.kernel, self.knowledge_projection.kernel], axis=1)
        fused = keras.ops.matmul(knowledge, keras.ops.cast(kernels, self.compute_dtype))
        gate, update = keras.ops.split(fused, 2, axis=-1)
        return hidden_states + keras.ops.sigmoid(self.token_gate(hidden_states) + gate) * update

    def entity_scores(self, features, training=False):
        """Scores every KG entity from `features` (an entity output head tied to the encoder's table).

        Args:
            features: float tensor `(..., hidden_dim)`.
            training: bool. Whether the encoder's dropout is active.

        Returns:
            float32 `(..., num_entities + 1)`: the dot product of a learned
            projection of `features` with each entity's encoder row; row 0
            (no entity) gets -1e9, so a softmax never picks it.
        """
        if not self.entity_head:
            raise ValueError("`entity_scores` needs the layer built with entity_head=True. Received: entity_head=False")
        if not self.built:
            raise ValueError("Call the layer on `[hidden_states, entity_ids]` before `entity_scores`, to build it.")
        table = self.encoder.entity_table(training=training)
        projected = self.entity_projection(keras.ops.cast(features, self.compute_dtype))
        scores = keras.ops.cast(keras.ops.matmul(projected, keras.ops.transpose(table)), "float32")
        is_entity = keras.ops.arange(self.num_entities + 1) > 0
        return keras.ops.where(is_entity, scores, _LARGE_NEGATIVE)

    def check_knowledge_graph(self, knowledge_graph):
        """Raises `kfine.errors.ModelError` unless `knowledge_graph` is the graph the layer was built from."""
        check_fingerprint(self, knowledge_graph)

    def compute_output_shape(self, input_shape):
        hidden_shape, _ = _split_shapes(input_shape)
        if self.mode != "concat":
            return tuple(hidden_shape)
        hidden_dim = hidden_shape[-1]
        return (*hidden_shape[:-1], None if hidden_dim is None else hidden_dim + 2 * self.entity_dim)

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            return mask[0]
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mode": self.mode,
                "encoder": keras.layers.serialize(self.encoder),
                "entity_dim": self.entity_dim,
                "carry_entities": self.carry_entities,
                "max_facts": self.max_facts,
                "entity_head": self.entity_head,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "num_entities": self.num_entities,
                "num_relations": self.num_relations,
                "max_degree": self.max_degree,
                "kg_fingerprint": self.kg_fingerprint,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("encoder"), dict):
            config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)


_NEEDS_ENTITY_IDS = (
    "KnowledgeInjectionLayer needs the linker's entity ids: call it on [hidden_states, entity_ids], with "
    "entity_ids of shape (batch, sequence) holding entity id + 1 (0 for no entity); to use it on hidden states "
    "alone, add it to a CausalLanguageModel with `model.add` and `templates=`. Received: hidden states only"
)


def _split_inputs(inputs):
    """Returns `(hidden_states, entity_ids)`; `entity_ids` is None for a single tensor."""
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 2:
            raise ValueError(
                f"KnowledgeInjectionLayer takes [hidden_states, entity_ids]. Received: a list of {len(inputs)} inputs"
            )
        return inputs[0], inputs[1]
    return inputs, None


def _split_shapes(input_shape):
    """Returns `(hidden_shape, entity_ids_shape)`; `entity_ids_shape` is None for a single shape."""
    if all(isinstance(shape, (list, tuple)) for shape in input_shape):
        hidden_shape, entity_ids_shape = _split_inputs(input_shape)
        return tuple(hidden_shape), tuple(entity_ids_shape)
    return tuple(input_shape), None


def _fact_table(knowledge_graph, max_facts):
    """Returns `(relations, objects)`: int32 arrays `(num_entities + 1, max_degree)` of each entity's facts.

    Row `id + 1` holds entity `id`'s outgoing facts; object slots hold
    object id + 1 and 0 for padding. Facts are ordered round-robin over
    relations (the first fact of every relation, then the second, ...), so
    that `max_facts` cuts every relation evenly.
    """
    return _fact_table_from_ids(np.stack(knowledge_graph.adjacency(), axis=1), knowledge_graph.num_entities,
                                knowledge_graph.num_relations, max_facts)


def _fact_table_from_ids(triple_ids, num_entities, num_relations, max_facts):
    """`_fact_table` of `(subject, relation, object)` id rows."""
    triple_ids = np.unique(np.asarray(triple_ids, np.int64).reshape(-1, 3), axis=0)  # sorted by (s, r, o)
    subjects, relations, objects = triple_ids.T
    # Rank each fact within its (subject, relation).
    group = subjects * num_relations + relations
    starts = np.r_[True, group[1:] != group[:-1]]
    rank = np.arange(len(group)) - np.flatnonzero(starts)[np.cumsum(starts) - 1]
    order = np.lexsort((objects, relations, rank, subjects))
    subjects, relations, objects = subjects[order], relations[order], objects[order]
    starts = np.r_[True, subjects[1:] != subjects[:-1]]
    slot = np.arange(len(subjects)) - np.flatnonzero(starts)[np.cumsum(starts) - 1]
    max_degree = int(slot.max()) + 1 if len(slot) else 1
    if max_facts is not None:
        max_degree = min(max_degree, max_facts)
    keep = slot < max_degree
    shape = (num_entities + 1, max_degree)
    relation_table = np.zeros(shape, np.int32)
    object_table = np.zeros(shape, np.int32)
    relation_table[subjects[keep] + 1, slot[keep]] = relations[keep]
    object_table[subjects[keep] + 1, slot[keep]] = objects[keep] + 1
    return relation_table, object_table
