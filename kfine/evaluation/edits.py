"""The `edit` split: does a model follow counterfactual edits of its KG, with no gradient step?

CounterFact-style (Meng et al., ROME, 2022). After fine-tuning, N facts of
the model's KG get a counterfactual object of the same relation
(`kfine.knowledge.edits`); a generator with `update_knowledge(kg)` receives
the edited KG, any other is asked as it is. On up to `limit` of the edited
facts:

- `efficacy`: the answer is the new object (a training template);
- `paraphrase_efficacy`: the same, asked in the reserved paraphrase
  template (relations that have one);
- `neighbourhood`: for each edit, another subject with the same relation
  and the old object, unedited: its answer after the edits is the answer
  it gave before them;
- `old_fact_rate`: the answer is still the old object (what a model that
  cannot follow edits does).

The generator's KG is restored after each N.
"""

import zlib

import numpy as np

from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import CORRECT
from kfine.knowledge.edits import apply_edits, counterfactual_edits
from kfine.knowledge.templates import Templates
from kfine.knowledge.verbalizer import Prompt

EDIT_METRICS = ("efficacy", "paraphrase_efficacy", "neighbourhood", "old_fact_rate")
EDIT_SPLIT_PREFIX = "edit-"


def edit_split(count):
    """The split name of `count` edits, e.g. `"edit-1000"`."""
    return f"{EDIT_SPLIT_PREFIX}{count}"


def evaluate_edits(generator, task, counts, limit=None):
    """Returns `{split: {"scores": {metric: [0/1 per prompt]}, "judgements": {metric: [Judgement]}}}`.

    Args:
        generator: a `Generator`; edited through `update_knowledge` if it has one.
        task: `FactTask`. Its `model_graph` is edited; the seed is its split seed.
        counts: iterable of int. Numbers of edits, e.g. `(1, 100, 1000)`.
        limit: int or None. Most edits asked about per count (the first ones).
    """
    counts = sorted(set(counts))
    all_edits = counterfactual_edits(task.model_graph, counts[-1], seed=task.split_seed) if counts else []
    results = {}
    for count in counts:
        edits = all_edits[:count]
        asked = edits[:limit] if limit is not None else edits
        efficacy = [(_prompt(task, edit.subject, edit.relation, "training"), {edit.new}) for edit in asked]
        paraphrase = [(_prompt(task, edit.subject, edit.relation, "paraphrase"), {edit.new}) for edit in asked
                      if task.templates.paraphrase_template(edit.relation) is not None]
        neighbours = _neighbourhood_prompts(task, edits, asked)
        before = judge_prompts(generator, task.knowledge_graph, neighbours)
        follows = hasattr(generator, "update_knowledge")
        if follows:
            generator.update_knowledge(apply_edits(task.model_graph, edits))
        try:
            judged = {name: judge_prompts(generator, task.knowledge_graph, prompts)
                      for name, prompts in (("efficacy", efficacy), ("paraphrase_efficacy", paraphrase),
                                            ("neighbourhood", neighbours))}
        finally:
            if follows:
                generator.update_knowledge(task.model_graph)
        scores = {
            "efficacy": [float(j.verdict == CORRECT) for j in judged["efficacy"]],
            "paraphrase_efficacy": [float(j.verdict == CORRECT) for j in judged["paraphrase_efficacy"]],
            "neighbourhood": [float(after.entity == earlier.entity)
                              for after, earlier in zip(judged["neighbourhood"], before)],
            "old_fact_rate": [float(j.entity == edit.old) for j, edit in zip(judged["efficacy"], asked)],
        }
        judged["old_fact_rate"] = judged["efficacy"]
        results[edit_split(count)] = {"scores": scores, "judgements": judged,
                                      "prompts": {"efficacy": efficacy, "paraphrase_efficacy": paraphrase,
                                                  "neighbourhood": neighbours, "old_fact_rate": efficacy}}
    return results


def edit_rates(scores):
    """`{metric: mean}` of `evaluate_edits` scores (NaN where a metric has no prompt)."""
    return {metric: float(np.mean(values)) if values else float("nan") for metric, values in scores.items()}


def _prompt(task, subject, relation, which):
    """One prompt for `(subject, relation)` in a `which` template, chosen as `FactTask` chooses."""
    if which == "paraphrase":
        template = task.templates.paraphrase_template(relation)
    else:
        templates = task.templates.training_templates(relation)
        template = templates[zlib.crc32(f"{task.split_seed}\t{subject}\t{relation}".encode()) % len(templates)]
    return Prompt(subject, relation, template, Templates.prompt(template, subject), Templates.suffix(template))


def _neighbourhood_prompts(task, edits, asked):
    """For each asked edit, an unedited subject with the same relation and old object, if any."""
    graph = task.model_graph
    edited = {(edit.subject, edit.relation) for edit in edits}
    prompts = []
    for edit in asked:
        others = sorted(subject for subject in graph.subjects(edit.relation)
                        if edit.old in graph.objects(subject, edit.relation) and (subject, edit.relation) not in edited)
        if others:
            subject = others[zlib.crc32(f"{task.split_seed}\t{edit.subject}".encode()) % len(others)]
            prompts.append((_prompt(task, subject, edit.relation, "training"),
                            graph.objects(subject, edit.relation)))
    return prompts
