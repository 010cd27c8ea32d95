"""kfine's causal language model: a keras.Sequential that users extend with `add`."""

import keras
import keras_hub

from kfine.layers import LanguageModelHead
from kfine.models.tokenizer import WordPieceTokenizer


@keras.saving.register_keras_serializable(package="kfine")
class CausalLanguageModel(keras.Sequential):
    """A decoder-only language model that is a `keras.Sequential`.

    The contract users build on:

    - input: int32 token ids of shape `(batch, sequence)`, starting with
      `[BOS]`, right-padded with `[PAD]` (id 0);
    - layers: `TokenAndPositionEmbedding`, `TransformerDecoder` blocks, a final
      `LayerNormalization` (all keras-hub / Keras layers), then a
      `LanguageModelHead`;
    - output: float32 next-token logits of shape `(batch, sequence, vocab)`.

    `add(layer)` inserts `layer` *before* the head, so an added layer receives
    the hidden states `(batch, sequence, hidden_dim)` and its output feeds the
    head. A layer that sets `consumes_logits = True` is appended after the
    head instead and receives the logits; one that sets
    `reads_hidden_states = True` is appended after the head and receives
    `[hidden_states, logits, token_ids]` (the head's input, the logits so far and the tokens at those
    positions; a layer with `token_context = k` gets the `k` tokens up to each position instead,
    `(batch, sequence, k)`, so that it can read what came before a position even when generation
    runs the head on one position).
    A layer that needs more than hidden states may offer
    `for_language_model(model)`: `add` places the layer it returns instead
    (a `KnowledgeInjectionLayer` given `templates` becomes a `FactDatastore`
    keyed by this model's hidden states). The tokenizer's vocabulary is part of
    the config, so a saved `.keras` file is self-contained and
    `keras.models.load_model(path)` needs no `custom_objects`.

    Args:
        layers: list of `keras.layers.Layer`. The stack, as for `Sequential`.
        vocabulary: list of str. The WordPiece vocabulary of the tokenizer.
        trainable: bool. Whether the model's variables are trainable.
        name: str. Model name.

    Example:

    >>> model = build_causal_lm(tokenizer.vocabulary, num_layers=2)
    >>> model.add(keras.layers.Dense(model.hidden_dim))  # sits before the head
    >>> logits = model(token_ids)
    """

    def __init__(self, layers=None, vocabulary=None, trainable=True, name=None):
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self._tokenizer = None
        super().__init__(layers=layers, trainable=trainable, name=name)

    @property
    def tokenizer(self):
        """kfine's `WordPieceTokenizer`, or the tokenizer a first layer carries (a keras-hub
        backbone's `PresetTokenizer`); None if neither."""
        if self._tokenizer is None and self.vocabulary is not None:
            self._tokenizer = WordPieceTokenizer(self.vocabulary)
        if self._tokenizer is None and self.layers:
            return getattr(self.layers[0], "tokenizer", None)
        return self._tokenizer

    @property
    def head(self):
        """The `LanguageModelHead` (None while the model has none)."""
        return next((layer for layer in self.layers if isinstance(layer, LanguageModelHead)), None)

    @property
    def hidden_dim(self):
        return self.layers[0].embedding_dim

    @property
    def sequence_length(self):
        return self.layers[0].sequence_length

    def token_embeddings(self):
        """The first layer's token embeddings in kfine's ids: a `(vocabulary_size, hidden_dim)` float32 tensor.

        A first layer may say how (`KerasHubBackboneLayer` shifts its
        backbone's ids by one); otherwise it is keras-hub's
        `TokenAndPositionEmbedding`, whose `token_embedding` is used.
        """
        first = self.layers[0]
        if hasattr(first, "token_embeddings"):
            return first.token_embeddings()
        return keras.ops.cast(first.token_embedding.embeddings, "float32")

    def add(self, layer, rebuild=True):
        """Adds `layer` just before the `LanguageModelHead` (see the class docs)."""
        if hasattr(layer, "tie_to"):  # a head that projects with an earlier layer's weights
            layer.tie_to(self)
        head = self.head
        if head is not None and hasattr(layer, "for_language_model"):
            layer = layer.for_language_model(self)
        if head is None or _reads_logits(layer):
            return super().add(layer, rebuild=rebuild)
        # Take off the head and whatever reads the logits, add, put them back.
        later = []
        while later[-1:] != [head]:
            later.append(self.pop(rebuild=False))
        super().add(layer, rebuild=False)
        for index, moved in enumerate(reversed(later)):
            super().add(moved, rebuild=rebuild and index == len(later) - 1)

    def hidden_states(self, token_ids, training=False):
        """Runs every layer before the head; returns `(batch, sequence, hidden_dim)`."""
        outputs = token_ids
        for layer in self.layers:
            if layer is self.head:
                break
            outputs = layer(outputs, training=training)
        return outputs

    def logits_from_hidden_states(self, hidden_states, token_ids, training=False, position=None):
        """Runs the head and every layer after it; returns the model's output.

        `token_ids` are the tokens the hidden states were computed at (same
        positions), for the layers that read them: a layer with
        `token_context = k` gets the `k` tokens up to each position,
        `(batch, sequence, k)`. With `position` (an int or scalar tensor),
        only that position's output is computed, `(batch, 1, ...)`, and
        `hidden_states` may be that position's alone.
        """
        head = self.head
        layers = self.layers
        outputs = hidden_states
        for layer in layers[layers.index(head) :]:
            if getattr(layer, "reads_hidden_states", False):
                tokens = _tokens_for(layer, token_ids, position)
                outputs = layer([hidden_states, outputs, tokens], training=training)
            else:
                outputs = layer(outputs, training=training)
        return outputs

    def next_token_logits(self, token_ids, index):
        """The output at position `index - 1` only, `(batch, vocab)`: what generation samples from.

        The head and the layers after it act on each position alone (they
        may read the tokens before it), so they run on that one position
        rather than the whole buffer.
        """
        hidden_states = keras.ops.take(self.hidden_states(token_ids), index - 1, axis=1)
        return self.logits_from_hidden_states(hidden_states[:, None, :], token_ids, position=index - 1)[:, 0, :]

    def build(self, input_shape=None):
        if not any(getattr(layer, "reads_hidden_states", False) for layer in self.layers) or not isinstance(
            self._layers[0], keras.layers.InputLayer
        ):
            return super().build(input_shape)
        # `Sequential.build` chains the layers; a layer that reads hidden
        # states needs the head's input as well, so wire the graph here.
        inputs = self._layers[0].output
        hidden_states = self.hidden_states(inputs)
        self._functional = keras.Model(inputs=inputs, outputs=self.logits_from_hidden_states(hidden_states, inputs))

    def get_config(self):
        config = super().get_config()
        config["vocabulary"] = self.vocabulary
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        vocabulary = config.pop("vocabulary", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model.vocabulary = vocabulary
        return model


def token_windows(token_ids, context):
    """The `context` tokens up to each position: `(batch, sequence, context)`, the position's own last.

    Positions before the sequence's start hold `[PAD]` (0).
    """
    padded = keras.ops.pad(token_ids, [[0, 0], [context - 1, 0]])
    # Ends counted from the right, so that no static length is needed.
    ends = [offset - (context - 1) or None for offset in range(context)]
    return keras.ops.stack([padded[:, offset:end] for offset, end in zip(range(context), ends)], axis=-1)


def _tokens_for(layer, token_ids, position):
    """What a layer that reads tokens gets: the tokens, or its `token_context` windows, at `position` or all."""
    context = getattr(layer, "token_context", None)
    if position is None:
        return token_ids if context is None else token_windows(token_ids, context)
    if context is None:
        return keras.ops.take(token_ids, position, axis=1)[:, None]
    # Generation's hot path: only the one window, not every position's.
    padded = keras.ops.pad(token_ids, [[0, 0], [context - 1, 0]])
    return keras.ops.slice(padded, (0, position), (keras.ops.shape(padded)[0], context))[:, None, :]


def _reads_logits(layer):
    return getattr(layer, "consumes_logits", False) or getattr(layer, "reads_hidden_states", False)


def check_decoder_dimensions(**dimensions):
    """Raises `ValueError` unless every dimension is a positive int and `hidden_dim` splits into `num_heads`."""
    for argument, value in dimensions.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{argument}` must be a positive int. Received: {argument}={value}")
    if dimensions["hidden_dim"] % dimensions["num_heads"]:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. "
            f"Received: hidden_dim={dimensions['hidden_dim']}, num_heads={dimensions['num_heads']}"
        )


def build_causal_lm(
    vocabulary,
    num_layers=2,
    hidden_dim=128,
    num_heads=4,
    intermediate_dim=512,
    sequence_length=64,
    dropout=0.1,
    name="kfine_causal_lm",
):
    """Builds a fresh `CausalLanguageModel` from keras-hub modeling layers.

    Args:
        vocabulary: list of str. Tokenizer vocabulary (sets the vocabulary size).
        num_layers: int. Number of `TransformerDecoder` blocks.
        hidden_dim: int. Width of the hidden states.
        num_heads: int. Attention heads per block.
        intermediate_dim: int. Width of the feed-forward layers.
        sequence_length: int. Longest sequence the position embedding covers.
        dropout: float. Dropout rate inside the decoder blocks.
        name: str. Model name.

    Returns:
        A built `CausalLanguageModel`.
    """
    check_decoder_dimensions(num_layers=num_layers, hidden_dim=hidden_dim, num_heads=num_heads,
                             intermediate_dim=intermediate_dim, sequence_length=sequence_length)
    vocabulary = list(vocabulary)
    stack = [
        keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=len(vocabulary),
            sequence_length=sequence_length,
            embedding_dim=hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="token_and_position_embedding",
        ),
    ]
    for index in range(num_layers):
        stack.append(
            keras_hub.layers.TransformerDecoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                dropout=dropout,
                activation="gelu",
                normalize_first=True,
                name=f"transformer_decoder_{index}",
            )
        )
    stack.append(keras.layers.LayerNormalization(epsilon=1e-5, name="final_layer_norm"))
    stack.append(LanguageModelHead(len(vocabulary), name="language_model_head"))
    return CausalLanguageModel(stack, vocabulary=vocabulary, name=name)
