"""keras-hub backbones (e.g. GPT2) as the pretrained model kfine extends."""

import os

import keras
import keras_hub

from kfine.errors import ModelError
from kfine.io import artifact_path
from kfine.layers import LanguageModelHead
from kfine.models.causal_lm import CausalLanguageModel

VOCABULARY_FILE = "kfine_vocabulary.txt"


@keras.saving.register_keras_serializable(package="kfine")
class KerasHubBackboneLayer(keras.layers.Layer):
    """Wraps a keras-hub backbone so it maps token ids to hidden states.

    keras-hub backbones take a dict `{"token_ids", "padding_mask"}`; this layer
    takes right-padded token ids (0 = padding) like kfine's own embedding layer,
    so a backbone can be the first layer of a `CausalLanguageModel`.

    Args:
        backbone: a `keras_hub.models.Backbone` with `token_ids` and
            `padding_mask` inputs (GPT2Backbone and other decoder backbones).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        token_ids: int tensor of shape `(batch, sequence)`.

    Returns:
        Hidden states of shape `(batch, sequence, hidden_dim)`.
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if not isinstance(backbone, keras_hub.models.Backbone):
            raise ValueError(f"`backbone` must be a keras_hub.models.Backbone. Received: backbone={backbone!r}")
        self.backbone = backbone

    @property
    def embedding_dim(self):
        return self.backbone.hidden_dim

    @property
    def sequence_length(self):
        return self.backbone.max_sequence_length

    def build(self, token_ids_shape):
        self.backbone.build({"token_ids": token_ids_shape, "padding_mask": token_ids_shape})

    def call(self, token_ids):
        padding_mask = keras.ops.not_equal(token_ids, 0)
        return self.backbone({"token_ids": token_ids, "padding_mask": padding_mask})

    def compute_output_shape(self, token_ids_shape):
        return (*token_ids_shape, self.backbone.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        return config


def from_keras_hub(backbone, vocabulary, name="kfine_keras_hub_lm"):
    """Builds a `CausalLanguageModel` around a keras-hub backbone.

    The backbone keeps its weights; the `LanguageModelHead` starts as a copy of
    the rows of the backbone's (tied) token embedding that the vocabulary
    uses, so the model predicts what the backbone's own LM head would. kfine tokenizes with a WordPiece vocabulary:
    pass one whose size does not exceed the backbone's `vocabulary_size`
    (e.g. `WordPieceTokenizer.learn(...)`), or train the backbone with it.

    Args:
        backbone: `keras_hub.models.Backbone` or a preset (a local folder
            written by `save_to_preset`).
        vocabulary: list of str. The kfine tokenizer vocabulary.

    Returns:
        A built `CausalLanguageModel`.
    """
    if isinstance(backbone, str):
        backbone = keras_hub.models.Backbone.from_preset(backbone)
    if len(vocabulary) > backbone.vocabulary_size:
        raise ModelError(
            f"the vocabulary has {len(vocabulary)} tokens but the backbone embeds only "
            f"{backbone.vocabulary_size}; learn a smaller vocabulary"
        )
    # The head predicts only the kfine vocabulary, so no id past it is ever sampled.
    head = LanguageModelHead(len(vocabulary), name="language_model_head")
    model = CausalLanguageModel(
        [
            keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            KerasHubBackboneLayer(backbone, name="keras_hub_backbone"),
            head,
        ],
        vocabulary=vocabulary,
        name=name,
    )
    embeddings = keras.ops.convert_to_numpy(backbone.token_embedding.embeddings)
    head.kernel.assign(embeddings[: len(vocabulary)].T)
    return model


def load_keras_hub_preset(directory):
    """Loads a preset folder holding a keras-hub backbone and a kfine vocabulary file."""
    vocabulary_path = artifact_path(directory, VOCABULARY_FILE, ModelError)
    if not os.path.exists(vocabulary_path):
        raise ModelError(
            f"{directory}: a keras-hub preset needs a kfine vocabulary in {VOCABULARY_FILE} "
            "(one token per line; see kfine.models.keras_hub_backbone)"
        )
    with open(vocabulary_path, encoding="utf-8") as stream:
        vocabulary = [line.rstrip("\n") for line in stream]
    return from_keras_hub(directory, vocabulary)
