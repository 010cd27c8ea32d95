"""kfine: fine-tune a pretrained Keras language model on a domain without hallucinating.

The public API is imported lazily, so `import kfine` is cheap and the CLI can
report bad input before TensorFlow loads.
"""

import importlib
import os

from kfine.errors import KfineError, KnowledgeGraphError, ModelError, TemplateError

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
}

__all__ = ["KfineError", "KnowledgeGraphError", "ModelError", "TemplateError", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'kfine' has no attribute {name!r}")
