"""Keras layers that users add to their models (installed as `kfine.layers`)."""
