"""Tiny keras-hub presets (GPT-2, Llama, Gemma) the preset and linker tests make on the people KG.

Random weights; tokenizers learned from the people KG's sentences plus a few
names with characters the KG never has, so those names spell without any
unknown token.
"""

from kfine.models.preset_builder import build_preset

ARCHITECTURES = ("gpt2", "llama", "gemma")
FOREIGN_NAMES = ["Curaçao", "α-helix", "Zürich", "America/New_York"]
# Smaller than the builder's tiny default, so a test builds and runs one in a second or two.
TINY_PRESET_DIMS = {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32}


def people_sentences(task):
    graph = task.knowledge_graph
    return task.verbalizer.sentences(graph.triples, which="all") + [f"{name} is far away." for name in FOREIGN_NAMES]


def write_tiny_preset(architecture, task, folder, seed=0):
    """Writes a tiny preset of `architecture` for the people KG `task` into `folder`; returns `folder`."""
    build_preset(architecture, people_sentences(task), folder, seed=seed, **TINY_PRESET_DIMS)
    return folder
