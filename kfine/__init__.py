"""kfine: fine-tune a pretrained Keras language model on a domain without hallucinating.

Importing kfine registers its Keras classes, so `keras.models.load_model` reads
kfine models with no `custom_objects`. The rest of the public API is imported
lazily on first use.
"""

import importlib
import os

from kfine.errors import KfineError, KnowledgeGraphError, ModelError, TemplateError

__version__ = "0.1.0"

# TensorFlow's C++ runtime logs notices and warnings at start-up (CUDA probing,
# oneDNN) that would bury kfine's one-line messages; keep its errors. Set before
# TensorFlow is imported, and only when the user has not chosen a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A plain source checkout (PYTHONPATH=checkout, no install) has no kfine/layers:
# the layers live in the top-level layers/ folder the design asks for, which a
# wheel installs as kfine.layers (setup.py package_dir). Only this __path__ entry
# lets the checkout import it too; the alternative, a kfine/layers symlink, breaks
# on checkouts without symlinks and shows the layers twice to every tool that
# walks kfine/.
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


import kfine.factcheck.fact_checker  # noqa: E402,F401  (registers FactChecker)
import kfine.layers  # noqa: E402,F401  (registers the layers)
import kfine.models.causal_lm  # noqa: E402,F401  (registers CausalLanguageModel)
import kfine.models.discriminator  # noqa: E402,F401  (registers SequenceDiscriminator)
import kfine.models.keras_hub_backbone  # noqa: E402,F401  (registers KerasHubBackboneLayer)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'kfine' has no attribute {name!r}")
