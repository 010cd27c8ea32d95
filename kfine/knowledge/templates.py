"""`Templates`: the sentences that turn a relation's facts into text."""

import json

from kfine.errors import TemplateError, located
from kfine.io import write_json
from kfine.knowledge.formats import name_problem

SUBJECT = "{subject}"
OBJECT = "{object}"
# Relations with this many templates keep the last one for paraphrase evaluation.
MIN_TEMPLATES_FOR_PARAPHRASE = 3
# Optional keys beside the relations (a relation name never starts with "_" here).
COMPOSITIONS = "_compositions"
NOVEL_WORDINGS = "_novel_wordings"
# "inner.outer" in COMPOSITIONS: subject --inner--> x --outer--> object.
COMPOSITION_SEPARATOR = "."


class Templates:
    """Sentence templates for each relation of a knowledge graph.

    A template is a sentence with one `{subject}` and, after it, one
    `{object}`, e.g. `"The capital of {subject} is {object}."`. The text
    before `{object}` (with the subject filled in) is the prompt a model
    completes; the text after it, the suffix, may be empty.

    For relations with 3 or more templates the last one is reserved: no
    method trains on it (`training_templates`), and the evaluator asks
    held-out facts with it (`paraphrase_template`) to measure robustness to
    a user's own phrasing. Order therefore matters, and templates of a
    relation must differ from each other.

    Other braces are ordinary text: templates are filled by position, not
    with `str.format`.

    Two optional keys hold templates that are not a relation's:

    - `"_novel_wordings"`: `{relation: [template, ...]}`, wordings kept for
      the `novel-wording` evaluation split only. Pretraining reads every
      relation template, the paraphrase too; these it never reads, nor does
      any method.
    - `"_compositions"`: `{"inner.outer": [template, ...]}`, two-hop
      questions for the `multihop` split: `{subject}` is linked to an entity
      `x` by the relation `inner`, and `{object}` is an `outer` object of
      `x`, e.g. `{"country.capital": ["The capital of the country
      {subject} lies in is {object}."]}`.

    Args:
        mapping: dict. Maps each relation name to a non-empty list of templates.
        source: str. Where the mapping came from, for error messages.

    Raises:
        TemplateError: the mapping or a template is malformed.

    Example:

    >>> templates = Templates({"capital": [
    ...     "The capital of {subject} is {object}.",
    ...     "{subject} has its capital in {object}.",
    ...     "The government of {subject} sits in {object}, its capital city.",
    ... ]})
    >>> templates.training_templates("capital")[1]
    '{subject} has its capital in {object}.'
    >>> Templates.prompt(templates.paraphrase_template("capital"), "France")
    'The government of France sits in'
    """

    def __init__(self, mapping, source="<templates>"):
        self.source = source
        if not isinstance(mapping, dict):
            raise self._error(f"expected a JSON object mapping relations to lists of templates, found {_kind(mapping)}")
        mapping = dict(mapping)
        self._novel_wordings = self._template_lists(mapping.pop(NOVEL_WORDINGS, {}), NOVEL_WORDINGS)
        self._compositions = self._template_lists(mapping.pop(COMPOSITIONS, {}), COMPOSITIONS)
        for key in self._compositions:
            relations = key.split(COMPOSITION_SEPARATOR)
            if len(relations) != 2 or not all(relations):
                raise self._error(f"{COMPOSITIONS} key {key!r} must be \"inner{COMPOSITION_SEPARATOR}outer\", two "
                                  f"relation names joined by {COMPOSITION_SEPARATOR!r}")
        self._templates = self._template_lists(mapping, None)

    def _template_lists(self, mapping, section):
        """Checks `{key: [template, ...]}` (`section`: the optional key it sits under, or None)."""
        where = "" if section is None else f"{section}: "
        if not isinstance(mapping, dict):
            raise self._error(f"{where}expected a JSON object mapping relations to lists of templates, "
                              f"found {_kind(mapping)}")
        checked = {}
        for relation, templates in mapping.items():
            problem = name_problem(relation)
            if problem:
                raise self._error(f"{where}relation name {relation!r} {problem}")
            if not isinstance(templates, (list, tuple)) or not templates:
                message = f"relation {relation!r}: expected a non-empty list of templates, found {_kind(templates)}"
                raise self._error(where + message)
            for index, template in enumerate(templates):
                problem = _template_problem(template)
                if problem is None and template in templates[:index]:
                    problem = f"repeats templates[{relation!r}][{templates.index(template)}]"
                if problem:
                    raise self._error(f"{where}templates[{relation!r}][{index}] {problem}")
            checked[relation] = list(templates)
        return checked

    @classmethod
    def from_file(cls, path):
        """Reads templates from a JSON file `{relation: [template, ...]}`.

        Args:
            path: str.

        Returns:
            A `Templates`.

        Raises:
            TemplateError: the file is missing, not UTF-8 JSON (the message
                gives the line), repeats a relation, or is malformed.
        """
        try:
            with open(path, "rb") as stream:
                raw = stream.read()
        except FileNotFoundError:
            raise TemplateError(located(path, None, "file not found")) from None
        except OSError as error:
            raise TemplateError(located(path, None, f"cannot be read ({error.strerror})")) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise TemplateError(located(path, line, "is not valid UTF-8; save the file as UTF-8")) from None
        try:
            mapping = json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(path, pairs))
        except json.JSONDecodeError as error:
            message = f"invalid JSON ({error.msg}, column {error.colno})"
            raise TemplateError(located(path, error.lineno, message)) from None
        except RecursionError:
            raise TemplateError(located(path, None, "invalid JSON (nested too deeply)")) from None
        return cls(mapping, source=path)

    def _error(self, message):
        return TemplateError(located(self.source, None, message))

    # === Queries ===

    @property
    def relations(self):
        """list of str: the relations that have templates, sorted."""
        return sorted(self._templates)

    def templates(self, relation):
        """Returns every template of `relation`, in order."""
        if relation not in self._templates:
            raise self._error(f"no templates for relation {relation!r}")
        return list(self._templates[relation])

    def training_templates(self, relation):
        """Returns the templates methods may train on: all but a reserved paraphrase."""
        templates = self.templates(relation)
        return templates[:-1] if len(templates) >= MIN_TEMPLATES_FOR_PARAPHRASE else templates

    def paraphrase_template(self, relation):
        """Returns the reserved paraphrase template of `relation`, or None if it has fewer than 3."""
        templates = self.templates(relation)
        return templates[-1] if len(templates) >= MIN_TEMPLATES_FOR_PARAPHRASE else None

    def novel_wordings(self, relation):
        """Returns the `_novel_wordings` of `relation` (no method and no pretraining reads them); may be empty."""
        return list(self._novel_wordings.get(relation, ()))

    @property
    def compositions(self):
        """dict: `{(inner, outer): [template, ...]}` from `_compositions`, in file order."""
        return {tuple(key.split(COMPOSITION_SEPARATOR)): list(templates)
                for key, templates in self._compositions.items()}

    def validate(self, knowledge_graph):
        """Checks that the templates cover exactly the relations of `knowledge_graph`.

        Raises:
            TemplateError: naming the relations that have templates but no
                facts, or facts but no templates, or a `_novel_wordings` /
                `_compositions` relation the graph lacks.
        """
        unknown = [relation for relation in self._templates if not knowledge_graph.has_relation(relation)]
        if unknown:
            raise self._error(f"templates for relations the knowledge graph lacks: {_names(unknown)}")
        optional = [(NOVEL_WORDINGS, relation) for relation in self._novel_wordings] + [
            (COMPOSITIONS, relation) for key in self._compositions for relation in key.split(COMPOSITION_SEPARATOR)]
        for section, relation in optional:
            if not knowledge_graph.has_relation(relation):
                raise self._error(f"{section}: relation {relation!r} is not in the knowledge graph")
        missing = [relation for relation in knowledge_graph.relations if relation not in self._templates]
        if missing:
            raise self._error(f"no templates for the knowledge graph's relations {_names(missing)}")

    # === Filling a template ===

    @staticmethod
    def fill(template, subject, object):  # noqa: A002 (the template's own word)
        """Returns the sentence `template` states with `subject` and `object`.

        Example:

        >>> Templates.fill("{subject} lies in {object}, on the map.", "Chad", "Africa")
        'Chad lies in Africa, on the map.'
        """
        before, after = _halves(template)
        return before.replace(SUBJECT, subject) + object + after

    @staticmethod
    def prompt(template, subject):
        """Returns the text a model completes: before `{object}`, trailing whitespace stripped.

        Example:

        >>> Templates.prompt("The capital of {subject} is {object}.", "France")
        'The capital of France is'
        """
        before, _ = _halves(template)
        return before.replace(SUBJECT, subject).rstrip()

    @staticmethod
    def suffix(template):
        """Returns the text after `{object}`, e.g. `", on the map."`; may be empty."""
        return _halves(template)[1]

    # === Saving ===

    def to_dict(self):
        """Returns `{relation: [template, ...]}` (with the optional keys it has), as `Templates(...)` takes it."""
        mapping = {relation: list(templates) for relation, templates in self._templates.items()}
        for key, section in ((NOVEL_WORDINGS, self._novel_wordings), (COMPOSITIONS, self._compositions)):
            if section:
                mapping[key] = {name: list(templates) for name, templates in section.items()}
        return mapping

    def save(self, path):
        """Writes the templates as JSON to `path`, atomically."""
        write_json(path, self.to_dict())

    def __eq__(self, other):
        if not isinstance(other, Templates):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        count = sum(len(templates) for templates in self._templates.values())
        return f"<Templates source={self.source!r} relations={len(self._templates)} templates={count}>"


def _template_problem(template):
    if not isinstance(template, str):
        return f"must be a string, found {_kind(template)}"
    for marker in (SUBJECT, OBJECT):
        if template.count(marker) != 1:
            return f"{template!r} must contain {marker} exactly once (found {template.count(marker)})"
    if template.index(SUBJECT) > template.index(OBJECT):
        return f"{template!r} must put {SUBJECT} before {OBJECT}"
    return None


def _halves(template):
    problem = _template_problem(template)
    if problem:
        raise TemplateError(f"template {problem}")
    before, after = template.split(OBJECT)
    return before, after


def _unique_keys(path, pairs):
    """Rejects repeated keys, which `json` would silently resolve to the last."""
    mapping = {}
    for key, value in pairs:
        if key in mapping:
            raise TemplateError(located(path, None, f"relation {key!r} appears more than once"))
        mapping[key] = value
    return mapping


def _names(relations):
    return ", ".join(repr(relation) for relation in relations)


def _kind(value):
    return type(value).__name__
