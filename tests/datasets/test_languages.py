"""The second bundled domain: languages from CLDR (babel)."""

import collections

import pytest

from kfine.cli import main
from kfine.datasets.languages import TEMPLATES, build_languages
from kfine.knowledge import KnowledgeGraph, Templates
from kfine.knowledge.task import FactTask


@pytest.fixture(scope="module")
def languages():
    return build_languages()


def test_five_relations_three_templates_each_several_facts_a_subject(languages):
    graph, templates = languages
    assert set(graph.relations) == set(TEMPLATES) and len(TEMPLATES) >= 5
    assert all(len(templates.templates(relation)) >= 3 for relation in TEMPLATES)
    facts_per_subject = collections.Counter(subject for subject, _, _ in graph.triples)
    assert len(facts_per_subject) > 250
    assert min(facts_per_subject.values()) >= 3


def test_known_facts(languages):
    graph, _ = languages
    assert graph.objects("German", "native_name") == {"Deutsch"}
    assert graph.objects("Russian", "script") == {"Cyrillic script"}
    assert graph.objects("Arabic", "direction") == {"right-to-left"}
    assert {"Germany", "Austria", "Switzerland"} <= graph.objects("German", "official_in")


def test_every_name_denotes_one_thing(languages):
    graph, _ = languages
    languages_ = {subject for subject, _, _ in graph.triples}
    objects = {obj for _, _, obj in graph.triples}
    # A language is never also a territory, script or native name of another language.
    assert not languages_ & {obj for _, relation, obj in graph.triples if relation != "native_name"}
    assert objects  # the KG is not empty


def test_splits_leave_every_evaluation_split_prompts(languages):
    graph, templates = languages
    task = FactTask(graph, templates)
    for split in ("seen", "heldout", "unknown", "paraphrase"):
        assert task.evaluation_prompts(split), split


def test_kfine_data_languages_writes_the_generic_format(tmp_path, capsys):
    out = tmp_path / "languages"
    assert main(["data", "languages", "--out", str(out)]) == 0
    assert "triples.tsv" in capsys.readouterr().out
    graph = KnowledgeGraph.from_files(str(out / "triples.tsv"))
    Templates.from_file(str(out / "templates.json")).validate(graph)
    assert graph == build_languages()[0]
