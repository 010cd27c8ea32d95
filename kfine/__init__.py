"""kfine: fine-tune a pretrained Keras language model on a domain without hallucinating.

Importing kfine registers its Keras classes, so `keras.models.load_model` reads
kfine models with no `custom_objects`. The rest of the public API is imported
lazily on first use.
"""

import importlib
import os
import sys

from kfine.errors import KfineError, KnowledgeGraphError, ModelError, TemplateError


def _import_tensorflow_quietly():
    """Imports TensorFlow with stderr muted: its C++ start-up lines (CUDA
    probing, absl notices) would otherwise bury kfine's one-line messages.
    Python exceptions still surface; set KFINE_VERBOSE_TF=1 to see everything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("KFINE_VERBOSE_TF") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
        import tensorflow_text  # noqa: F401

        # Device probing logs once, here; but it starts TensorFlow's runtime, after
        # which a multi-worker cluster (TF_CONFIG) can no longer be joined.
        if "TF_CONFIG" not in os.environ:
            tensorflow.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


__version__ = "0.1.0"

# From a source checkout the layers live in the top-level layers/ folder, which
# setup.py installs as kfine.layers; let the import system find it there too.
_checkout_layers = os.path.join(os.path.dirname(os.path.dirname(__file__)), "layers")
if not os.path.isdir(os.path.join(os.path.dirname(__file__), "layers")) and os.path.isfile(
    os.path.join(_checkout_layers, "__init__.py")
):
    __path__.append(os.path.dirname(_checkout_layers))  # noqa: F821 (package __path__)

_PUBLIC = {
    "KnowledgeGraph": "kfine.knowledge.graph",
    "Templates": "kfine.knowledge.templates",
    "Verbalizer": "kfine.knowledge.verbalizer",
    "Splits": "kfine.knowledge.splits",
    "EntityLinker": "kfine.knowledge.linker",
    "WordPieceTokenizer": "kfine.models.tokenizer",
    "CausalLanguageModel": "kfine.models.causal_lm",
    "load_model": "kfine.models.loading",
    "generate": "kfine.models.generation",
    "AdversarialFineTuner": "kfine.training.adversarial",
    "SequenceDiscriminator": "kfine.models.discriminator",
    "FactChecker": "kfine.factcheck.fact_checker",
    "KnowledgeGraphChecker": "kfine.factcheck.knowledge_graph_checker",
    "FactCheckFineTuner": "kfine.training.factcheck",
}

__all__ = ["KfineError", "KnowledgeGraphError", "ModelError", "TemplateError", *_PUBLIC]


_import_tensorflow_quietly()
import kfine.layers  # noqa: E402,F401  (registers the layers)
import kfine.models.causal_lm  # noqa: E402,F401  (registers CausalLanguageModel)
import kfine.models.discriminator  # noqa: E402,F401  (registers SequenceDiscriminator)
import kfine.models.keras_hub_backbone  # noqa: E402,F401  (registers KerasHubBackboneLayer)
import kfine.factcheck.fact_checker  # noqa: E402,F401  (registers FactChecker)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'kfine' has no attribute {name!r}")
