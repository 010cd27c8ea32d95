"""A regularizer that keeps an entity table plausible under the KG's facts (TransE margin)."""

import keras
import numpy as np

from kfine.layers.layer_utils import is_int

SCORES = ("transe",)


@keras.saving.register_keras_serializable(package="kfine")
class KnowledgeConstraintRegularizer(keras.regularizers.Regularizer):
    """TransE margin loss of a knowledge graph's facts on an entity embedding table.

    For a fact `(h, r, t)` TransE wants `h + r ≈ t` (Bordes et al., 2013).
    Each call samples `num_samples` facts, corrupts each one by replacing
    its head or its tail with a random entity, and returns

        strength * mean(relu(margin + ||h + r - t|| - ||h' + r - t'||))

    A `Regularizer` sees a single weight, so the relation vectors are not
    parameters: `r` is the mean translation `t - h` of the sampled facts of
    relation `r` (the vector that minimizes their squared TransE distance),
    and the loss asks that one translation explain every fact of a relation
    better, by `margin`, than it explains corrupted ones. Sampling is
    seeded (`keras.random.SeedGenerator`), so runs repeat.

    Use it as the `embeddings_regularizer` of a `KnowledgeGraphEncoder` or a
    `KnowledgeInjectionLayer`: their entity tables keep row 0 for "no
    entity", so entity id `i` is row `i + row_offset` (default 1).

    Args:
        knowledge_graph: `KnowledgeGraph` or None. The facts; or pass
            `triples` instead (as `from_config` does).
        strength: float. The weight λ of the loss.
        margin: float. The TransE margin γ.
        num_samples: int. Facts sampled per call.
        score: str. The plausibility score; only `"transe"`.
        seed: int or None. Seed of the fact and corruption sampling.
        row_offset: int. Table row of entity id 0.
        triples: int array `(num_triples, 3)` of (subject id, relation id,
            object id), or None when `knowledge_graph` is given.
        num_entities: int or None. From `knowledge_graph` when given.

    Example:

    >>> regularizer = KnowledgeConstraintRegularizer(kg, strength=0.1, seed=0)
    >>> encoder = KnowledgeGraphEncoder(kg, embeddings_regularizer=regularizer)
    """

    def __init__(
        self,
        knowledge_graph=None,
        strength=0.01,
        margin=1.0,
        num_samples=256,
        score="transe",
        seed=None,
        row_offset=1,
        triples=None,
        num_entities=None,
    ):
        if knowledge_graph is not None:
            if triples is not None or num_entities is not None:
                raise ValueError(
                    "Pass a `knowledge_graph` or `triples` with `num_entities`, not both. "
                    f"Received: knowledge_graph={knowledge_graph!r} and triples or num_entities"
                )
            triples, num_entities = knowledge_graph.triple_ids, knowledge_graph.num_entities
        if triples is None or num_entities is None:
            raise ValueError(
                "Pass a `knowledge_graph`, or `triples` and `num_entities`. "
                f"Received: triples={'None' if triples is None else 'an array'}, num_entities={num_entities}"
            )
        triples = np.asarray(triples, "int64").reshape(-1, 3) if len(triples) else np.zeros((0, 3), "int64")
        if not _is_number(strength) or strength < 0:
            raise ValueError(f"`strength` must be a non-negative float. Received: strength={strength!r}")
        if not _is_number(margin) or margin <= 0:
            raise ValueError(f"`margin` must be a positive float. Received: margin={margin!r}")
        if not is_int(num_samples) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive int. Received: num_samples={num_samples!r}")
        if score not in SCORES:
            raise ValueError(f"`score` must be one of {SCORES}. Received: score={score!r}")
        if not is_int(num_entities) or num_entities < 1:
            raise ValueError(f"`num_entities` must be a positive int. Received: num_entities={num_entities!r}")
        if not is_int(row_offset) or row_offset < 0:
            raise ValueError(f"`row_offset` must be a non-negative int. Received: row_offset={row_offset!r}")
        if len(triples) == 0:
            raise ValueError("`triples` must hold at least one fact. Received: no triples")
        if triples[:, [0, 2]].min() < 0 or triples[:, [0, 2]].max() >= num_entities or triples[:, 1].min() < 0:
            raise ValueError(f"`triples` must hold entity ids in [0, {num_entities}). Received: out-of-range ids")
        self.strength = float(strength)
        self.margin = float(margin)
        self.num_samples = int(num_samples)
        self.score = score
        self.seed = seed
        self.row_offset = int(row_offset)
        self.num_entities = int(num_entities)
        self.triples = triples
        self.num_relations = int(triples[:, 1].max()) + 1
        self.seed_generator = keras.random.SeedGenerator(seed)

    def __call__(self, table):
        rows = table.shape[0]
        if rows is not None and rows < self.num_entities + self.row_offset:
            raise ValueError(
                f"The table has {rows} rows, fewer than num_entities + row_offset = "
                f"{self.num_entities + self.row_offset}: apply the regularizer to the entity table."
            )
        table = keras.ops.cast(table, "float32")
        triples = keras.ops.convert_to_tensor(self.triples.astype("int32"))
        picked = keras.random.randint((self.num_samples,), 0, len(self.triples), seed=self.seed_generator)
        heads, relations, tails = (keras.ops.take(triples[:, column], picked) for column in range(3))
        random_entities = keras.random.randint((self.num_samples,), 0, self.num_entities, seed=self.seed_generator)
        corrupt_head = keras.random.uniform((self.num_samples,), seed=self.seed_generator) < 0.5
        corrupt_heads = keras.ops.where(corrupt_head, random_entities, heads)
        corrupt_tails = keras.ops.where(corrupt_head, tails, random_entities)

        def rows_of(entities):
            return keras.ops.take(table, entities + self.row_offset, axis=0)

        head_vectors, tail_vectors = rows_of(heads), rows_of(tails)
        # The relation vector: the mean translation of the sampled facts of each relation.
        totals = keras.ops.segment_sum(tail_vectors - head_vectors, relations, num_segments=self.num_relations)
        counts = keras.ops.segment_sum(keras.ops.ones_like(relations, "float32"), relations, self.num_relations)
        translations = keras.ops.take(totals / keras.ops.maximum(counts, 1.0)[:, None], relations, axis=0)
        positive = _distance(head_vectors + translations - tail_vectors)
        negative = _distance(rows_of(corrupt_heads) + translations - rows_of(corrupt_tails))
        return self.strength * keras.ops.mean(keras.ops.relu(self.margin + positive - negative))

    def get_config(self):
        return {
            "strength": self.strength,
            "margin": self.margin,
            "num_samples": self.num_samples,
            "score": self.score,
            "seed": self.seed,
            "row_offset": self.row_offset,
            # The facts travel in the config: a regularizer has no weights to save them in.
            "triples": self.triples.tolist(),
            "num_entities": self.num_entities,
        }


def _distance(vectors):
    # The epsilon keeps the gradient finite where a distance is 0.
    return keras.ops.sqrt(keras.ops.sum(keras.ops.square(vectors), axis=-1) + 1e-9)


def _is_number(value):
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
