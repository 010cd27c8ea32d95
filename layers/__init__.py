"""Keras layers that users add to their models (installed as `kfine.layers`)."""

from kfine.layers.fact_datastore import FactDatastore
from kfine.layers.knowledge_constraint_regularizer import KnowledgeConstraintRegularizer
from kfine.layers.knowledge_graph_encoder import KnowledgeGraphEncoder
from kfine.layers.knowledge_injection import KnowledgeInjectionLayer
from kfine.layers.language_model_head import LanguageModelHead

__all__ = [
    "FactDatastore",
    "KnowledgeConstraintRegularizer",
    "KnowledgeGraphEncoder",
    "KnowledgeInjectionLayer",
    "LanguageModelHead",
]
