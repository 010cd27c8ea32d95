"""`Verbalizer`: facts to training sentences and evaluation prompts."""

import dataclasses

import numpy as np

from kfine.errors import KfineError
from kfine.knowledge.templates import Templates

WHICH_TEMPLATES = ("training", "paraphrase", "all", "novel")


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One question about `(subject, relation)`, asked with one template.

    Attributes:
        subject: str.
        relation: str.
        template: str. The template the question was made from.
        text: str. What the model completes, e.g. `"The capital of France is"`.
        suffix: str. The template's text after `{object}`, which the
            evaluator strips from the completion to get the answer.
    """

    subject: str
    relation: str
    template: str
    text: str
    suffix: str


@dataclasses.dataclass(frozen=True)
class Statement:
    """One fact written out with one template.

    Attributes:
        subject: str.
        relation: str.
        object: str.
        template: str.
        prompt: str. The sentence up to its object, e.g. `"The capital of France is"`.
        sentence: str. The whole sentence, e.g. `"The capital of France is Paris."`.
    """

    subject: str
    relation: str
    object: str
    template: str
    prompt: str
    sentence: str


class Verbalizer:
    """Turns facts into sentences and prompts with a relation's templates.

    Which templates are used is chosen by `which`:

    - `"training"`: the templates methods may train on (the paraphrase
      template of a relation with 3+ templates is left out);
    - `"paraphrase"`: only the reserved paraphrase templates (relations
      without one contribute nothing);
    - `"all"`: every template (what pretraining reads);
    - `"novel"`: only the `_novel_wordings` (read by nothing but the
      evaluator; relations without one contribute nothing).

    Args:
        templates: `Templates`.

    Example:

    >>> verbalizer = Verbalizer(Templates({"capital": ["The capital of {subject} is {object}."]}))
    >>> verbalizer.sentences([("France", "capital", "Paris")])
    ['The capital of France is Paris.']
    >>> verbalizer.prompts([("France", "capital", "Paris")])[0].text
    'The capital of France is'
    >>> verbalizer.statements([("France", "capital", "Paris")])[0].prompt
    'The capital of France is'
    """

    def __init__(self, templates):
        self.templates = templates

    def sentences(self, triples, which="training", rng=None):
        """Returns one sentence per (triple, template).

        Args:
            triples: iterable of `(subject, relation, object)`.
            which: str. One of `WHICH_TEMPLATES`.
            rng: None, int or `np.random.Generator`. When given, the
                sentences are shuffled with it; otherwise they follow the
                triples' order, templates in order within a triple.

        Returns:
            A list of str.
        """
        sentences = [statement.sentence for statement in self.statements(triples, which)]
        if rng is not None:
            order = np.random.default_rng(rng).permutation(len(sentences))
            sentences = [sentences[index] for index in order]
        return sentences

    def statements(self, triples, which="training"):
        """Returns one `Statement` per (triple, template), in the triples' order.

        Args:
            triples: iterable of `(subject, relation, object)`.
            which: str. `"training"`, `"paraphrase"` or `"all"`.

        Returns:
            A list of `Statement`, templates in order within a triple.
        """
        return [
            Statement(subject, relation, obj, template, Templates.prompt(template, subject),
                      Templates.fill(template, subject, obj))
            for subject, relation, obj in triples
            for template in self._chosen_templates(relation, which)
        ]

    def prompts(self, triples, which="training"):
        """Returns one `Prompt` per (subject, relation, template), in first-seen order.

        The facts of a multi-valued relation (a country's neighbours) share
        one question, so they give one prompt; its gold answers are
        `knowledge_graph.objects(subject, relation)`.

        Args:
            triples: iterable of `(subject, relation, object)`.
            which: str. One of `WHICH_TEMPLATES`.

        Returns:
            A list of `Prompt`.
        """
        prompts = {}
        for subject, relation, _ in triples:
            for template in self._chosen_templates(relation, which):
                if (subject, relation, template) not in prompts:
                    prompts[subject, relation, template] = Prompt(
                        subject, relation, template, Templates.prompt(template, subject), Templates.suffix(template)
                    )
        return list(prompts.values())

    def _chosen_templates(self, relation, which):
        if which == "training":
            return self.templates.training_templates(relation)
        if which == "paraphrase":
            paraphrase = self.templates.paraphrase_template(relation)
            return [paraphrase] if paraphrase is not None else []
        if which == "all":
            return self.templates.templates(relation)
        if which == "novel":
            return self.templates.novel_wordings(relation)
        raise KfineError(f"expected `which` among {WHICH_TEMPLATES}. Received: which={which!r}")
