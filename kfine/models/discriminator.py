"""A small transformer that tells real token sequences from generated ones, optionally reading the KG."""

import keras
import keras_hub

from kfine.models.causal_lm import check_decoder_dimensions


@keras.saving.register_keras_serializable(package="kfine")
class SequenceDiscriminator(keras.Model):
    """A transformer classifier over tokens, hard or soft (probability vectors).

    Tokens are embedded by a matrix product with the embedding table, so a
    soft one-hot input (a Gumbel-softmax sample, or a straight-through hard
    sample) passes gradients back to the generator that produced it; integer
    ids are looked up directly, which gives the same embedding for a hard
    one-hot. A bidirectional `TransformerEncoder` stack (keras-hub) reads the
    sequence, the valid positions are mean-pooled, and a dense layer gives the
    logit of "real".

    Knowledge-aware (`knowledge_aware=True`), the logit also reads a feature
    from the knowledge graph: `knowledge_match`, the probability that the
    answer spells one of the KG's objects for the sentence's `(subject,
    relation)` (the exact KG check, made differentiable for soft tokens), adds
    `knowledge_weight * (2 * knowledge_match - 1)`. Text alone cannot tell a
    true answer from an invented one for a subject the discriminator never
    read about; the subject's KG facts can. The weight starts at
    `knowledge_prior` (the KG is believed from the first step; a scalar
    learned from 0 would move by about the learning rate a step under Adam,
    far slower than the text features) and is trained.

    Args:
        vocabulary_size: int. Number of tokens (the generator's vocabulary).
        sequence_length: int. Longest sequence the position embedding covers.
        hidden_dim: int. Width of the token embeddings and encoder.
        num_layers: int. Number of `TransformerEncoder` blocks.
        num_heads: int. Attention heads per block.
        intermediate_dim: int. Width of the feed-forward layers.
        dropout: float. Dropout rate inside the blocks.
        knowledge_aware: bool. Whether the logit reads `knowledge_match`.
        knowledge_prior: float. Initial `knowledge_weight`.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        tokens: int32 ids `(batch, sequence)` or float token probabilities
            `(batch, sequence, vocabulary_size)`.
        padding_mask: bool `(batch, sequence)`, True at valid positions; by
            default the positions of non-`[PAD]` ids (all positions for
            float inputs).
        knowledge_match: float `(batch,)` in [0, 1] from `knowledge_match`;
            required when `knowledge_aware`, ignored otherwise.

    Returns:
        float32 logits `(batch,)`: D(x) = sigmoid(logit) is the probability
        that the sequence is real.

    Example:

    >>> discriminator = SequenceDiscriminator(vocabulary_size=100, sequence_length=16)
    >>> discriminator(keras.ops.ones((2, 5), "int32")).shape
    (2,)
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        hidden_dim=64,
        num_layers=1,
        num_heads=2,
        intermediate_dim=128,
        dropout=0.1,
        knowledge_aware=False,
        knowledge_prior=2.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_decoder_dimensions(vocabulary_size=vocabulary_size, sequence_length=sequence_length,
                                 hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
                                 intermediate_dim=intermediate_dim)
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        if isinstance(knowledge_prior, bool) or not isinstance(knowledge_prior, (int, float)):
            raise ValueError(f"`knowledge_prior` must be a float. Received: knowledge_prior={knowledge_prior!r}")
        self.knowledge_aware = bool(knowledge_aware)
        self.knowledge_prior = float(knowledge_prior)

        # === Layers ===
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, hidden_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=self.dtype_policy, name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length, dtype=self.dtype_policy, name="position_embedding"
        )
        self.encoder_blocks = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout, activation="gelu",
                normalize_first=True, dtype=self.dtype_policy, name=f"transformer_encoder_{index}",
            )
            for index in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy,
                                                          name="final_layer_norm")
        self.classifier = keras.layers.Dense(1, dtype=self.dtype_policy, name="classifier")

    def build(self, tokens_shape):
        self.token_embedding.build((None, None))
        hidden_shape = (tokens_shape[0], tokens_shape[1], self.hidden_dim)
        self.position_embedding.build(hidden_shape)
        for block in self.encoder_blocks:
            block.build(hidden_shape)
        self.final_norm.build(hidden_shape)
        self.classifier.build((tokens_shape[0], self.hidden_dim))
        if self.knowledge_aware:
            self.knowledge_weight = self.add_weight(
                name="knowledge_weight", shape=(), initializer=keras.initializers.Constant(self.knowledge_prior))
        self.built = True

    def embed(self, tokens):
        """Token embeddings `(batch, sequence, hidden_dim)` of ids or token probabilities."""
        if keras.backend.is_int_dtype(keras.backend.standardize_dtype(tokens.dtype)):
            return self.token_embedding(tokens)
        probabilities = keras.ops.cast(tokens, self.token_embedding.embeddings.dtype)
        return keras.ops.matmul(probabilities, self.token_embedding.embeddings)

    def call(self, tokens, padding_mask=None, knowledge_match=None, training=None):
        is_ids = keras.backend.is_int_dtype(keras.backend.standardize_dtype(tokens.dtype))
        if padding_mask is None:
            padding_mask = tokens != 0 if is_ids else keras.ops.ones(keras.ops.shape(tokens)[:2], "bool")
        return self.classify(self.embed(tokens), padding_mask, knowledge_match=knowledge_match, training=training)

    def classify(self, token_embeddings, padding_mask, knowledge_match=None, training=None):
        """Logits `(batch,)` of token embeddings (from `embed`, possibly mixed
        from ids and soft tokens) with a bool `(batch, sequence)` padding mask
        (and, knowledge-aware, the `(batch,)` knowledge match)."""
        if self.knowledge_aware and knowledge_match is None:
            raise ValueError("A knowledge-aware discriminator needs `knowledge_match` (see `knowledge_match()`). "
                             "Received: knowledge_match=None")
        hidden = token_embeddings + self.position_embedding(token_embeddings)
        for block in self.encoder_blocks:
            hidden = block(hidden, padding_mask=padding_mask, training=training)
        hidden = self.final_norm(hidden)
        # Mean over valid positions only, so padding length tells nothing.
        weights = keras.ops.cast(padding_mask, hidden.dtype)[:, :, None]
        pooled = keras.ops.sum(hidden * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
        logit = keras.ops.cast(self.classifier(pooled)[:, 0], "float32")
        if self.knowledge_aware:
            match = keras.ops.cast(knowledge_match, "float32")
            logit = logit + keras.ops.cast(self.knowledge_weight, "float32") * (2.0 * match - 1.0)
        return logit

    def compute_output_shape(self, tokens_shape):
        return (tokens_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "knowledge_aware": self.knowledge_aware,
                "knowledge_prior": self.knowledge_prior,
            }
        )
        return config


def knowledge_match(answer_tokens, knowledge_ids):
    """The probability that each answer spells one of its KG objects (1 or 0 for hard tokens).

    Args:
        answer_tokens: int32 ids `(batch, length)`, or float token
            probabilities `(batch, length, vocabulary)` (a straight-through
            sample: hard values forward, the soft sample's gradient).
        knowledge_ids: int32 `(batch, objects, length)`: the token ids each KG
            object of the row's `(subject, relation)` is written with after the
            prompt, cut to `length`; 0 pads a shorter object (any token
            matches there) and fills the rows of absent objects.

    Returns:
        float32 `(batch,)`: the largest, over the row's objects, product of
        the probabilities of the object's tokens; 0 for a row with no object.
    """
    ops = keras.ops
    if keras.backend.is_int_dtype(keras.backend.standardize_dtype(answer_tokens.dtype)):
        # (batch, 1, length) == (batch, objects, length)
        token_matches = ops.cast(ops.equal(answer_tokens[:, None, :], knowledge_ids), "float32")
    else:
        probabilities = ops.cast(answer_tokens, "float32")
        gathered = ops.take_along_axis(  # (batch, length, objects): p(answer_j = object token j)
            probabilities, ops.transpose(knowledge_ids, (0, 2, 1)), axis=-1)
        token_matches = ops.transpose(gathered, (0, 2, 1))
    required = ops.not_equal(knowledge_ids, 0)
    per_object = ops.prod(ops.where(required, token_matches, 1.0), axis=-1)
    present = ops.any(required, axis=-1)
    return ops.max(ops.where(present, per_object, 0.0), axis=-1)


def build_discriminator(language_model, hidden_dim=64, num_layers=1, num_heads=2, intermediate_dim=128, dropout=0.1,
                        knowledge_aware=False):
    """A `SequenceDiscriminator` sized for `language_model`'s vocabulary and length.

    Its token embeddings start as a random projection of the language model's
    own (when those are wider), so tokens the generator treats alike start
    alike for the discriminator too.

    Args:
        language_model: `CausalLanguageModel`.
        hidden_dim, num_layers, num_heads, intermediate_dim, dropout,
            knowledge_aware: as for `SequenceDiscriminator`.

    Returns:
        A built `SequenceDiscriminator`.
    """
    # Sized by the embeddings, which cover every id the language model predicts
    # (a keras-hub backbone may embed more ids than its tokenizer spells).
    source = keras.ops.convert_to_numpy(language_model.token_embeddings())
    discriminator = SequenceDiscriminator(
        vocabulary_size=source.shape[0], sequence_length=language_model.sequence_length,
        hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads, intermediate_dim=intermediate_dim,
        dropout=dropout, knowledge_aware=knowledge_aware, name="discriminator",
    )
    discriminator.build((None, None))
    if source.shape[1] >= hidden_dim:
        projection = keras.random.normal((source.shape[1], hidden_dim), seed=0) / source.shape[1] ** 0.5
        discriminator.token_embedding.embeddings.assign(keras.ops.matmul(source, projection))
    return discriminator
