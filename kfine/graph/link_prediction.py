"""KG embeddings by link prediction: a TF-GNN encoder with a TransE or DistMult decoder.

Two models train on the same split of the facts:

- `gnn`: an entity table refined by `num_layers` rounds of relational
  message passing (TF-GNN's `VanillaMPNNGraphUpdate`; a message is a dense
  layer of the receiver state, the sender state and the edge's relation
  embedding, summed per edge set, facts sent both ways as edge sets `fact`
  and `fact_reversed`), added back to the table (residual), then scored by
  the decoder;
- `transe`: the plain table scored by TransE (Bordes et al., 2013), the
  baseline.

Training: every batch of facts gets `num_negatives` corrupted heads and
tails each (uniform entities), with softmax cross-entropy of the true fact
against its corruptions. Evaluation: PyKEEN's rank-based protocol on the
held-out facts: both the head and the tail are ranked against every entity,
other known true facts filtered out, ties at their mean rank ("realistic");
MRR and Hits@1/3/10.
"""

import time

import numpy as np
import tensorflow as tf
import tensorflow_gnn as tfgnn
from tensorflow_gnn.models import vanilla_mpnn

from kfine.graph.ranking import rank_summary, realistic_rank

DECODERS = ("transe", "distmult")


def split_facts(knowledge_graph, held_out_fraction, seed):
    """Returns `(train, valid, test)` int arrays of `(head, relation, tail)` ids.

    Held-out facts are drawn at random among those whose head and tail keep
    another training fact, so every entity has a training fact (PyKEEN's
    "cleanup"); `held_out_fraction` of the facts go to each of valid and test
    when that many qualify.
    """
    triples = knowledge_graph.triple_ids.astype(np.int64)
    degree = np.bincount(np.r_[triples[:, 0], triples[:, 2]], minlength=knowledge_graph.num_entities)
    wanted = 2 * int(round(held_out_fraction * len(triples)))
    held_out = []
    for index in np.random.default_rng(seed).permutation(len(triples)):
        if len(held_out) == wanted:
            break
        head, _, tail = triples[index]
        if degree[head] > 1 and degree[tail] > 1 and head != tail:
            degree[head] -= 1
            degree[tail] -= 1
            held_out.append(index)
    held_out = np.array(held_out, dtype=np.int64)
    train = np.delete(triples, held_out, axis=0)
    half = len(held_out) // 2
    return train, triples[held_out[:half]], triples[held_out[half:]]


class LinkPredictionModel(tf.keras.Model):
    """Entity table, optional TF-GNN message passing, and a TransE/DistMult decoder.

    Args:
        num_entities: int.
        num_relations: int.
        train_facts: int array `(facts, 3)`. The graph the GNN passes messages on.
        dim: int. Embedding size.
        num_layers: int. Rounds of message passing; 0 gives the plain table.
        decoder: str. `"transe"` (score `-||h + r - t||_1`) or `"distmult"` (`<h, r, t>`).
    """

    def __init__(self, num_entities, num_relations, train_facts, dim=64, num_layers=1, decoder="transe", **kwargs):
        super().__init__(**kwargs)
        if decoder not in DECODERS:
            raise ValueError(f"`decoder` must be one of {DECODERS}. Received: decoder={decoder!r}")
        self.num_entities, self.num_relations, self.dim = num_entities, num_relations, dim
        self.decoder = decoder
        bound = 6 / np.sqrt(dim)
        # One initializer object per table: a shared one could start both tables from the same draw.
        self.entity_table = tf.keras.layers.Embedding(
            num_entities, dim, embeddings_initializer=tf.keras.initializers.RandomUniform(-bound, bound))
        self.relation_table = tf.keras.layers.Embedding(
            num_relations, dim, embeddings_initializer=tf.keras.initializers.RandomUniform(-bound, bound))
        self.graph = _graph_tensor(num_entities, train_facts)
        self.edge_relations = tf.keras.layers.Embedding(num_relations, dim)
        self.graph_updates = [
            vanilla_mpnn.VanillaMPNNGraphUpdate(
                units=dim, message_dim=dim, receiver_tag=tfgnn.TARGET, edge_feature="relation_embedding",
                reduce_type="mean", use_layer_normalization=True,
            )
            for _ in range(num_layers)
        ]
        self.residual = tf.keras.layers.Dense(dim, use_bias=False, kernel_initializer="zeros") if num_layers else None

    def entity_embeddings(self, training=False):
        """`(num_entities, dim)`: the table, plus the GNN's update when it has layers."""
        table = self.entity_table(tf.range(self.num_entities))
        if not self.graph_updates:
            return table
        graph = self.graph.replace_features(
            node_sets={"entity": {tfgnn.HIDDEN_STATE: table}},
            edge_sets={
                name: {"relation_embedding": self.edge_relations(edge_set["relation"])}
                for name, edge_set in self.graph.edge_sets.items()
            },
        )
        for update in self.graph_updates:
            graph = update(graph, training=training)
        return table + self.residual(graph.node_sets["entity"][tfgnn.HIDDEN_STATE])

    def relation_embeddings(self):
        return self.relation_table(tf.range(self.num_relations))

    def score(self, heads, relations, tails):
        """Scores broadcast `(…, dim)` head, relation and tail vectors; higher is more plausible."""
        if self.decoder == "transe":
            return -tf.reduce_sum(tf.abs(heads + relations - tails), axis=-1)
        return tf.reduce_sum(heads * relations * tails, axis=-1)

    def directed_relation_embeddings(self):
        """`(2 * num_relations, dim)` in `directed_relations` order: TransE's inverse is `-r`, DistMult's is `r`."""
        relations = self.relation_embeddings()
        return tf.concat([relations, -relations if self.decoder == "transe" else relations], axis=0)


def _graph_tensor(num_entities, facts):
    """The training facts as a GraphTensor: edge sets `fact` (head -> tail) and `fact_reversed`."""
    heads, relations, tails = (tf.constant(facts[:, column], tf.int64) for column in range(3))

    def edge_set(sources, targets):
        return tfgnn.EdgeSet.from_fields(
            sizes=[len(facts)],
            adjacency=tfgnn.Adjacency.from_indices(("entity", sources), ("entity", targets)),
            features={"relation": relations},
        )

    return tfgnn.GraphTensor.from_pieces(
        node_sets={"entity": tfgnn.NodeSet.from_fields(sizes=[num_entities], features={})},
        edge_sets={"fact": edge_set(heads, tails), "fact_reversed": edge_set(tails, heads)},
    )


def train_link_prediction(model, train, epochs, batch_size=512, num_negatives=64, learning_rate=0.01, seed=0, log=None):
    """Trains `model` on the `train` facts with sampled negatives; returns the mean loss per epoch."""
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    generator = tf.random.Generator.from_seed(seed)
    facts = tf.constant(train, tf.int64)

    @tf.function
    def train_step(batch):
        negatives = generator.uniform((tf.shape(batch)[0], 2, num_negatives), maxval=model.num_entities, dtype=tf.int64)
        with tf.GradientTape() as tape:
            entities = model.entity_embeddings(training=True)
            relations = tf.gather(model.relation_embeddings(), batch[:, 1])[:, None, :]
            heads = tf.gather(entities, batch[:, 0])[:, None, :]
            tails = tf.gather(entities, batch[:, 2])[:, None, :]
            positive = model.score(heads, relations, tails)
            corrupted_tails = model.score(heads, relations, tf.gather(entities, negatives[:, 0]))
            corrupted_heads = model.score(tf.gather(entities, negatives[:, 1]), relations, tails)
            loss = 0.0
            for corrupted in (corrupted_tails, corrupted_heads):
                logits = tf.concat([positive, corrupted], axis=1)
                loss += tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(batch[:, 0]), logits)
                )
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    losses = []
    for epoch in range(epochs):
        started = time.time()
        dataset = tf.data.Dataset.from_tensor_slices(facts).shuffle(len(train), seed=seed + epoch).batch(batch_size)
        losses.append(float(np.mean([train_step(batch).numpy() for batch in dataset])))
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} ({time.time() - started:.1f} s)")
    return losses


def rank_metrics(model, test, known_facts, batch_size=256):
    """Filtered rank-based metrics of `model` on the `test` facts (PyKEEN's protocol, both sides, realistic ranks).

    Args:
        model: `LinkPredictionModel`.
        test: int array `(facts, 3)`.
        known_facts: int array `(facts, 3)`: every true fact (train, valid and
            test); those other than the one ranked are filtered out.

    Returns:
        dict with `mrr`, `hits_at_1`, `hits_at_3`, `hits_at_10`, `mean_rank`, `num_ranks`.
    """
    entities = model.entity_embeddings().numpy()
    relations = model.relation_embeddings().numpy()
    true_tails, true_heads = {}, {}
    for head, relation, tail in known_facts.tolist():
        true_tails.setdefault((head, relation), []).append(tail)
        true_heads.setdefault((relation, tail), []).append(head)
    ranks = []
    for start in range(0, len(test), batch_size):
        batch = test[start : start + batch_size]
        heads, rels, tails = entities[batch[:, 0]], relations[batch[:, 1]], entities[batch[:, 2]]
        all_entities = entities[None, :, :]
        tail_scores = model.score(heads[:, None, :], rels[:, None, :], all_entities).numpy()
        head_scores = model.score(all_entities, rels[:, None, :], tails[:, None, :]).numpy()
        for row, (head, relation, tail) in enumerate(batch.tolist()):
            ranks.append(realistic_rank(tail_scores[row], tail, true_tails[head, relation]))
            ranks.append(realistic_rank(head_scores[row], head, true_heads[relation, tail]))
    return rank_summary(ranks)

