import dataclasses

import numpy as np
import pytest

from kfine.errors import KfineError, TemplateError
from kfine.knowledge import Prompt, Statement, Templates, Verbalizer

TEMPLATES = Templates(
    {
        "capital": [
            "The capital of {subject} is {object}.",
            "{subject} has its capital in {object}.",
            "The government of {subject} sits in {object}, its capital city.",
        ],
        "neighbour": ["{subject} borders {object}.", "{subject} and {object} are neighbours."],
    }
)
TRIPLES = [("France", "capital", "Paris"), ("France", "neighbour", "Spain"), ("France", "neighbour", "Belgium")]


def test_training_sentences_leave_out_the_paraphrase():
    assert Verbalizer(TEMPLATES).sentences(TRIPLES) == [
        "The capital of France is Paris.",
        "France has its capital in Paris.",
        "France borders Spain.",
        "France and Spain are neighbours.",
        "France borders Belgium.",
        "France and Belgium are neighbours.",
    ]


def test_paraphrase_and_all_sentences():
    verbalizer = Verbalizer(TEMPLATES)
    paraphrases = verbalizer.sentences(TRIPLES, which="paraphrase")
    assert paraphrases == ["The government of France sits in Paris, its capital city."]
    assert len(verbalizer.sentences(TRIPLES, which="all")) == 7


def test_rng_shuffles_deterministically():
    verbalizer = Verbalizer(TEMPLATES)
    ordered = verbalizer.sentences(TRIPLES)
    shuffled = verbalizer.sentences(TRIPLES, rng=np.random.default_rng(0))
    assert sorted(shuffled) == sorted(ordered) and shuffled != ordered
    assert verbalizer.sentences(TRIPLES, rng=0) == shuffled


def test_prompts_share_one_question_per_subject_relation_and_template():
    prompts = Verbalizer(TEMPLATES).prompts(TRIPLES)
    assert [prompt.text for prompt in prompts] == [
        "The capital of France is",
        "France has its capital in",
        "France borders",
        "France and",
    ]
    template = "{subject} and {object} are neighbours."
    assert prompts[3] == Prompt("France", "neighbour", template, "France and", " are neighbours.")
    with pytest.raises(dataclasses.FrozenInstanceError):
        prompts[0].text = "changed"


def test_statements_pair_each_training_sentence_with_its_prompt():
    statements = Verbalizer(TEMPLATES).statements(TRIPLES[:2])
    assert statements == [
        Statement("France", "capital", "Paris", TEMPLATES.templates("capital")[0], "The capital of France is",
                  "The capital of France is Paris."),
        Statement("France", "capital", "Paris", TEMPLATES.templates("capital")[1], "France has its capital in",
                  "France has its capital in Paris."),
        Statement("France", "neighbour", "Spain", "{subject} borders {object}.", "France borders",
                  "France borders Spain."),
        Statement("France", "neighbour", "Spain", "{subject} and {object} are neighbours.", "France and",
                  "France and Spain are neighbours."),
    ]
    assert [statement.sentence for statement in statements] == Verbalizer(TEMPLATES).sentences(TRIPLES[:2])
    (paraphrase,) = Verbalizer(TEMPLATES).statements(TRIPLES, which="paraphrase")
    assert paraphrase.prompt == "The government of France sits in"


def test_paraphrase_prompts():
    (prompt,) = Verbalizer(TEMPLATES).prompts(TRIPLES, which="paraphrase")
    assert (prompt.text, prompt.suffix) == ("The government of France sits in", ", its capital city.")


def test_invalid_requests_raise():
    verbalizer = Verbalizer(TEMPLATES)
    with pytest.raises(KfineError, match="Received: which='test'"):
        verbalizer.sentences(TRIPLES, which="test")
    with pytest.raises(TemplateError, match="no templates for relation 'currency'"):
        verbalizer.prompts([("France", "currency", "Euro")])
