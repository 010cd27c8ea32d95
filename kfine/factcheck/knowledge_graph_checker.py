"""`KnowledgeGraphChecker`: the exact fact-check reference, a KG lookup."""

from kfine.evaluation.metrics import CORRECT, AnswerJudge
from kfine.factcheck.verdict import NOT_IN_KG, REFUTED, SUPPORTED, Verdict
from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.names import DEFAULT_ABSTENTION, ends_at_word_boundary, normalize_name
from kfine.knowledge.templates import OBJECT, SUBJECT


class KnowledgeGraphChecker:
    """Checks sentences against a knowledge graph: link, match a template, look up.

    A sentence states a claim `(subject, relation, object)` when some entity
    mention in it is the `{subject}` of one of the relation's templates: the
    text before the mention and the text between it and `{object}` match
    the template (compared like names: case-, whitespace- and
    punctuation-spacing-insensitive). The rest of the sentence is mapped to
    the claimed object exactly as the hallucination metric maps a
    completion (`AnswerJudge`: the template's ending stripped, or the
    longest KG name it starts with). Then:

    - **supported**: the object is an entity among `objects(subject, relation)`;
    - **refuted**: the KG has objects for `(subject, relation)` and the
      claimed object is none of them (another entity, or no entity at all);
    - **not in the KG**: no template matches, the KG has no fact for
      `(subject, relation)`, or the sentence abstains.

    When several readings match, one that is supported wins, then one that
    is refuted. The checker is exact for the KG it is given; facts missing
    from that KG are "not in the KG", never refuted.

    Args:
        knowledge_graph: `KnowledgeGraph`. What is true.
        templates: `Templates`. How relations are stated (all templates,
            paraphrases included, are recognized).
        abstention: str. The abstention phrase.

    Example:

    >>> checker = KnowledgeGraphChecker(kg, templates)  # doctest: +SKIP
    >>> checker.check(["The capital of France is Lyon."])[0].label  # doctest: +SKIP
    'refuted'
    """

    def __init__(self, knowledge_graph, templates, abstention=DEFAULT_ABSTENTION):
        templates.validate(knowledge_graph)
        self.knowledge_graph = knowledge_graph
        self.templates = templates
        self.linker = EntityLinker(knowledge_graph, case_sensitive=False)
        self.judge = AnswerJudge(knowledge_graph, abstention)
        # (relation, text before {subject}, text between {subject} and {object}, suffix), normalized.
        self._patterns = []
        for relation in templates.relations:
            for template in templates.templates(relation):
                before, rest = template.split(SUBJECT)
                between, suffix = rest.split(OBJECT)
                self._patterns.append((relation, normalize_name(before), normalize_name(between), suffix))

    def check_one(self, sentence):
        """Returns the `Verdict` on one sentence."""
        readings = []
        for mention in self.linker.link(sentence):
            before = normalize_name(sentence[: mention.start])
            rest = normalize_name(sentence[mention.end :])
            for relation, pattern_before, between, suffix in self._patterns:
                if before != pattern_before or not rest.startswith(between):
                    continue
                if between and not ends_at_word_boundary(rest, len(between)):
                    continue
                readings.append(self._reading(sentence, mention.entity, relation, rest[len(between) :], suffix))
        for label in (SUPPORTED, REFUTED):
            for reading in readings:
                if reading.label == label:
                    return reading
        return readings[0] if readings else Verdict(sentence, NOT_IN_KG, None)

    def check(self, sentences):
        """Returns one `Verdict` per sentence."""
        return [self.check_one(sentence) for sentence in sentences]

    def _reading(self, sentence, subject, relation, completion, suffix):
        gold = self.knowledge_graph.objects(subject, relation)
        judgement = self.judge.judge(sentence, completion, suffix, gold)
        if judgement.verdict == CORRECT:
            label, probability = SUPPORTED, 1.0
        elif gold and judgement.answer != self.judge.abstention:
            label, probability = REFUTED, 0.0
        else:
            label, probability = NOT_IN_KG, None
        return Verdict(sentence, label, probability, subject, relation, judgement.answer, judgement.entity)
