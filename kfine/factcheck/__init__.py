"""Fact checking: the exact KG reference, a neural claim verifier, and the claims they learn from."""
