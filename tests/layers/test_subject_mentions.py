"""Tests of the spelling hash table `FactDatastore` uses to find the subject a prompt names."""

import keras
import numpy as np

from kfine.knowledge.graph import KnowledgeGraph
from kfine.layers.subject_mentions import first_subject, spelling_table, subject_spellings
from kfine.models.causal_lm import token_windows

# Token spellings of three entities: 7 = "Guinea", 8 = "Guinea-Bissau", 9 = "Mali".
SPELLINGS = {(11,): 7, (11, 12, 13): 8, (14,): 9, (15, 16): 9}


def _first_subjects(rows, context=6, spellings=SPELLINGS):
    table = spelling_table(spellings)
    windows = token_windows(np.array(rows, "int32"), context)
    tensors = tuple(keras.ops.convert_to_tensor(table[name]) for name in ("check", "length", "subject"))
    return keras.ops.convert_to_numpy(first_subject(windows, tensors, table["bases"], table["max_length"], 10))


def test_each_position_sees_the_first_subject_named_up_to_it():
    # [BOS]=1, "in"=3, "Mali"=14, "and"=4, "Guinea"=11
    subjects = _first_subjects([[1, 3, 14, 4, 11, 0]])
    assert subjects.tolist() == [[-1, -1, 9, 9, 9, 9]]


def test_the_longest_spelling_at_the_earliest_start_wins():
    # "Guinea" is a subject by itself until "-Bissau" completes the longer name.
    subjects = _first_subjects([[1, 11, 12, 13, 5, 14]])
    assert subjects.tolist() == [[-1, 7, 7, 8, 8, 8]]


def test_a_spelling_must_lie_whole_inside_the_window():
    # With a context of 2, "Guinea - Bissau" (3 tokens) never fits: "Guinea" is named, then
    # nothing once it leaves the window.
    subjects = _first_subjects([[1, 11, 12, 13, 5]], context=2)
    assert subjects.tolist() == [[-1, 7, 7, -1, -1]]


def test_no_spelling_means_minus_one_and_padding_never_matches():
    assert _first_subjects([[1, 2, 3, 0, 0, 0]]).tolist() == [[-1] * 6]


def test_thousands_of_spellings_hash_without_confusing_any():
    rng = np.random.default_rng(0)
    spellings = {}
    while len(spellings) < 3000:
        spellings[tuple(int(token) for token in rng.integers(1, 500, size=rng.integers(1, 5)))] = len(spellings) % 900
    items = list(spellings.items())[:200]
    rows = np.zeros((len(items), 6), "int32")
    for row, (ids, _) in enumerate(items):
        rows[row, 1 : 1 + len(ids)] = ids
        rows[row, 0] = 1
    # Token 1 ([BOS]) starts every row: no spelling may start with it.
    spellings = {ids: subject for ids, subject in spellings.items() if ids[0] != 1}
    table = spelling_table(spellings)
    windows = token_windows(rows, 6)
    tensors = tuple(keras.ops.convert_to_tensor(table[name]) for name in ("check", "length", "subject"))
    subjects = keras.ops.convert_to_numpy(first_subject(windows, tensors, table["bases"], table["max_length"], 900))
    checked = [(row, ids, subject) for row, (ids, subject) in enumerate(items) if ids in spellings]
    assert len(checked) > 150
    # Every row names its spelling from the first token on: the longest there is the whole spelling.
    assert [subjects[row, len(ids)] for row, ids, _ in checked] == [subject for _, _, subject in checked]


def test_subject_spellings_cover_names_and_aliases_of_subjects_only(people_task, pretrained_dir):
    from kfine.models.loading import load_model

    tokenizer = load_model(pretrained_dir).tokenizer
    graph = KnowledgeGraph([("Alda Varenko", "plays", "harp")], aliases=[("Alda Varenko", "Alda")])
    spellings = subject_spellings(tokenizer, graph)
    named = {graph.entities[entity] for entity in spellings.values()}
    assert named == {"Alda Varenko"}  # "harp" is an object only
    assert tuple(tokenizer.encode_batch(["Alda"], add_bos=False)[0]) in spellings
