"""Knowledge graphs: files, the `KnowledgeGraph`, templates, splits and verbalization.

Pure Python and numpy, so these load fast and the CLI can check user files
before TensorFlow starts.
"""

from kfine.knowledge.formats import read_aliases, read_triples, write_aliases, write_triples
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.splits import Splits
from kfine.knowledge.templates import Templates
from kfine.knowledge.verbalizer import Prompt, Statement, Verbalizer

__all__ = [
    "KnowledgeGraph",
    "Prompt",
    "Splits",
    "Statement",
    "Templates",
    "Verbalizer",
    "read_aliases",
    "read_triples",
    "write_aliases",
    "write_triples",
]
