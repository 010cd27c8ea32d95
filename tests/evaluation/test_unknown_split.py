"""`unknown` holds only facts the model's KG does not imply; the others are `unknown-inferable`."""

import pytest

from kfine.datasets.geonames import build_geonames
from kfine.knowledge.task import QUICK, FactTask


@pytest.fixture(scope="module")
def geonames_task():
    graph, templates = build_geonames()
    return FactTask(graph, templates, size=QUICK)


def _linked(graph, subject, objects):
    return any(graph.has_entity(obj) and subject in {entity for _, entity in graph.neighbors(obj)}
               for obj in objects)


def test_unknown_holds_no_fact_the_model_graph_implies(geonames_task):
    model_graph = geonames_task.model_graph
    unknown = geonames_task.evaluation_prompts("unknown")
    assert unknown
    for prompt, gold in unknown:
        assert not model_graph.objects(prompt.subject, prompt.relation)
        assert not _linked(model_graph, prompt.subject, gold), prompt


def test_the_implied_ones_are_reported_apart(geonames_task):
    inferable = geonames_task.evaluation_prompts("unknown-inferable")
    # Unknown countries keep their neighbours' reverse edges in the model's KG.
    assert any(prompt.relation == "neighbour" for prompt, _ in inferable)
    for prompt, gold in inferable:
        assert _linked(geonames_task.model_graph, prompt.subject, gold), prompt
    asked = {(p.subject, p.relation) for p, _ in geonames_task.evaluation_prompts("unknown")}
    assert not asked & {(p.subject, p.relation) for p, _ in inferable}
