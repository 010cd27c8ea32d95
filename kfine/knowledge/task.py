"""One knowledge graph turned into training text and evaluation prompts."""

import dataclasses

import numpy as np

from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.splits import Splits
from kfine.knowledge.templates import Templates
from kfine.knowledge.verbalizer import Verbalizer

SPLITS = ("seen", "heldout", "unknown", "paraphrase")
# The split each evaluation split draws its facts from, and which templates ask them.
_SOURCES = {
    "seen": ("finetune", "training"),
    "heldout": ("heldout", "training"),
    "unknown": ("unknown", "training"),
    "paraphrase": ("heldout", "paraphrase"),
}


@dataclasses.dataclass(frozen=True)
class TaskSize:
    """How much of the KG a run uses.

    Args:
        finetune_subjects: int or None. Subjects of the finetune split whose
            facts are trained on (None: all).
        prompts_per_split: int or None. Evaluation prompts per split (None: all).
    """

    finetune_subjects: int | None = None
    prompts_per_split: int | None = None


FULL = TaskSize()
QUICK = TaskSize(finetune_subjects=150, prompts_per_split=200)


class FactTask:
    """Training text and evaluation prompts for one KG, split by subject.

    The evaluator keeps the full KG; methods only get `model_graph` (the KG
    without the unknown split's facts), `finetune_sentences` and the
    templates that are not reserved for paraphrase evaluation.

    Args:
        knowledge_graph: `KnowledgeGraph`. The full KG.
        templates: `Templates`. Validated against the KG here.
        split_seed: int. Seed of the subject split.
        size: `TaskSize`. `QUICK` subsamples training subjects and prompts.
    """

    def __init__(self, knowledge_graph, templates, split_seed=0, size=FULL):
        templates.validate(knowledge_graph)
        self.knowledge_graph = knowledge_graph
        self.templates = templates
        self.split_seed = split_seed
        self.size = size
        self.splits = Splits.by_subject(knowledge_graph, seed=split_seed)
        self.verbalizer = Verbalizer(templates)

    @classmethod
    def from_files(cls, triples, templates, aliases=None, split_seed=0, size=FULL):
        """Builds the task from files in the generic KG format."""
        graph = KnowledgeGraph.from_files(triples, aliases)
        return cls(graph, Templates.from_file(templates), split_seed=split_seed, size=size)

    @property
    def model_graph(self):
        """The KG a method may use: the unknown split's facts removed."""
        return self.splits.model_graph

    def _subsample(self, items, limit, salt):
        if limit is None or len(items) <= limit:
            return list(items)
        rng = np.random.default_rng([self.split_seed, salt])
        chosen = sorted(rng.choice(len(items), size=limit, replace=False))
        return [items[index] for index in chosen]

    @property
    def finetune_triples(self):
        """The finetune split's training triples (subsampled by subject under QUICK)."""
        triples = self.splits.training_triples("finetune")
        subjects = sorted({subject for subject, _, _ in triples})
        kept = set(self._subsample(subjects, self.size.finetune_subjects, salt=1))
        return [triple for triple in triples if triple[0] in kept]

    @property
    def finetune_sentences(self):
        return self.verbalizer.sentences(self.finetune_triples)

    def evaluation_prompts(self, split):
        """Returns `[(Prompt, gold_objects)]` for one of `SPLITS`."""
        if split not in _SOURCES:
            raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
        group, which = _SOURCES[split]
        triples = self.finetune_triples if group == "finetune" else getattr(self.splits, group)
        prompts = self._subsample(self.verbalizer.prompts(triples, which=which), self.size.prompts_per_split, salt=2)
        return [(prompt, self.knowledge_graph.objects(prompt.subject, prompt.relation)) for prompt in prompts]

    @property
    def heldout_sentences(self):
        """Held-out facts in the training templates, for perplexity."""
        triples = self._subsample(self.splits.heldout, self.size.prompts_per_split, salt=3)
        return self.verbalizer.sentences(triples)
