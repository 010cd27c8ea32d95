"""The hallucination metrics, one table row per definition in DESIGN.md ("Hallucination metrics")."""

import math

import pytest

from kfine.evaluation.metrics import (
    ABSTAINED,
    CORRECT,
    HALLUCINATED,
    METRICS,
    AnswerJudge,
    Judgement,
    mean_and_std,
    rates,
)
from kfine.knowledge import KnowledgeGraph
from kfine.knowledge.names import DEFAULT_ABSTENTION

# A small KG of another domain. "Dun", "Dunmoor" and "Dunmoor Heights" are
# prefixes of one another, so the longest-match rule matters.
TRIPLES = [
    ("Alda Varenko", "born_in", "Dunmoor"),
    ("Borin Quillby", "born_in", "Dunmoor Heights"),
    ("Cela Marsh", "born_in", "Dun"),
    ("Dorim Tolvane", "born_in", "Cresthaven"),
    ("Alda Varenko", "works_for", "Harrow & Sons"),
    ("Borin Quillby", "works_for", "Lumen Freight"),
    ("Alda Varenko", "speaks", "Old Vellic"),
    ("Alda Varenko", "speaks", "Ostric"),
]
ALIASES = [("Harrow & Sons", "Harrow"), ("Dunmoor", "Dun Moor")]


@pytest.fixture(scope="module")
def judge():
    return AnswerJudge(KnowledgeGraph(TRIPLES, ALIASES))


# (completion, suffix, gold objects, verdict, answer entity)
DEFINITIONS = [
    # correct: the answer's entity is in O.
    ("Dunmoor.", ".", {"Dunmoor"}, CORRECT, "Dunmoor"),
    ("Dunmoor", "", {"Dunmoor"}, CORRECT, "Dunmoor"),
    # O may hold several objects; any of them is correct.
    ("Ostric.", ".", {"Old Vellic", "Ostric"}, CORRECT, "Ostric"),
    # Mapped to an entity by alias match.
    ("Harrow.", ".", {"Harrow & Sons"}, CORRECT, "Harrow & Sons"),
    ("Dun Moor.", ".", {"Dunmoor"}, CORRECT, "Dunmoor"),
    # Names compare case-normalized ...
    ("DUNMOOR HEIGHTS.", ".", {"Dunmoor Heights"}, CORRECT, "Dunmoor Heights"),
    ("harrow & sons.", ".", {"Harrow & Sons"}, CORRECT, "Harrow & Sons"),
    # ... whitespace-normalized ...
    ("  Dunmoor   Heights .", ".", {"Dunmoor Heights"}, CORRECT, "Dunmoor Heights"),
    ("Old\tVellic .", ".", {"Old Vellic"}, CORRECT, "Old Vellic"),
    # ... and with tokenizer spacing around punctuation undone.
    ("Harrow&Sons .", ".", {"Harrow & Sons"}, CORRECT, "Harrow & Sons"),
    ("Harrow & Sons .", ".", {"Harrow & Sons"}, CORRECT, "Harrow & Sons"),
    # Templates need not end with {object}: the text after it is removed.
    ("Dunmoor of the table", " of the table", {"Dunmoor"}, CORRECT, "Dunmoor"),
    ("Dunmoor , a quiet town .", ", a quiet town.", {"Dunmoor"}, CORRECT, "Dunmoor"),
    # Or the longest KG name the completion starts with ...
    ("Dunmoor Heights is far away", ".", {"Dunmoor Heights"}, CORRECT, "Dunmoor Heights"),
    ("Dunmoor Heights is far away", ".", {"Dunmoor"}, HALLUCINATED, "Dunmoor Heights"),
    ("Dunmoor is near", ".", {"Dunmoor"}, CORRECT, "Dunmoor"),
    ("Dun , a quiet town", ".", {"Dun"}, CORRECT, "Dun"),
    ("Dunmoor.", ", a quiet town.", {"Dunmoor"}, CORRECT, "Dunmoor"),  # the model ended another way
    # ... ending at a word boundary: "Dunmoorish" is not "Dunmoor" (nor "Dun").
    ("Dunmoorish hills", ".", {"Dunmoor"}, HALLUCINATED, None),
    ("Dunes are here", ".", {"Dun"}, HALLUCINATED, None),
    # The completion counts up to the end of the sentence.
    ("Dunmoor in the hills.", ".", {"Dunmoor"}, CORRECT, "Dunmoor"),
    ("Dunmoor. Cela Marsh was born in Dun.", ".", {"Dunmoor"}, CORRECT, "Dunmoor"),
    # abstained: the abstention phrase.
    ("unknown.", ".", {"Dunmoor"}, ABSTAINED, None),
    ("Unknown", "", set(), ABSTAINED, None),
    ("  UNKNOWN , a quiet town.", ", a quiet town.", set(), ABSTAINED, None),
    ("unknown.", ", a quiet town.", set(), ABSTAINED, None),  # abstains, ending like a training template
    # hallucinated: a wrong entity ...
    ("Cresthaven.", ".", {"Dunmoor"}, HALLUCINATED, "Cresthaven"),
    ("Lumen Freight.", ".", {"Dunmoor"}, HALLUCINATED, "Lumen Freight"),  # an entity of another relation
    # ... or a string that is no KG entity at all.
    ("Blorptown.", ".", {"Dunmoor"}, HALLUCINATED, None),
    ("", ".", {"Dunmoor"}, HALLUCINATED, None),
    ("unknown territory.", ".", set(), HALLUCINATED, None),
]


@pytest.mark.parametrize("completion, suffix, gold, verdict, entity", DEFINITIONS)
def test_definition(judge, completion, suffix, gold, verdict, entity):
    judgement = judge.judge("prompt", completion, suffix, gold)
    assert (judgement.verdict, judgement.entity) == (verdict, entity), judgement
    assert judgement.invalid_entity == (verdict == HALLUCINATED and entity is None)
    assert judgement.prompt == "prompt" and judgement.completion == completion


def test_answer_is_the_normalized_text(judge):
    assert judge.answer("Harrow & Sons .", ".") == ("harrow&sons", "Harrow & Sons")
    assert judge.answer("Blorp  Town", "") == ("blorp town", None)


def test_custom_abstention_phrase():
    judge = AnswerJudge(KnowledgeGraph(TRIPLES, ALIASES), abstention="I do not know")
    assert judge.judge("p", "I do  not know.", ".", {"Dunmoor"}).verdict == ABSTAINED
    assert judge.judge("p", "unknown.", ".", {"Dunmoor"}).verdict == HALLUCINATED
    assert DEFAULT_ABSTENTION == "unknown"


def test_an_entity_named_like_the_abstention_phrase_counts_as_an_answer():
    judge = AnswerJudge(KnowledgeGraph([("Song", "composer", "Unknown")]))
    assert judge.judge("p", "Unknown.", ".", {"Unknown"}).verdict == CORRECT


# === Rates ===


def _judgement(verdict, entity="X"):
    return Judgement("p", "c", "a", entity, verdict)


@pytest.mark.parametrize(
    "verdicts, expected",
    [
        ([(CORRECT, "X")], {"accuracy": 1.0, "hallucination_rate": 0.0, "abstention_rate": 0.0,
                            "invalid_entity_rate": 0.0}),
        ([(CORRECT, "X"), (ABSTAINED, None), (HALLUCINATED, "Y"), (HALLUCINATED, None)],
         {"accuracy": 0.25, "hallucination_rate": 0.5, "abstention_rate": 0.25, "invalid_entity_rate": 0.25}),
        ([(HALLUCINATED, None)] * 3 + [(ABSTAINED, None)],
         {"accuracy": 0.0, "hallucination_rate": 0.75, "abstention_rate": 0.25, "invalid_entity_rate": 0.75}),
    ],
)
def test_rates(verdicts, expected):
    result = rates([_judgement(verdict, entity) for verdict, entity in verdicts])
    assert result == pytest.approx(expected)
    assert set(result) == set(METRICS)
    assert result["accuracy"] + result["hallucination_rate"] + result["abstention_rate"] == pytest.approx(1.0)
    assert result["invalid_entity_rate"] <= result["hallucination_rate"]


def test_rates_of_no_judgement_are_nan():
    assert all(math.isnan(value) for value in rates([]).values())
    assert set(rates([])) == set(METRICS)


@pytest.mark.parametrize(
    "values, mean, std",
    [
        ([0.5], 0.5, 0.0),
        ([0.2, 0.4], 0.3, 0.1),  # population std over seeds
        ([1.0, 2.0, 3.0, 4.0], 2.5, math.sqrt(1.25)),
        ([float("nan"), 1.0, 3.0], 2.0, 1.0),  # NaN seeds are ignored
    ],
)
def test_mean_and_std(values, mean, std):
    assert mean_and_std(values) == pytest.approx((mean, std))
    assert all(isinstance(value, float) for value in mean_and_std(values))


@pytest.mark.parametrize("values", [[], [float("nan")]])
def test_mean_and_std_of_nothing(values):
    assert all(math.isnan(value) for value in mean_and_std(values))


# === Truncated names and completions naming two entities ===


@pytest.mark.parametrize(
    "completion",
    ["Dunmoor/Heig.", "Dunmoor-Heig", "Dunmoor_Hei", "Harrow & Bl.", "Dunmoor's"],
)
def test_a_name_cut_inside_a_compound_is_invalid_not_the_shorter_name(judge, completion):
    judgement = judge.judge("p", completion, ".", {"Dunmoor", "Harrow & Sons"})
    assert (judgement.verdict, judgement.entity) == (HALLUCINATED, None), judgement
    assert judgement.invalid_entity


@pytest.mark.parametrize(
    "completion, suffix, answer_entity, other",
    [
        ("Dunmoor or Cresthaven.", ".", "Dunmoor", "Cresthaven"),
        ("Dunmoor, Dun Moor and Harrow.", ".", "Dunmoor", "Dunmoor"),  # an alias of the same entity counts too
        ("Cresthaven and then Lumen Freight", "", "Cresthaven", "Lumen Freight"),
        ("Dunmoor. Cela Marsh was born in Dun.", ".", "Dunmoor", None),  # the next sentence is not the answer
        ("Dunmoor in the hills.", ".", "Dunmoor", None),
        ("Dunmoor, a quiet town near Dun.", ", a quiet town near Dun.", "Dunmoor", None),  # the template's ending
        ("Dunmoorish and Dun", ".", None, None),  # no first entity: nothing to compare with
    ],
)
def test_a_completion_naming_two_entities_is_judged_by_the_first(judge, completion, suffix, answer_entity, other):
    judgement = judge.judge("p", completion, suffix, {"Dunmoor"})
    assert (judgement.entity, judgement.other_entity) == (answer_entity, other), judgement
