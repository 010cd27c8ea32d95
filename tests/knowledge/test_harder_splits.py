"""The multihop and novel-wording splits, the optional template keys behind them, and KG edits."""

import json

import pytest

from kfine.errors import KfineError, TemplateError
from kfine.knowledge.compositions import CompositionParser, composition_templates
from kfine.knowledge.edits import apply_edits, counterfactual_edits, triple_ids_in
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.task import FactTask
from kfine.knowledge.templates import Templates
from people_kg import CITIES, PEOPLE_TEMPLATES, people_triples

REGIONS = ["Northmark", "Southvale"]
NOVEL = {"born_in": ["The cradle of {subject} was {object}."],
         "works_for": ["Payday for {subject} comes from {object}."],
         "plays": ["Evenings with {subject} end on the {object}."], "region": ["Maps put {subject} in {object}."]}
COMPOSITION = {"born_in.region": ["The region {subject} was born in is {object}."]}


def graph_with_paths():
    """The people KG plus each city's region: person -born_in-> city -region-> region."""
    triples = people_triples() + [(city, "region", REGIONS[index % 2]) for index, city in enumerate(CITIES)]
    return KnowledgeGraph(triples)


def templates(compositions=True, novel=True):
    mapping = {**PEOPLE_TEMPLATES, "region": ["{subject} lies in {object}.", "The region of {subject} is {object}."]}
    if compositions:
        mapping["_compositions"] = COMPOSITION
    if novel:
        mapping["_novel_wordings"] = NOVEL
    return Templates(mapping)


def test_optional_keys_round_trip_and_stay_out_of_training(tmp_path):
    loaded = templates()
    path = str(tmp_path / "templates.json")
    loaded.save(path)
    assert Templates.from_file(path) == loaded
    assert json.load(open(path, encoding="utf-8"))["_compositions"] == COMPOSITION
    assert loaded.compositions == {("born_in", "region"): COMPOSITION["born_in.region"]}
    assert loaded.novel_wordings("plays") == NOVEL["plays"]
    assert "_novel_wordings" not in loaded.relations and "_compositions" not in loaded.relations
    # Pretraining reads every relation template ("all"); a novel wording is none of them.
    task = FactTask(graph_with_paths(), loaded)
    corpus = set(task.verbalizer.sentences(task.knowledge_graph.triples, which="all"))
    novel = task.verbalizer.sentences(task.knowledge_graph.triples, which="novel")
    assert novel and not corpus & set(novel)


@pytest.mark.parametrize("mapping, message", [
    ({"_compositions": {"born_in": ["{subject} {object}"]}}, "inner.outer"),
    ({"_compositions": {"born_in.nope": ["{subject} {object}"]}}, "'nope' is not in the knowledge graph"),
    ({"_novel_wordings": {"plays": ["{object} before {subject}"]}}, "must put {subject} before {object}"),
    ({"_novel_wordings": ["{subject} {object}"]}, "_novel_wordings: expected a JSON object"),
])
def test_bad_optional_keys_are_refused(mapping, message):
    with pytest.raises(TemplateError, match=message):
        Templates({**templates(compositions=False, novel=False).to_dict(), **mapping}).validate(graph_with_paths())


@pytest.mark.parametrize("declared", [True, False])
def test_multihop_asks_held_out_subjects_what_no_single_fact_answers(declared):
    task = FactTask(graph_with_paths(), templates(compositions=declared))
    prompts = task.evaluation_prompts("multihop")
    heldout = {subject for subject, _, _ in task.splits.heldout}
    graph = task.knowledge_graph
    assert prompts and "multihop" in task.evaluated_splits
    for prompt, gold in prompts:
        assert prompt.subject in heldout and prompt.relation == "born_in.region"
        city, = graph.objects(prompt.subject, "born_in")
        assert gold == graph.objects(city, "region")
        assert not gold & {entity for _, entity in graph.neighbors(prompt.subject)}
    text = prompts[0][0].text
    assert text.startswith("The region") if declared else text.startswith("the born in of ")


def test_composition_parser_finds_the_hops():
    parser = CompositionParser(composition_templates(templates(), graph_with_paths()))
    assert parser.parse("The region Alda Varenko was born in is") == ("born_in", "region", "Alda Varenko", ".")
    assert parser.parse("Alda Varenko was born in") is None


def test_novel_wording_split_and_perplexity_sentences():
    task = FactTask(graph_with_paths(), templates())
    wordings = {template for values in NOVEL.values() for template in values}
    assert all(prompt.template in wordings for prompt, _ in task.evaluation_prompts("novel-wording"))
    split, sentences = task.perplexity_sentences
    assert split == "novel-wording" and sentences
    # Sentences outside every training template, hence outside any datastore keyed by them.
    trained = set(task.verbalizer.sentences(task.knowledge_graph.triples, which="all"))
    assert not trained & set(sentences)
    # Without novel wordings there is no such split, and perplexity falls back to held-out text.
    plain = FactTask(graph_with_paths(), templates(novel=False))
    assert "novel-wording" not in plain.evaluated_splits and plain.perplexity_sentences[0] == "heldout"


def test_counterfactual_edits_nest_and_keep_the_relation():
    graph = graph_with_paths()
    edits = counterfactual_edits(graph, 20, seed=3)
    assert counterfactual_edits(graph, 5, seed=3) == edits[:5]
    for edit in edits:
        assert graph.objects(edit.subject, edit.relation) == {edit.old}
        assert edit.new != edit.old and edit.new in graph.relation_range(edit.relation)
    edited = apply_edits(graph, edits)
    assert all(edited.objects(edit.subject, edit.relation) == {edit.new} for edit in edits)
    assert edited.num_triples == graph.num_triples
    with pytest.raises(KfineError, match="edits: 10000 requested"):
        counterfactual_edits(graph, 10000)


def test_edited_graph_keeps_the_model_ids():
    graph = graph_with_paths()
    ids = triple_ids_in(graph, graph)
    assert ids.tolist() == graph.triple_ids.tolist()
    with pytest.raises(KfineError, match="entities the model has no row for"):
        triple_ids_in(graph, KnowledgeGraph([("Alda Varenko", "plays", "tuba")]))
