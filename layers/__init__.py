"""Keras layers that users add to their models (installed as `kfine.layers`)."""

from kfine.layers.language_model_head import LanguageModelHead

__all__ = ["LanguageModelHead"]
