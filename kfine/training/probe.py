"""The probe slice: finetune-split subjects the model is asked about but never trained on.

Fact-check feedback teaches a model where its knowledge ends (R-Tuning,
Zhang et al. 2023: learn to abstain on the questions one gets wrong). That
needs questions the model cannot answer from training text, yet whose
answers the checker may know; held-out, unknown and paraphrase material
must stay untouched for evaluation. The probe is therefore a slice of the
*finetune* split: subjects of that split left out of the MLE sentences
(`FactTask.finetune_triples` subsamples subjects under the quick size; the
probe draws from the rest), asked with the training templates only.

Its facts are in the model's KG like every finetune fact, so the checker
(`KnowledgeGraphChecker` over `ProbeSlice.graph`, which holds the finetune
split's facts and nothing else) can judge the model's answers. Under the
full size every finetune subject is trained on and the probe is empty.
"""

import numpy as np

from kfine.factcheck.verdict import REFUTED, SUPPORTED
from kfine.knowledge.names import DEFAULT_ABSTENTION
from kfine.knowledge.templates import Templates

PROBE_SUBJECTS = 300


class ProbeSlice:
    """Finetune-split facts kept out of training text, for feedback rounds to ask about.

    Args:
        task: `FactTask`.
        subjects: int. At most this many probe subjects (drawn seeded by
            the split seed among the finetune subjects not trained on,
            relation by relation in turn, so every relation is asked about).

    Attributes:
        triples: list of `(subject, relation, object)`: the probe facts.
        graph: `KnowledgeGraph`. The model's KG restricted to the finetune
            split's trainable facts (trained and probe): what the rounds' checker reads.
        templates: `Templates` of the training templates alone (no paraphrase).
    """

    def __init__(self, task, subjects=PROBE_SUBJECTS):
        finetune = task.splits.training_triples("finetune")
        trained = {subject for subject, _, _ in task.finetune_triples}
        candidates = sorted({subject for subject, _, _ in finetune} - trained)
        chosen = _stratified_subjects(finetune, candidates, subjects, np.random.default_rng([task.split_seed, 4]))
        self.triples = [triple for triple in finetune if triple[0] in chosen]
        self.graph = task.model_graph.subgraph(finetune)
        self.templates = Templates({relation: task.templates.training_templates(relation)
                                    for relation in task.templates.relations})
        self._training_templates = task.templates

    @property
    def subjects(self):
        return sorted({subject for subject, _, _ in self.triples})

    def prompts(self, triples=None):
        """`{prompt: (subject, relation)}` for the probe facts (or `triples`), one per training template."""
        questions = {}
        for subject, relation, _ in self.triples if triples is None else triples:
            for template in self._training_templates.training_templates(relation):
                questions.setdefault(Templates.prompt(template, subject), (subject, relation))
        return questions


def _stratified_subjects(triples, candidates, limit, rng):
    """At most `limit` of `candidates`, drawn relation by relation in turn among the subjects with a fact of it.

    The evaluation asks every relation about equally often; a uniform draw
    would ask mostly the relations every subject has (a city's country)
    and almost never those of the rarer subjects (a country's capital).
    """
    candidate_set = set(candidates)
    by_relation = {}
    for subject, relation, _ in triples:
        if subject in candidate_set:
            by_relation.setdefault(relation, set()).add(subject)
    queues = [[subjects[index] for index in rng.permutation(len(subjects))]
              for subjects in (sorted(by_relation[relation]) for relation in sorted(by_relation))]
    chosen = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            while queue and queue[0] in chosen:
                queue.pop(0)
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return set(chosen)


class AbstentionTargets:
    """Turns a checker's verdicts on sampled probe answers into each round's targets.

    The probe facts are in the model's KG, so the exact KG check judges the
    probe samples (R-Tuning labels a question by the answer's correctness):
    a neural checker has never seen these facts, and the answers it passes
    are mostly wrong (measured on geonames: ~90% of its probe "supported"
    were refuted by the KG). Per probe prompt: when at least half its
    samples are supported, the first supported one is the target (a
    positive); otherwise, when one is refuted, the abstention phrase is
    (`PROMPT unknown`, SFT; the feedback trainer also pairs it, chosen, with
    each refuted sample, rejected, for DPO). A prompt with neither keeps its
    previous round's target. The round's checker's false alarms (it refutes
    a sample the exact KG check supports) and misses (it supports a refuted
    one) on the probe are counted per round.

    Args:
        prompts: iterable of probe prompt strings.
        tokenizer: the model's tokenizer.
        exact_checker: `KnowledgeGraphChecker` over `ProbeSlice.graph`.
        abstention: str. The abstention phrase.
    """

    def __init__(self, prompts, tokenizer, exact_checker, abstention=DEFAULT_ABSTENTION):
        self.prompts = list(prompts)
        self.tokenizer = tokenizer
        self.exact_checker = exact_checker
        self._abstentions = dict(zip(self.prompts, tokenizer.encode_batch(
            [f"{prompt} {abstention}" for prompt in self.prompts], add_eos=True)))
        self._targets = {}

    def round_references(self, samples, verdicts, reference_rows, prompt_rows):
        """`(reference_rows with this round's probe targets, verdicts, counts)`.

        The returned verdicts are `verdicts` with each probe sample's replaced
        by the exact check's, so its unlikelihood rows and pairs follow it too.

        Args:
            samples: `[(prompt, sentence, completion_ids)]`.
            verdicts: the checker's `Verdict` on each sample.
            reference_rows: `{prompt: [token rows]}` of the trained prompts.
            prompt_rows: `{prompt: token row}` of every sampled prompt.
        """
        probe = set(self.prompts)
        indices = [index for index, (prompt, _, _) in enumerate(samples) if prompt in probe]
        judged = [(samples[index], verdicts[index]) for index in indices]
        exact = self.exact_checker.check([sentence for (_, sentence, _), _ in judged])
        verdicts = list(verdicts)
        for index, truth in zip(indices, exact):
            verdicts[index] = truth
        labels = {}
        for ((prompt, _, ids), _), truth in zip(judged, exact):
            labels.setdefault(prompt, []).append((truth.label, prompt_rows[prompt] + ids + [self.tokenizer.eos_id]))
        for prompt, judged_samples in labels.items():
            supported = [row for label, row in judged_samples if label == SUPPORTED]
            if supported and 2 * len(supported) >= len(judged_samples):
                self._targets[prompt] = supported[0]
            elif any(label == REFUTED for label, _ in judged_samples):
                self._targets[prompt] = self._abstentions[prompt]
        rows = dict(reference_rows)
        rows.update({prompt: [self._targets[prompt]] if prompt in self._targets else []
                     for prompt in self.prompts})
        pairs = [(verdict.label, truth.label) for (_, verdict), truth in zip(judged, exact)]
        counts = {
            "probe_supported": sum(label == SUPPORTED for label, _ in pairs),
            "probe_refuted": sum(label == REFUTED for label, _ in pairs),
            "probe_false_alarms": sum(label == REFUTED and truth == SUPPORTED for label, truth in pairs),
            "probe_misses": sum(label == SUPPORTED and truth == REFUTED for label, truth in pairs),
            "probe_abstention_targets": sum(row == self._abstentions[p] for p, row in self._targets.items()),
            "probe_positive_targets": sum(row != self._abstentions[p] for p, row in self._targets.items()),
        }
        return rows, verdicts, counts
