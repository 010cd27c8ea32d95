import unicodedata

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfine.errors import KfineError
from kfine.knowledge import KnowledgeGraph, linker_graph
from kfine.knowledge.linker import NO_ENTITY, EntityLinker, Mention, Mentions, TokenMention
from kfine.knowledge.names import normalize_name
from kfine.models.tokenizer import WordPieceTokenizer

CAPITALS = [
    ("Andorra", "Andorra la Vella"),
    ("France", "Paris"),
    ("Guinea", "Conakry"),
    ("Guinea-Bissau", "Bissau"),
    ("Papua New Guinea", "Port Moresby"),
    ("Curaçao", "Willemstad"),
    ("São Tomé and Príncipe", "São Tomé"),
    ("United States", "Washington, D.C."),
    ("Saint Kitts and Nevis", "Basseterre"),
]
ALIASES = [
    ("United States", "USA"),
    ("United States", "United States of America"),
    ("Curaçao", "Curacao"),
    ("São Tomé and Príncipe", "Sao Tome and Principe"),
    ("Paris", "City of Light"),
    ("Washington, D.C.", "Washington"),
]
TEMPLATES = [
    "The capital of {country} is {capital}.",
    "{capital} is the capital of {country}, they say.",
    "Is {capital} in {country}? Yes: ({capital}) lies in {country}!",
]
ALIAS_SENTENCES = [
    "The USA and the United States of America are one country.",
    "Paris, the City of Light, is in France.",
    "Curacao is Curaçao; Sao Tome and Principe is São Tomé and Príncipe.",
    "Papua New Guinea-Bissau is no country, but Guinea-Bissau is.",
    "Nothing here: Parisian Andorrans from Guineaville.",
    "Trains link Paris_France and Andorra/Guinea-Bissau_x.",
    "",
]
SENTENCES = [
    template.format(country=country, capital=capital) for country, capital in CAPITALS for template in TEMPLATES
] + ALIAS_SENTENCES


def names_of(graph):
    return [name for entity in graph.entities for name in graph.names(entity)]


@pytest.fixture(scope="module")
def graph():
    triples = [(country, "capital", capital) for country, capital in CAPITALS]
    triples += [(country, "continent", "Europe") for country in ("Andorra", "France")]
    return KnowledgeGraph(triples, aliases=ALIASES)


@pytest.fixture(scope="module")
def tokenizer(graph):
    return WordPieceTokenizer.learn(SENTENCES, vocabulary_size=300, coverage_texts=names_of(graph))


@pytest.fixture(scope="module")
def linker(graph, tokenizer):
    return EntityLinker(graph, tokenizer)


def linked(linker, text):
    return [(mention.surface, mention.entity) for mention in linker.link(text)]


# === Text ===


def test_longest_match_wins(linker, graph):
    text = "Andorra la Vella is the capital of Andorra."
    assert linker.link(text) == [
        Mention(0, 16, "Andorra la Vella", graph.entity_id("Andorra la Vella"), "Andorra la Vella"),
        Mention(35, 42, "Andorra", graph.entity_id("Andorra"), "Andorra"),
    ]


def test_matches_start_and_end_at_word_boundaries(linker):
    assert linked(linker, "Parisian Parisians, xParis, Paris2, ParisÉ and USAF.") == []
    # `_` is punctuation, as for the tokenizer and normalize_name.
    assert linked(linker, "(Paris) Paris's Paris-Andorra Paris_France") == [
        ("Paris", "Paris"),
        ("Paris", "Paris"),
        ("Paris", "Paris"),
        ("Andorra", "Andorra"),
        ("Paris", "Paris"),
        ("France", "France"),
    ]


def test_whitespace_next_to_punctuation_and_between_words_may_differ(linker):
    assert linked(linker, "Guinea - Bissau and Washington , D.C. and Papua\n New  Guinea") == [
        ("Guinea - Bissau", "Guinea-Bissau"),
        ("Washington , D.C.", "Washington, D.C."),
        ("Papua\n New  Guinea", "Papua New Guinea"),
    ]
    assert linked(linker, "GuineaBissau") == []
    # U+001C-U+001F are whitespace too (`str.isspace`), also on the fast path for ASCII text.
    assert linked(linker, "Papua\x1cNew Guinea") == [("Papua\x1cNew Guinea", "Papua New Guinea")]


def test_case_sensitivity(graph):
    text = "PARIS and andorra LA vella, CURAÇAO"
    assert linked(EntityLinker(graph), text) == []
    assert linked(EntityLinker(graph, case_sensitive=False), text) == [
        ("PARIS", "Paris"),
        ("andorra LA vella", "Andorra la Vella"),
        ("CURAÇAO", "Curaçao"),
    ]


def test_aliases_map_to_their_entity(linker, graph):
    mentions = linker.link("USA, the City of Light, Curacao and Washington.")
    assert [(m.surface, m.entity) for m in mentions] == [
        ("USA", "United States"),
        ("City of Light", "Paris"),
        ("Curacao", "Curaçao"),
        ("Washington", "Washington, D.C."),
    ]
    assert all(m.entity_id == graph.entity_id(m.entity) for m in mentions)


def test_overlapping_candidates_are_leftmost_longest(linker):
    # The leftmost candidate wins even over a longer one starting inside it.
    assert linked(linker, "Papua New Guinea-Bissau") == [("Papua New Guinea", "Papua New Guinea"), ("Bissau", "Bissau")]
    assert linked(linker, "Guinea-Bissau") == [("Guinea-Bissau", "Guinea-Bissau")]
    assert linked(linker, "São Tomé and Príncipe, not São Tomé") == [
        ("São Tomé and Príncipe", "São Tomé and Príncipe"),
        ("São Tomé", "São Tomé"),
    ]
    assert linked(linker, "the United States of America and the United States") == [
        ("United States of America", "United States"),
        ("United States", "United States"),
    ]


def test_mentions_are_a_sequence_with_span_arrays(linker, graph):
    text = "From Paris to Conakry, then Paris."
    mentions = linker.link(text)
    expected = [Mention(5, 10, "Paris", graph.entity_id("Paris"), "Paris"),
                Mention(14, 21, "Conakry", graph.entity_id("Conakry"), "Conakry"),
                Mention(28, 33, "Paris", graph.entity_id("Paris"), "Paris")]
    assert isinstance(mentions, Mentions) and len(mentions) == 3 and mentions.text == text
    assert mentions == expected and expected == mentions and mentions == tuple(expected)
    assert mentions == linker.link(text) and mentions != expected[:2] and mentions != "Paris"
    assert mentions[-1] == expected[-1] and mentions[:1] == expected[:1] and list(reversed(mentions)) == expected[::-1]
    assert mentions.starts.tolist() == [5, 14, 28] and mentions.ends.tolist() == [10, 21, 33]
    assert mentions.entity_ids.tolist() == [mention.entity_id for mention in expected]
    assert repr(mentions) == repr(expected)


def test_empty_text_and_text_without_entities(linker):
    assert linker.link("") == []
    assert linker.link("   \n\t ") == []
    assert linker.link("Nothing to see here, move along.") == []


def test_unicode_names_and_offsets(linker):
    text = "Curaçao, São Tomé: ok"
    mentions = linker.link(text)
    assert [(m.start, m.end, m.entity) for m in mentions] == [(0, 7, "Curaçao"), (9, 17, "São Tomé")]
    # Decomposed characters match the composed names; offsets stay those of the text as given.
    decomposed = "in Curac\u0327ao!"
    (mention,) = linker.link(decomposed)
    assert (mention.start, mention.end, mention.entity) == (3, 11, "Curaçao")
    assert mention.surface == decomposed[3:11]


def test_combining_marks_belong_to_words():
    graph = KnowledgeGraph([("हिन्दी", "is", "भाषा")])
    linker = EntityLinker(graph)
    # "हिन" is not a word of "हिन्दी" even though Python's \w leaves out the virama.
    assert linked(EntityLinker(KnowledgeGraph([("हिन", "is", "x")])), "हिन्दी") == []
    assert linked(linker, "हिन्दी एक भाषा है") == [("हिन्दी", "हिन्दी"), ("भाषा", "भाषा")]


def test_shared_surface_forms_prefer_names_over_aliases():
    graph = KnowledgeGraph([("Nice", "in", "France"), ("Acme", "in", "France")], aliases=[("Acme", "NICE")])
    linker = EntityLinker(graph, case_sensitive=False)
    assert linked(linker, "nice and NICE") == [("nice", "Nice"), ("NICE", "Nice")]
    assert linked(EntityLinker(graph), "nice and NICE") == [("NICE", "Acme")]


def test_non_str_text_raises(linker):
    for bad in (None, b"Paris", 3, ["Paris"]):
        with pytest.raises(KfineError, match="must be a str"):
            linker.link(bad)


def test_bad_arguments_raise(graph):
    with pytest.raises(KfineError, match="KnowledgeGraph"):
        EntityLinker([("France", "capital", "Paris")])
    with pytest.raises(KfineError, match="case_sensitive"):
        EntityLinker(graph, case_sensitive="no")
    with pytest.raises(KfineError, match="tokenizer"):
        EntityLinker(graph, tokenizer="bert")
    text_only = EntityLinker(graph)
    for method in (text_only.link_token_ids, text_only.entity_ids_per_token, text_only.entity_ids_tensor):
        with pytest.raises(KfineError, match="needs a tokenizer"):
            method([2, 3])
    with pytest.raises(KfineError, match="needs a tokenizer"):
        text_only.link_texts_tensor(tf.constant(["Paris"]))


def test_many_aliases():
    words = [f"W{index}" for index in range(400)]
    names = words + [f"{words[index % 400]} {words[index // 400]}" for index in range(100_000)]
    graph = KnowledgeGraph([(name, "r", "Hub") for name in names])
    linker = EntityLinker(graph)
    text = f"see {names[5]} and {names[-1]}, then W1x W2 W3"
    assert [m.entity for m in linker.link(text)] == [names[5], names[-1], "W2 W3"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_mentions_are_valid(graph, data):
    names = names_of(graph)
    piece = st.one_of(
        st.sampled_from(names),
        st.sampled_from(names).map(str.upper),
        st.text(max_size=6),
        st.sampled_from([" ", "-", ", ", "_", " _ ", "\u0301", "ß", "İ", "=\u0338", "\n", "\x1f", "\U00011001"]),
    )
    text = "".join(data.draw(st.lists(piece, max_size=8)))
    case_sensitive = data.draw(st.booleans())
    linker = EntityLinker(graph, case_sensitive=case_sensitive)
    try:
        mentions = linker.link(text)
    except KfineError:
        return
    end = 0
    for mention in mentions:
        assert end <= mention.start < mention.end <= len(text)
        end = mention.end
        assert mention.surface == text[mention.start : mention.end]
        assert mention.entity_id == graph.entity_id(mention.entity)
        forms = graph.names(mention.entity)
        assert normalize_name(mention.surface) in {normalize_name(name) for name in forms}
        if case_sensitive:
            letters = "".join(unicodedata.normalize("NFC", mention.surface).split())
            assert letters in {"".join(name.split()) for name in forms}
    # The fast splits (for ASCII texts, and texts without `_` or astral characters) agree with the complete one.
    for suffix in (" _", " \U00011001"):
        assert linker.link(text + suffix) == mentions


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text(max_size=3), max_size=3)))
def test_property_only_kfine_errors_escape(linker, value):
    with pytest.raises(KfineError):
        linker.link(value)


# === Token ids, eager ===


def test_token_path_agrees_with_text_path(linker, tokenizer):
    found = 0
    for sentence in SENTENCES:
        token_ids = tokenizer.encode(sentence)
        text_mentions = linker.link(sentence)
        token_mentions = linker.link_token_ids(token_ids)
        assert [m.entity for m in token_mentions] == [m.entity for m in text_mentions], sentence
        for text_mention, token_mention in zip(text_mentions, token_mentions):
            decoded = tokenizer.decode(token_ids[token_mention.start : token_mention.end])
            assert normalize_name(decoded) == normalize_name(text_mention.surface)
        found += len(token_mentions)
    assert found > len(CAPITALS) * len(TEMPLATES)


def test_entity_ids_per_token(linker, tokenizer, graph):
    token_ids = tokenizer.encode("Paris is in France.", add_eos=True)
    paris, france = len(tokenizer.encode("Paris", add_bos=False)), len(tokenizer.encode("France", add_bos=False))
    is_in = len(tokenizer.encode("is in", add_bos=False))
    # Causal: a name's id appears at its last token, once the tokens so far spell it out.
    expected = (
        [NO_ENTITY] * paris
        + [graph.entity_id("Paris") + 1]
        + [NO_ENTITY] * is_in
        + [NO_ENTITY] * (france - 1)
        + [graph.entity_id("France") + 1]
        + [NO_ENTITY] * 2
    )
    assert linker.entity_ids_per_token(token_ids) == expected
    assert linker.link_token_ids(token_ids) == [
        TokenMention(1, 1 + paris, "Paris", graph.entity_id("Paris")),
        TokenMention(1 + paris + is_in, 1 + paris + is_in + france, "France", graph.entity_id("France")),
    ]
    assert linker.entity_ids_per_token(np.array(token_ids)) == expected
    assert linker.entity_ids_per_token(tf.constant(token_ids)) == expected
    assert linker.entity_ids_per_token([]) == []


def test_token_path_case_variants(graph, tokenizer):
    insensitive = EntityLinker(graph, tokenizer, case_sensitive=False)
    for text in ("paris", "PARIS", "Andorra La Vella", "andorra la vella"):
        assert [m.entity for m in insensitive.link_token_ids(tokenizer.encode(text))] == [
            m.entity for m in insensitive.link(text)
        ], text
    assert EntityLinker(graph, tokenizer).link_token_ids(tokenizer.encode("PARIS")) == []


def test_bad_token_ids_raise(linker):
    for bad in ("Paris", [[1, 2]], [1.5], [True], np.zeros((2, 2), np.int32), np.zeros(3, np.float32), None):
        with pytest.raises(KfineError, match="1-D sequence of ints"):
            linker.link_token_ids(bad)
    for bad in (tf.zeros([1, 2, 3], tf.int32), tf.zeros([3], tf.float32), "Paris", tf.ragged.constant([[[1]]])):
        with pytest.raises(KfineError, match="token_ids"):
            linker.entity_ids_tensor(bad)


# === Token ids, in-graph ===


def eager_rows(linker, rows):
    return [linker.entity_ids_per_token(row) for row in rows]


def test_in_graph_equals_eager_on_batches(linker, tokenizer):
    token_ids = tokenizer.tokenize(tf.constant(SENTENCES))
    expected = eager_rows(linker, token_ids.to_list())
    ragged = linker.entity_ids_tensor(token_ids)
    assert isinstance(ragged, tf.RaggedTensor) and ragged.dtype == tf.int32
    assert ragged.to_list() == expected
    dense = linker.entity_ids_tensor(token_ids.to_tensor())
    assert dense.shape == token_ids.to_tensor().shape
    assert dense.numpy().tolist() == tf.ragged.constant(expected).to_tensor(shape=dense.shape).numpy().tolist()
    assert linker.entity_ids_tensor(token_ids[1]).numpy().tolist() == expected[1]
    assert any(any(row) for row in expected)


def test_entity_ids_never_use_a_later_token(linker, tokenizer):
    """The id at position t is the same whatever follows t: the linker reads tokens <= t only."""
    rows = [tokenizer.encode(sentence, add_eos=True) for sentence in SENTENCES[::4]]
    vocabulary_size = len(tokenizer.vocabulary)
    rng = np.random.default_rng(0)
    for row in rows:
        eager = linker.entity_ids_per_token(row)
        in_graph = linker.entity_ids_tensor(tf.constant(row)).numpy().tolist()
        assert in_graph == eager
        for position in range(len(row)):
            # Tokens after t replaced: by nothing, by random ids, by another sentence's tail.
            for tail in ([], rng.integers(1, vocabulary_size, size=5).tolist(), rows[0][position + 1 :]):
                changed = row[: position + 1] + tail
                assert linker.entity_ids_per_token(changed)[position] == eager[position]
                assert linker.entity_ids_tensor(tf.constant(changed)).numpy()[position] == eager[position]
    # A longer name that starts with a shorter one: the shorter at its own tokens, the longer at its last.
    andorra, vella = tokenizer.encode("Andorra", add_bos=False), tokenizer.encode("Andorra la Vella", add_bos=False)
    per_token = linker.entity_ids_per_token(vella)
    assert per_token[len(andorra) - 1] == linker.knowledge_graph.entity_id("Andorra") + 1
    assert per_token[-1] == linker.knowledge_graph.entity_id("Andorra la Vella") + 1


def test_in_graph_edge_shapes(linker):
    assert linker.entity_ids_tensor(tf.zeros([2, 0], tf.int32)).shape == (2, 0)
    assert linker.entity_ids_tensor(tf.zeros([0], tf.int64)).shape == (0,)
    assert linker.entity_ids_tensor(tf.ragged.constant([[], []], dtype=tf.int32)).to_list() == [[], []]
    assert linker.entity_ids_tensor(np.zeros((3, 4), np.int32)).numpy().tolist() == [[0] * 4] * 3


def test_in_graph_inside_tf_function_and_tf_data(linker, tokenizer):
    expected = eager_rows(linker, tokenizer.encode_batch(SENTENCES, add_bos=False))

    @tf.function
    def entity_ids(texts):
        return linker.link_texts_tensor(texts)[1]

    assert entity_ids(tf.constant(SENTENCES)).to_list() == expected

    one_by_one = tf.data.Dataset.from_tensor_slices(SENTENCES).map(linker.link_texts_tensor)
    assert [ids.numpy().tolist() for _, ids in one_by_one] == expected
    batched = tf.data.Dataset.from_tensor_slices(SENTENCES).batch(4).map(linker.link_texts_tensor)
    rows = [row for _, ids in batched for row in ids.to_list()]
    assert rows == expected
    # Dense, padded batches in tf.data: padding gets NO_ENTITY.
    dense = tf.data.Dataset.from_tensor_slices(SENTENCES).batch(4)
    dense = dense.map(lambda texts: linker.entity_ids_tensor(tokenizer.tokenize(texts).to_tensor()))
    for index, batch in enumerate(dense):
        rows = expected[4 * index : 4 * index + 4]
        width = batch.shape[1]
        assert batch.numpy().tolist() == [row + [NO_ENTITY] * (width - len(row)) for row in rows]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_in_graph_equals_eager(linker, tokenizer, graph, data):
    forms = tokenizer.encode_batch(names_of(graph), add_bos=False)
    piece = st.one_of(st.sampled_from(forms), st.lists(st.integers(0, tokenizer.vocabulary_size - 1), max_size=3))
    rows = [
        [token_id for part in data.draw(st.lists(piece, max_size=6)) for token_id in part]
        for _ in range(data.draw(st.integers(1, 4)))
    ]
    expected = eager_rows(linker, rows)
    ragged = tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)
    assert linker.entity_ids_tensor(ragged).to_list() == expected
    width = max(map(len, rows))
    dense = [row + [tokenizer.pad_id] * (width - len(row)) for row in rows]
    result = linker.entity_ids_tensor(tf.constant(dense, tf.int32, shape=[len(rows), width])).numpy().tolist()
    assert [row[: len(expected_row)] for row, expected_row in zip(result, expected)] == expected


def test_colliding_hashes_raise(graph, tokenizer, monkeypatch):
    monkeypatch.setattr(linker_graph, "HASH_MODULI", (3, 5))
    with pytest.raises(KfineError, match="collision-free"):
        EntityLinker(graph, tokenizer)
