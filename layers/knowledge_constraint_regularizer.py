"""A regularizer that keeps an entity table plausible under the KG's facts (TransE margin)."""

import keras
import numpy as np

from kfine.layers.layer_utils import fact_keys, is_int

SCORES = ("transe",)
# Draws per sample until a corruption is no fact; on the bundled KG all but a
# handful of samples find one at the first.
CORRUPTION_TRIES = 4


@keras.saving.register_keras_serializable(package="kfine")
class KnowledgeConstraintRegularizer(keras.regularizers.Regularizer):
    """TransE margin loss of a knowledge graph's facts on an entity embedding table.

    For a fact `(h, r, t)` TransE wants `h + r ≈ t` (Bordes et al., 2013).
    Each call samples `num_samples` facts, corrupts each one by replacing
    its head or its tail with a random entity, and returns

        strength * mean(relu(margin + ||h + r - t|| - ||h' + r - t'||))

    Corruptions are filtered against the KG (the "filtered" setting of
    Bordes et al.): a corruption that is itself a fact of the graph (common
    for a multi-valued relation such as a country's neighbours) is drawn
    again, up to `CORRUPTION_TRIES` times, and a sample with no false
    corruption by then is left out of the mean. No true fact is ever pushed
    away as a negative.

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
        # One int64 key a fact, sorted, so membership is a binary search in the graph.
        self._fact_keys = np.unique(keras.ops.convert_to_numpy(self._keys(*triples.T)))
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _keys(self, heads, relations, tails):
        return fact_keys(heads, relations, tails, self.num_relations, self.num_entities)

    def is_fact(self, heads, relations, tails):
        """bool tensor: which `(head, relation, tail)` id triples are facts of the graph."""
        known = keras.ops.convert_to_tensor(self._fact_keys)
        keys = self._keys(heads, relations, tails)
        found = keras.ops.minimum(keras.ops.searchsorted(known, keys), len(self._fact_keys) - 1)
        return keras.ops.equal(keras.ops.take(known, found), keys)

    def sample(self):
        """One call's sampled facts and their filtered corruptions.

        Returns:
            dict of `(num_samples,)` tensors: `heads`, `relations`, `tails`
            (int32, facts), `corrupt_heads`, `corrupt_tails` (int32) and
            `valid` (bool: the corruption is no fact of the graph; where
            False it is a fact and carries no loss).
        """
        triples = keras.ops.convert_to_tensor(self.triples.astype("int32"))
        picked = keras.random.randint((self.num_samples,), 0, len(self.triples), seed=self.seed_generator)
        heads, relations, tails = (keras.ops.take(triples[:, column], picked) for column in range(3))
        corrupt_heads, corrupt_tails = heads, tails
        valid = keras.ops.zeros((self.num_samples,), "bool")
        for _ in range(CORRUPTION_TRIES):
            random_entities = keras.random.randint((self.num_samples,), 0, self.num_entities,
                                                   seed=self.seed_generator)
            corrupt_head = keras.random.uniform((self.num_samples,), seed=self.seed_generator) < 0.5
            candidate_heads = keras.ops.where(corrupt_head, random_entities, heads)
            candidate_tails = keras.ops.where(corrupt_head, tails, random_entities)
            # Keep the first false corruption of each sample.
            take = keras.ops.logical_and(keras.ops.logical_not(valid), keras.ops.logical_not(
                self.is_fact(candidate_heads, relations, candidate_tails)))
            corrupt_heads = keras.ops.where(take, candidate_heads, corrupt_heads)
            corrupt_tails = keras.ops.where(take, candidate_tails, corrupt_tails)
            valid = keras.ops.logical_or(valid, take)
        return {"heads": heads, "relations": relations, "tails": tails, "corrupt_heads": corrupt_heads,
                "corrupt_tails": corrupt_tails, "valid": valid}

    def __call__(self, table):
        rows = table.shape[0]
        if rows is not None and rows < self.num_entities + self.row_offset:
            raise ValueError(
                f"The table has {rows} rows, fewer than num_entities + row_offset = "
                f"{self.num_entities + self.row_offset}: apply the regularizer to the entity table."
            )
        table = keras.ops.cast(table, "float32")
        sample = self.sample()
        heads, relations, tails = sample["heads"], sample["relations"], sample["tails"]

        def rows_of(entities):
            return keras.ops.take(table, entities + self.row_offset, axis=0)

        head_vectors, tail_vectors = rows_of(heads), rows_of(tails)
        # The relation vector: the mean translation of the sampled facts of each relation.
        totals = keras.ops.segment_sum(tail_vectors - head_vectors, relations, num_segments=self.num_relations)
        counts = keras.ops.segment_sum(keras.ops.ones_like(relations, "float32"), relations, self.num_relations)
        translations = keras.ops.take(totals / keras.ops.maximum(counts, 1.0)[:, None], relations, axis=0)
        positive = _distance(head_vectors + translations - tail_vectors)
        negative = _distance(rows_of(sample["corrupt_heads"]) + translations - rows_of(sample["corrupt_tails"]))
        weights = keras.ops.cast(sample["valid"], "float32")
        margins = keras.ops.relu(self.margin + positive - negative) * weights
        return self.strength * keras.ops.sum(margins) / keras.ops.maximum(keras.ops.sum(weights), 1.0)

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
