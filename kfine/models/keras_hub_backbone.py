"""keras-hub presets (GPT-2, Llama, Gemma...) as the pretrained model kfine extends."""

import os
import weakref

import keras
import keras_hub

from kfine.errors import ModelError, first_line
from kfine.layers import LanguageModelHead
from kfine.models.causal_lm import CausalLanguageModel
from kfine.models.preset_tokenizer import PresetTokenizer

PRESET_SCHEMES = ("kaggle://", "hf://", "modelscope://", "gs://")
"""Handle prefixes keras-hub downloads presets from (where the network allows)."""
PRESET_CONFIG = "config.json"  # the backbone config every keras-hub preset folder holds


@keras.saving.register_keras_serializable(package="kfine")
class KerasHubBackboneLayer(keras.layers.Layer):
    """Wraps a keras-hub backbone so it maps kfine token ids to hidden states.

    keras-hub backbones take a dict `{"token_ids", "padding_mask"}`; this
    layer takes kfine's right-padded ids (the preset's ids plus one, 0 =
    padding; see `PresetTokenizer`), so a backbone can be the first layer of
    a `CausalLanguageModel`. It also carries the preset's tokenizer as a
    `PresetTokenizer` (`tokenizer`), vocabulary included in the config.

    Args:
        backbone: `keras_hub.models.Backbone` with `token_ids` and
            `padding_mask` inputs and a reversible `token_embedding`
            (GPT2Backbone, LlamaBackbone, GemmaBackbone and the like).
        tokenizer: the preset's own `keras_hub.tokenizers.Tokenizer`, or a
            `PresetTokenizer` wrapping it.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        token_ids: int tensor of shape `(batch, sequence)`.

    Returns:
        Hidden states of shape `(batch, sequence, hidden_dim)`.
    """

    def __init__(self, backbone, tokenizer, **kwargs):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if not isinstance(backbone, keras_hub.models.Backbone):
            raise ValueError(f"`backbone` must be a keras_hub.models.Backbone. Received: backbone={backbone!r}")
        if isinstance(tokenizer, dict):
            tokenizer = PresetTokenizer.from_config(tokenizer)
        elif not isinstance(tokenizer, PresetTokenizer):
            tokenizer = PresetTokenizer(tokenizer)
        self.backbone = backbone
        # A plain object, not a tracked layer: its vocabulary lives in this layer's config.
        self.tokenizer = tokenizer

    @property
    def embedding_dim(self):
        return self.backbone.hidden_dim

    @property
    def sequence_length(self):
        # Rotary-position models (Llama, Gemma) have no fixed limit; kfine's generator needs one.
        return getattr(self.backbone, "max_sequence_length", None) or 2048

    def token_embeddings(self):
        """The backbone's token embeddings in kfine's ids: `(vocabulary_size + 1, hidden_dim)`, float32.

        Row 0, kfine's padding, is zeros; row `i` embeds the preset's id `i - 1`.
        """
        embeddings = keras.ops.cast(self.backbone.token_embedding.embeddings, "float32")
        return keras.ops.concatenate([keras.ops.zeros_like(embeddings[:1]), embeddings], axis=0)

    def build(self, token_ids_shape):
        self.backbone.build({"token_ids": token_ids_shape, "padding_mask": token_ids_shape})

    def call(self, token_ids):
        padding_mask = keras.ops.not_equal(token_ids, 0)
        preset_ids = keras.ops.maximum(token_ids - 1, 0)
        return self.backbone({"token_ids": preset_ids, "padding_mask": padding_mask})

    def compute_output_shape(self, token_ids_shape):
        return (*token_ids_shape, self.backbone.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        config["tokenizer"] = self.tokenizer.get_config()
        return config


@keras.saving.register_keras_serializable(package="kfine")
class BackboneOutputHead(LanguageModelHead):
    """The language-model head of a keras-hub backbone: its own output projection.

    Projects hidden states with the backbone's reversible token embedding,
    as keras-hub's `CausalLM`s do (the tied embedding of GPT-2 and Gemma,
    Llama's separate output matrix), so the model predicts what the
    preset's own head would, with no weights of its own; Gemma's final
    logit soft cap is applied where the backbone has one. Id 0, kfine's
    padding, gets a logit of -1e9. `CausalLanguageModel.add` ties the
    head to the model's `KerasHubBackboneLayer` before it is placed.

    Args:
        vocabulary_size: int. kfine's vocabulary size: the backbone's plus one.
        **kwargs: standard `keras.layers.Layer` arguments.
    """

    def __init__(self, vocabulary_size, **kwargs):
        kwargs.pop("kernel_initializer", None)
        super().__init__(vocabulary_size, **kwargs)
        self._backbone = None

    def tie_to(self, model):
        """Takes the output projection of the first `KerasHubBackboneLayer` of `model`."""
        backbone_layer = next((layer for layer in model.layers if isinstance(layer, KerasHubBackboneLayer)), None)
        if backbone_layer is None:
            raise ModelError("a BackboneOutputHead needs a KerasHubBackboneLayer before it in the model")
        backbone = backbone_layer.backbone
        if backbone.vocabulary_size + 1 != self.vocabulary_size:
            raise ModelError(
                f"the head predicts {self.vocabulary_size} tokens but the backbone embeds "
                f"{backbone.vocabulary_size} (plus kfine's padding)"
            )
        # A weak reference: the embedding's variables belong to (and are saved with) the backbone.
        self._backbone = weakref.ref(backbone)

    def build(self, hidden_states_shape):
        self.built = True

    def call(self, hidden_states):
        if self._backbone is None:
            raise ModelError("BackboneOutputHead is used before CausalLanguageModel.add tied it to a backbone")
        backbone = self._backbone()
        logits = keras.ops.cast(backbone.token_embedding(hidden_states, reverse=True), "float32")
        soft_cap = getattr(backbone, "final_logit_soft_cap", None)
        if soft_cap:
            logits = keras.ops.tanh(logits / soft_cap) * soft_cap
        padding = keras.ops.full_like(logits[..., :1], -1e9)
        return keras.ops.concatenate([padding, logits], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.pop("kernel_initializer", None)
        return config


def from_keras_hub(backbone, tokenizer, name="kfine_keras_hub_lm"):
    """Builds a `CausalLanguageModel` around a keras-hub backbone and its tokenizer.

    Args:
        backbone: `keras_hub.models.Backbone`.
        tokenizer: `keras_hub.tokenizers.Tokenizer`, the backbone's own.
        name: str. Model name.

    Returns:
        A built `CausalLanguageModel` whose `tokenizer` is a `PresetTokenizer`.
    """
    vocabulary_size = tokenizer.vocabulary_size()
    if vocabulary_size > backbone.vocabulary_size:
        raise ModelError(
            f"the tokenizer has {vocabulary_size} tokens but the backbone embeds only {backbone.vocabulary_size}"
        )
    return CausalLanguageModel(
        [
            keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            KerasHubBackboneLayer(backbone, tokenizer, name="keras_hub_backbone"),
            BackboneOutputHead(backbone.vocabulary_size + 1, name="language_model_head"),
        ],
        name=name,
    )


def is_preset_handle(path):
    """Whether `path` is a keras-hub preset handle (`kaggle://...`, `hf://...`) rather than a local path."""
    return path.startswith(PRESET_SCHEMES)


def is_preset(path):
    """Whether `path` names a keras-hub preset: a handle or a folder with its config.json."""
    return is_preset_handle(path) or (os.path.isdir(path) and os.path.exists(os.path.join(path, PRESET_CONFIG)))


def load_keras_hub_preset(preset, dtype=None):
    """Loads a keras-hub preset (a `save_to_preset` folder or a handle) as a `CausalLanguageModel`.

    keras-hub deserializes the preset's backbone and tokenizer configs in
    Keras safe mode (the default of `keras.saving.deserialize_keras_object`):
    a config holding a Lambda layer or a class nobody registered is refused.

    Args:
        preset: str. A local folder, or a handle such as
            `kaggle://keras/gpt2/keras/gpt2_base_en` or `hf://...` (downloaded
            by keras-hub where the network allows).
        dtype: str or None. The backbone's dtype policy (e.g. "bfloat16").

    Raises:
        ModelError: in one line, whatever keras-hub could not load.
    """
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset, dtype=dtype)
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset)
    except Exception as error:  # keras-hub raises many types (and network errors); report them in one line
        hint = " (a handle needs the network; pass a local preset folder offline)" if is_preset_handle(preset) else ""
        raise ModelError(f"{preset}: cannot load the keras-hub preset: {first_line(error)}{hint}") from error
    return from_keras_hub(backbone, tokenizer, name=f"kfine_{backbone.name}")
