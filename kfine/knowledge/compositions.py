"""Two-hop questions: `subject --inner--> x --outer--> object`, e.g. the capital of a city's country.

The `multihop` evaluation split asks them, so that no single fact answers
the question; `CompositionParser` lets a generator that reads a KG split such
a question back into its two hops.
"""

import re

from kfine.knowledge.templates import COMPOSITION_SEPARATOR, SUBJECT, Templates
from kfine.knowledge.verbalizer import Prompt


def composition_templates(templates, knowledge_graph):
    """Returns `{(inner, outer): [template, ...]}`: the two-hop wordings of a KG.

    From the templates' optional `_compositions` key when it has one;
    otherwise composed from the relation templates for every relation pair
    the KG has a path along: the outer relation's first template, with
    `"the {inner} of {subject}"` (underscores read as spaces) in the
    subject's place, e.g. `"The capital of the country of {subject} is
    {object}."`.

    Args:
        templates: `Templates`.
        knowledge_graph: `KnowledgeGraph`.
    """
    declared = templates.compositions
    if declared:
        return declared
    composed = {}
    for inner, outer in sorted(_relation_paths(knowledge_graph)):
        phrase = f"the {inner.replace('_', ' ')} of {SUBJECT}"
        composed[inner, outer] = [templates.templates(outer)[0].replace(SUBJECT, phrase, 1)]
    return composed


def _relation_paths(knowledge_graph):
    """`{(inner, outer)}`: relation pairs some subject reaches an object along, the subject itself excluded."""
    paths = set()
    for subject, inner, middle in knowledge_graph.triples:
        for outer, obj in knowledge_graph.neighbors(middle):
            if knowledge_graph.has_relation(outer) and obj != subject:
                paths.add((inner, outer))
    return paths


def two_hop_questions(knowledge_graph, subjects, compositions):
    """Returns `[(Prompt, gold_objects)]`, one per (subject, composition template) with an answer.

    The gold objects are every `outer` object of every `inner` object of the
    subject. A question is left out when a single fact of the subject
    answers it (a gold object is the subject or one of its direct
    neighbours), so only the two hops lead to the answer.

    Args:
        knowledge_graph: `KnowledgeGraph` the paths are read from.
        subjects: iterable of str.
        compositions: `{(inner, outer): [template, ...]}` (see `composition_templates`).
    """
    questions = []
    for subject in subjects:
        direct = {subject} | {entity for _, entity in knowledge_graph.neighbors(subject)}
        for (inner, outer), templates in compositions.items():
            gold = set()
            for middle in knowledge_graph.objects(subject, inner):
                gold |= knowledge_graph.objects(middle, outer)
            if not gold or gold & direct:
                continue
            relation = f"{inner}{COMPOSITION_SEPARATOR}{outer}"
            for template in templates:
                prompt = Prompt(subject, relation, template, Templates.prompt(template, subject),
                                Templates.suffix(template))
                questions.append((prompt, gold))
    return questions


class CompositionParser:
    """Recognizes a two-hop question asked in a composition wording.

    Args:
        compositions: `{(inner, outer): [template, ...]}`.

    Example:

    >>> parser = CompositionParser(
    ...     {("country", "capital"): ["The capital of the country {subject} lies in is {object}."]}
    ... )
    >>> parser.parse("The capital of the country Lyon lies in is")
    ('country', 'capital', 'Lyon', '.')
    >>> parser.parse("The capital of France is") is None
    True
    """

    def __init__(self, compositions):
        self._patterns = []
        for (inner, outer), templates in compositions.items():
            for template in templates:
                before, after = Templates.prompt(template, SUBJECT).split(SUBJECT)
                pattern = re.compile(re.escape(before) + "(.+)" + re.escape(after) + r"\Z", re.DOTALL)
                self._patterns.append((pattern, inner, outer, Templates.suffix(template)))

    def parse(self, prompt):
        """Returns `(inner, outer, subject_text, suffix)` for a composition prompt, else None."""
        for pattern, inner, outer, suffix in self._patterns:
            match = pattern.match(prompt.rstrip())
            if match:
                return inner, outer, match.group(1).strip(), suffix
        return None
