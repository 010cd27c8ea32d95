import json

import pytest

from kfine.errors import TemplateError
from kfine.knowledge import KnowledgeGraph, Templates

MAPPING = {
    "capital": [
        "The capital of {subject} is {object}.",
        "{subject} has its capital in {object}.",
        "The government of {subject} sits in {object}, its capital city.",
    ],
    "continent": ["{subject} is a country in {object}.", "{subject} lies in {object}, on the map."],
}
KG = KnowledgeGraph([("France", "capital", "Paris"), ("France", "continent", "Europe")])




def test_queries():
    templates = Templates(MAPPING)
    assert templates.relations == ["capital", "continent"]
    assert templates.templates("capital") == MAPPING["capital"]
    assert templates.training_templates("capital") == MAPPING["capital"][:2]
    assert templates.paraphrase_template("capital") == MAPPING["capital"][2]
    # Fewer than 3 templates: nothing is reserved.
    assert templates.training_templates("continent") == MAPPING["continent"]
    assert templates.paraphrase_template("continent") is None
    with pytest.raises(TemplateError, match="no templates for relation 'currency'"):
        templates.templates("currency")


def test_fill_prompt_and_suffix():
    template = "{subject} lies in {object}, on the map."
    assert Templates.fill(template, "Chad", "Africa") == "Chad lies in Africa, on the map."
    assert Templates.prompt(template, "Chad") == "Chad lies in"
    assert Templates.suffix(template) == ", on the map."
    assert Templates.suffix("The capital of {subject} is {object}") == ""


def test_fill_is_positional_not_format():
    template = "{subject} {uses} braces for {object}."
    assert Templates.fill(template, "{object}", "x") == "{object} {uses} braces for x."
    assert Templates.prompt(template, "{object}") == "{object} {uses} braces for"


def test_helpers_reject_invalid_templates():
    with pytest.raises(TemplateError, match="must contain {object} exactly once"):
        Templates.prompt("The capital of {subject}.", "France")


@pytest.mark.parametrize(
    "mapping, expected",
    [
        (["capital"], "expected a JSON object mapping relations to lists of templates, found list"),
        ({"capital": "The capital of {subject} is {object}."}, "relation 'capital': expected a non-empty list"),
        ({"capital": []}, "relation 'capital': expected a non-empty list of templates, found list"),
        ({"": ["{subject} is {object}."]}, "relation name '' is empty"),
        ({"capital": ["{subject} is {object}.", 3]}, "templates['capital'][1] must be a string, found int"),
        ({"capital": ["Of {subject}."]}, "templates['capital'][0] 'Of {subject}.' must contain {object}"),
        ({"capital": ["Capital: {object}."]}, "templates['capital'][0] 'Capital: {object}.' must contain {subject}"),
        ({"capital": ["{subject}: {object}, {object}."]}, "must contain {object} exactly once (found 2)"),
        ({"capital": ["{object}, capital of {subject}."]}, "must put {subject} before {object}"),
        ({"capital": ["{subject}: {object}."] * 2}, "templates['capital'][1] repeats templates['capital'][0]"),
    ],
)
def test_invalid_mappings_raise(mapping, expected):
    with pytest.raises(TemplateError) as info:
        Templates(mapping, source="mine.json")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("mine.json: ")
    assert expected in message


def test_validate_against_a_knowledge_graph():
    Templates(MAPPING).validate(KG)
    with pytest.raises(TemplateError, match="templates for relations the knowledge graph lacks: 'capital'"):
        Templates({"continent": MAPPING["continent"], "capital": MAPPING["capital"]}).validate(
            KnowledgeGraph([("France", "continent", "Europe")])
        )
    with pytest.raises(TemplateError, match="no templates for the knowledge graph's relations 'continent'"):
        Templates({"capital": MAPPING["capital"]}).validate(KG)


def test_save_and_from_file_round_trip(tmp_path):
    path = str(tmp_path / "templates.json")
    Templates(MAPPING).save(path)
    loaded = Templates.from_file(path)
    assert loaded == Templates(MAPPING)
    assert loaded.to_dict() == MAPPING
    assert loaded.source == path


FILE_ERRORS = [
    # (case, content, line, words the message must contain)
    ("invalid json", '{\n  "capital": [\n    "{subject} is {object}."\n  ,\n}\n', 5, "invalid JSON"),
    ("truncated json", '{"capital": [', 1, "invalid JSON"),
    ("undecodable", b'{\n"capital": ["\xff {subject} {object}"]}\n', 2, "UTF-8"),
    ("repeated relation", '{"capital": ["{subject} {object}."], "capital": []}', None, "appears more than once"),
    ("not a mapping", '["{subject} {object}."]', None, "expected a JSON object"),
    ("bad template", '{"capital": ["{subject} only."]}', None, "templates['capital'][0]"),
]


@pytest.mark.parametrize(
    "content, line, expected", [row[1:] for row in FILE_ERRORS], ids=[row[0] for row in FILE_ERRORS]
)
def test_from_file_errors_name_file_and_line(content, line, expected, write_file):
    path = write_file("templates.json", content)
    with pytest.raises(TemplateError) as info:
        Templates.from_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: ")
    assert expected in message


def test_from_file_rejects_a_missing_file(tmp_path):
    path = str(tmp_path / "absent.json")
    with pytest.raises(TemplateError, match="file not found") as info:
        Templates.from_file(path)
    assert str(info.value).startswith(path)


def test_repr():
    assert repr(Templates(MAPPING, source="t.json")) == "<Templates source='t.json' relations=2 templates=5>"
    assert json.loads(json.dumps(Templates(MAPPING).to_dict())) == MAPPING
