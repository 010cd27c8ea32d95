"""One knowledge graph turned into training text and evaluation prompts."""

import dataclasses
import zlib

import numpy as np

from kfine.knowledge.compositions import composition_templates, two_hop_questions
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.splits import Splits
from kfine.knowledge.templates import COMPOSITION_SEPARATOR, Templates
from kfine.knowledge.verbalizer import Verbalizer

SPLITS = ("seen", "heldout", "unknown", "unknown-inferable", "paraphrase", "novel-wording", "multihop")
# The split each evaluation split draws its facts from, and which templates ask them.
_SOURCES = {
    "seen": ("finetune", "training"),
    "heldout": ("heldout", "training"),
    "unknown": ("unknown", "training"),
    "unknown-inferable": ("unknown", "training"),
    "paraphrase": ("heldout", "paraphrase"),
    "novel-wording": ("heldout", "novel"),
    "multihop": ("heldout", "compositions"),
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
        """Returns `[(Prompt, gold_objects)]` for one of `SPLITS`.

        One prompt per question `(subject, relation)` (the facts of a
        multi-valued relation share one), asked with one of the split's
        templates chosen at random; under `prompts_per_split` the questions are
        sampled stratified by relation, as equal a share per relation as the
        split allows. Seeded by the split seed: every method and seed gets
        the same prompts.

        The unknown group's facts are not in the model's KG, but some are
        implied by it: an edge between the subject and a gold object (the
        reverse `neighbour` edge, or a city's `country` edge towards the
        country whose capital it is). Such questions form `unknown-inferable`;
        `unknown` keeps only those whose answer the model's KG does not name
        next to the subject, where the honest answer is to abstain.

        `novel-wording` asks held-out facts in the templates' `_novel_wordings`
        (read by no pretraining and no method); `multihop` asks held-out
        subjects two-hop questions along the model KG's paths (see
        `kfine.knowledge.compositions`), with relation `"inner.outer"`.
        """
        if split not in _SOURCES:
            raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
        group, which = _SOURCES[split]
        triples = self.finetune_triples if group == "finetune" else getattr(self.splits, group)
        by_question = {}
        if group == "unknown":
            inferable = split == "unknown-inferable"
            triples = [triple for triple in triples if self._implied_by_model_graph(*triple[:2]) == inferable]
        if which == "compositions":
            subjects = sorted({subject for subject, _, _ in triples})
            compositions = composition_templates(self.templates, self.model_graph)
            prompts = [prompt for prompt, _ in two_hop_questions(self.model_graph, subjects, compositions)]
        else:
            prompts = self.verbalizer.prompts(triples, which=which)
        for prompt in prompts:
            by_question.setdefault((prompt.subject, prompt.relation), []).append(prompt)
        # A question's template depends on the question alone, not on which others are asked.
        questions = [templates[zlib.crc32(f"{self.split_seed}\t{subject}\t{relation}".encode()) % len(templates)]
                     for (subject, relation), templates in by_question.items()]
        rng = np.random.default_rng([self.split_seed, 2])
        prompts = _stratified_by_relation(questions, self.size.prompts_per_split, rng)
        return [(prompt, self._gold(prompt)) for prompt in prompts]

    def _gold(self, prompt):
        if prompt.relation in self.knowledge_graph.relations:
            return self.knowledge_graph.objects(prompt.subject, prompt.relation)
        inner, outer = prompt.relation.split(COMPOSITION_SEPARATOR)
        return {obj for middle in self.knowledge_graph.objects(prompt.subject, inner)
                for obj in self.knowledge_graph.objects(middle, outer)}

    @property
    def evaluated_splits(self):
        """The `SPLITS` that have prompts on this KG (a KG without inverse edges has no `unknown-inferable`)."""
        return tuple(split for split in SPLITS if self.evaluation_prompts(split))

    def _implied_by_model_graph(self, subject, relation):
        """Whether the model's KG links `subject` to one of the question's gold objects by an edge."""
        graph = self.model_graph
        return any(graph.has_entity(obj) and any(entity == subject for _, entity in graph.neighbors(obj))
                   for obj in self.knowledge_graph.objects(subject, relation))

    @property
    def heldout_sentences(self):
        """Held-out facts in the training templates."""
        triples = self._subsample(self.splits.heldout, self.size.prompts_per_split, salt=3)
        return self.verbalizer.sentences(triples)

    @property
    def perplexity_sentences(self):
        """`(split, sentences)` perplexity is measured on: text no method trained on or stores.

        The held-out facts in their novel wordings (`"novel-wording"`): no
        training text and no datastore key holds these sentences. Templates
        without `_novel_wordings` fall back to the held-out facts in the
        training templates (`"heldout"`), which a KG datastore may hold.
        """
        triples = self._subsample(self.splits.heldout, self.size.prompts_per_split, salt=3)
        novel = self.verbalizer.sentences(triples, which="novel")
        return ("novel-wording", novel) if novel else ("heldout", self.verbalizer.sentences(triples))


def _stratified_by_relation(prompts, limit, rng):
    """At most `limit` of `prompts`, as equal a number per relation as each relation allows, in their order."""
    if limit is None or len(prompts) <= limit:
        return list(prompts)
    by_relation = {}
    for index, prompt in enumerate(prompts):
        by_relation.setdefault(prompt.relation, []).append(index)
    chosen, remaining = [], limit
    # Smallest relations first: what one cannot fill goes to the others.
    relations = sorted(by_relation, key=lambda relation: (len(by_relation[relation]), relation))
    for position, relation in enumerate(relations):
        share = min(len(by_relation[relation]), remaining // (len(relations) - position))
        chosen += rng.choice(by_relation[relation], size=share, replace=False).tolist()
        remaining -= share
    return [prompts[index] for index in sorted(chosen)]
