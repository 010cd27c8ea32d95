"""The hallucination metrics: one definition, used by every method and the bench.

For a prompt (subject, relation) with gold objects O, the greedy completion up
to the end of the sentence is mapped to a KG entity by alias match:

- the answer is the completion with the template's text after `{object}`
  removed, if that is a KG name or alias; or else the longest KG name or alias
  the completion starts with (ending at a word boundary), so text the model
  adds after the answer ("Paris. It is ...") does not hide it; a name cut
  inside a word or a compound ("Africa/Lag", "Guinea-Biss") is no entity
  (invalid), not the shorter name it starts with;
- a completion that names a second entity in the same sentence ("Paris or
  Lyon") is judged by the first; `Judgement.other_entity` records the second
  and the bench counts such completions (`multiple_entities`);
- names compare case- and whitespace-normalized (`normalize_name`);
- **correct**: the answer's entity is in O; **abstained**: the answer is the
  abstention phrase; **hallucinated**: anything else. An answer that is no KG
  entity at all also counts towards the invalid-entity rate.
"""

import dataclasses
import math

import numpy as np

from kfine.knowledge.names import DEFAULT_ABSTENTION, ends_at_word_boundary, normalize_name

METRICS = ("accuracy", "hallucination_rate", "abstention_rate", "invalid_entity_rate")
CORRECT, ABSTAINED, HALLUCINATED = "correct", "abstained", "hallucinated"
_SENTENCE_END = ".!?"


@dataclasses.dataclass(frozen=True)
class Judgement:
    """The verdict on one completion."""

    prompt: str
    completion: str
    answer: str
    entity: str | None
    verdict: str
    other_entity: str | None = None
    # The generator's P(answer is correct), when it gives one.
    confidence: float | None = None

    @property
    def invalid_entity(self):
        return self.verdict == HALLUCINATED and self.entity is None


class AnswerJudge:
    """Maps completions to KG entities and judges them against gold objects.

    Args:
        knowledge_graph: `KnowledgeGraph`. The evaluator's full KG (including
            facts hidden from the model), whose names and aliases define
            which strings are entities.
        abstention: str. The phrase that means "the KG has no answer".
    """

    def __init__(self, knowledge_graph, abstention=DEFAULT_ABSTENTION):
        self.abstention = normalize_name(abstention)
        self._entity_by_name = {}
        for entity in knowledge_graph.entities:
            for name in knowledge_graph.names(entity):
                self._entity_by_name.setdefault(normalize_name(name), entity)
        self._longest_name = max((len(name) for name in self._entity_by_name), default=0)

    def answer(self, completion, suffix=""):
        """Returns `(answer_text, entity_or_None)` for a completion.

        The completion minus the template's ending (or minus a final period),
        if that is a KG name or the abstention phrase; else the longest KG name
        the completion starts with, ending at a word boundary; else the whole
        completion, which is no entity.
        """
        text = normalize_name(completion)
        ending = normalize_name(suffix)
        candidates = [text[: -len(ending)].strip()] if ending and text.endswith(ending) else []
        candidates += [text, text.rstrip(_SENTENCE_END)]
        for candidate in candidates:
            if candidate in self._entity_by_name or candidate == self.abstention:
                return candidate, self._entity_by_name.get(candidate)
        length = self._longest_name_at(text, 0)
        if length:
            return text[:length], self._entity_by_name[text[:length]]
        return candidates[0], None

    def _longest_name_at(self, text, start):
        """Length of the longest KG name in `text` at `start` that ends at a word boundary; 0 if none."""
        for length in range(min(len(text) - start, self._longest_name), 0, -1):
            if text[start:start + length] in self._entity_by_name and _ends_at_boundary(text, start + length):
                return length
        return 0

    def other_entity(self, completion, answer, suffix=""):
        """The first KG entity named after `answer` in the completion's first sentence, or None.

        The template's ending (`suffix`) is not part of the answer's sentence.
        """
        text = normalize_name(completion)
        ending = normalize_name(suffix)
        if ending and text.endswith(ending):
            text = text[: -len(ending)]
        if not text.startswith(answer):
            return None
        sentence_end = min((text.find(mark, len(answer)) for mark in _SENTENCE_END
                            if text.find(mark, len(answer)) >= 0), default=len(text))
        for start in range(len(answer), sentence_end):
            if start > 0 and text[start - 1].isalnum():
                continue  # only names that start a word
            length = self._longest_name_at(text[:sentence_end], start)
            if length:
                return self._entity_by_name[text[start:start + length]]
        return None

    def judge(self, prompt, completion, suffix, gold_objects):
        """Returns the `Judgement` of `completion` for a prompt with `gold_objects`."""
        answer, entity = self.answer(completion, suffix)
        if entity is not None and entity in gold_objects:
            verdict = CORRECT
        elif entity is None and answer == self.abstention:
            verdict = ABSTAINED
        else:
            verdict = HALLUCINATED
        other = self.other_entity(completion, answer, suffix) if entity is not None else None
        return Judgement(prompt, completion, answer, entity, verdict, other)


# A name followed by one of these continues: "Africa/Lag" is a cut time zone, not "Africa".
_NAME_CONTINUATIONS = "/-_&'’"


def _ends_at_boundary(text, end):
    return ends_at_word_boundary(text, end) and (end == len(text) or text[end] not in _NAME_CONTINUATIONS)


def rates(judgements):
    """Returns the four rates of a list of `Judgement`s as a dict."""
    count = len(judgements)
    if count == 0:
        return {metric: float("nan") for metric in METRICS}
    verdicts = [judgement.verdict for judgement in judgements]
    return {
        "accuracy": verdicts.count(CORRECT) / count,
        "hallucination_rate": verdicts.count(HALLUCINATED) / count,
        "abstention_rate": verdicts.count(ABSTAINED) / count,
        "invalid_entity_rate": sum(judgement.invalid_entity for judgement in judgements) / count,
    }


def mean_and_std(values):
    """Mean and population std over seeds, ignoring NaN; (nan, nan) if none."""
    values = [value for value in values if not math.isnan(value)]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values))
