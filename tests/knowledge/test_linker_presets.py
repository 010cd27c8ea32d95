"""EntityLinker with a keras-hub preset's tokenizer: mentions as GPT-2 / SentencePiece split them in context."""

import numpy as np
import pytest
import tensorflow as tf

from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker import EntityLinker
from kfine.models.preset_builder import train_tokenizer
from kfine.models.preset_tokenizer import PresetTokenizer
from presets import ARCHITECTURES, FOREIGN_NAMES, people_sentences

SENTENCES = [
    "Alda Varenko works for Harrow & Sons.",  # a name at the start and one after a space
    "The employer of Borin Quillby is Quillstone, not Mirefallian folk.",  # an alias; "Mirefall" inside a word
    "(Cela Marsh) was born in Mire Fall, far from Zürich.",  # after punctuation; an alias; a foreign name
]
EXPECTED = [
    ["Alda Varenko", "Harrow & Sons"],
    ["Borin Quillby", "Quillstone Works"],
    ["Cela Marsh", "Mirefall", "Zürich"],
]


@pytest.fixture(scope="module", params=ARCHITECTURES)
def tokenizer(request, people_task):
    return PresetTokenizer(train_tokenizer(request.param, people_sentences(people_task)))


@pytest.fixture(scope="module")
def linker(people_task, tokenizer):
    graph = people_task.knowledge_graph
    extra = KnowledgeGraph([(name, "is_a", "place") for name in FOREIGN_NAMES])
    merged = KnowledgeGraph(list(graph.triples) + list(extra.triples), aliases=list(graph.alias_pairs))
    return EntityLinker(merged, tokenizer)


def _linked(linker, tokenizer, sentence):
    ids = tokenizer.encode(sentence)
    mentions = linker.link_token_ids(ids)
    return ids, mentions, [mention.entity for mention in mentions]


@pytest.mark.parametrize("index", range(len(SENTENCES)))
def test_token_mentions_are_the_text_mentions(linker, tokenizer, index):
    sentence = SENTENCES[index]
    ids, mentions, entities = _linked(linker, tokenizer, sentence)
    assert entities == EXPECTED[index] == [mention.entity for mention in linker.link(sentence)]
    # Each mention's tokens spell its surface form (GPT-2's "Ġ" / SentencePiece's "▁" stripped).
    surfaces = [mention.surface for mention in linker.link(sentence)]
    assert [tokenizer.decode(ids[m.start:m.end]) for m in mentions] == surfaces


def test_in_graph_ids_equal_the_eager_ones(linker, tokenizer):
    rows = [tokenizer.encode(sentence) for sentence in SENTENCES]
    eager = [linker.entity_ids_per_token(row) for row in rows]
    ragged = linker.entity_ids_tensor(tf.ragged.constant(rows, tf.int32)).to_list()
    assert ragged == eager
    token_ids, entity_ids = linker.link_texts_tensor(tf.constant(SENTENCES))
    assert entity_ids.to_list() == [row[1:] for row in eager]  # no [BOS] in-graph
    assert token_ids.to_list() == [row[1:] for row in rows]


def test_a_name_glued_to_more_letters_is_no_mention(linker, tokenizer):
    for text in ["Mirefallian", "They met Alda Varenkos."]:
        ids = tokenizer.encode(text)
        assert linker.link_token_ids(ids) == [], [tokenizer.vocabulary[i] for i in ids]
        # Per-token ids are causal: at the name's last token the letters that follow are not read yet, so it
        # may carry the name there, and no later token does.
        per_token = np.array(linker.entity_ids_per_token(ids))
        assert np.count_nonzero(per_token) <= 1, per_token


def test_names_copied_in_context_are_the_sentences_tokens(tokenizer):
    sentence = "Alda Varenko works for Harrow & Sons."
    name_ids = tokenizer.encode_in_context(["Harrow & Sons"])[0]
    ids = tokenizer.encode(sentence, add_bos=False)
    assert ids[-len(name_ids) - 1 : -1] == name_ids  # the name's ids, then "."
