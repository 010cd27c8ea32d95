"""The output projection from hidden states to next-token logits."""

import keras

from kfine.layers.layer_utils import clone_initializer


@keras.saving.register_keras_serializable(package="kfine")
class LanguageModelHead(keras.layers.Layer):
    """Projects hidden states onto the vocabulary.

    The last layer of every kfine language model. It is a layer of its own,
    rather than a plain `Dense`, so a `CausalLanguageModel` can recognise it
    and keep it last when users `add` layers that work on hidden states.
    Logits are computed in float32 under mixed precision, so the softmax and
    the loss stay stable.

    Args:
        vocabulary_size: int. Number of tokens.
        kernel_initializer: initializer for the projection matrix.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        hidden_states: float tensor of shape `(batch, sequence, hidden_dim)`.

    Returns:
        float32 logits of shape `(batch, sequence, vocabulary_size)`.

    Example:

    >>> head = LanguageModelHead(vocabulary_size=100)
    >>> head(keras.ops.zeros((2, 5, 16))).shape
    (2, 5, 100)
    """

    def __init__(self, vocabulary_size, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(vocabulary_size, int) or vocabulary_size < 1:
            raise ValueError(
                "`vocabulary_size` must be a positive int. "
                f"Received: vocabulary_size={vocabulary_size}"
            )
        self.vocabulary_size = vocabulary_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, hidden_states_shape):
        hidden_dim = hidden_states_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(hidden_dim, self.vocabulary_size),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.bias = self.add_weight(name="bias", shape=(self.vocabulary_size,), initializer="zeros")

    def call(self, hidden_states):
        logits = keras.ops.matmul(hidden_states, self.kernel) + self.bias
        return keras.ops.cast(logits, "float32")

    def compute_output_shape(self, hidden_states_shape):
        return (*hidden_states_shape[:-1], self.vocabulary_size)

    def compute_output_spec(self, hidden_states):
        return keras.KerasTensor(self.compute_output_shape(hidden_states.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
