import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfine.errors import KnowledgeGraphError
from kfine.knowledge import KnowledgeGraph, write_triples
from kfine.knowledge.formats import name_problem

TRIPLES = [
    ("France", "capital", "Paris"),
    ("France", "neighbour", "Spain"),
    ("France", "neighbour", "Belgium"),
    ("Spain", "capital", "Madrid"),
    ("Spain", "neighbour", "France"),
    ("Paris", "country", "France"),
]
ALIASES = [("Paris", "Lutetia"), ("Paris", "City of Light"), ("Spain", "España")]


@pytest.fixture
def kg():
    return KnowledgeGraph(TRIPLES, ALIASES, name="tiny")






# === Names and ids ===


def test_ids_are_positions_in_sorted_names(kg):
    assert kg.entities == ["Belgium", "France", "Madrid", "Paris", "Spain"]
    assert kg.relations == ["capital", "country", "neighbour"]
    assert [kg.entity_id(entity) for entity in kg.entities] == list(range(5))
    assert kg.relation_id("neighbour") == 2
    assert (kg.num_entities, kg.num_relations, kg.num_triples, len(kg)) == (5, 3, 6, 6)


@pytest.mark.parametrize("lookup, name", [("entity_id", "Lutetia"), ("relation_id", "capitol")])
def test_unknown_names_raise(kg, lookup, name):
    with pytest.raises(KnowledgeGraphError, match=f"unknown (entity|relation) '{name}'"):
        getattr(kg, lookup)(name)


def test_duplicates_collapse_and_triples_are_sorted():
    kg = KnowledgeGraph([("b", "r", "c"), ("a", "r", "c"), ["b", "r", "c"]])
    assert kg.triples == [("a", "r", "c"), ("b", "r", "c")]


def test_triple_ids_and_adjacency(kg):
    ids = kg.triple_ids
    assert ids.dtype == np.int32 and ids.shape == (6, 3)
    assert not ids.flags.writeable
    for (subject, relation, obj), row in zip(kg.triples, ids):
        assert row.tolist() == [kg.entity_id(subject), kg.relation_id(relation), kg.entity_id(obj)]
    source, relation, target = kg.adjacency()
    assert all(array.dtype == np.int32 for array in (source, relation, target))
    np.testing.assert_array_equal(np.stack([source, relation, target], axis=1), ids)


def test_empty_graph_has_empty_arrays():
    kg = KnowledgeGraph([])
    assert kg.triple_ids.shape == (0, 3)
    assert kg.stats()["max_out_degree"] == 0


# === Facts ===


def test_fact_queries(kg):
    assert kg.objects("France", "neighbour") == {"Spain", "Belgium"}
    assert kg.objects("France", "currency") == set()
    assert kg.objects("Atlantis", "capital") == set()
    assert kg.subjects("capital") == {"France", "Spain"}
    assert kg.relation_range("capital") == {"Paris", "Madrid"}
    assert kg.relation_range("currency") == set()


def test_queries_return_copies(kg):
    kg.objects("France", "neighbour").add("Italy")
    assert kg.objects("France", "neighbour") == {"Spain", "Belgium"}


def test_neighbors_keep_the_direction(kg):
    assert kg.neighbors("France") == {
        ("capital", "Paris"),
        ("neighbour", "Spain"),
        ("neighbour", "Belgium"),
        ("^neighbour", "Spain"),
        ("^country", "Paris"),
    }
    assert kg.neighbors("Belgium") == {("^neighbour", "France")}
    with pytest.raises(KnowledgeGraphError, match="unknown entity"):
        kg.neighbors("Atlantis")


def test_aliases_and_names(kg):
    assert kg.aliases("Paris") == ["City of Light", "Lutetia"]
    assert kg.names("Paris") == ["Paris", "City of Light", "Lutetia"]
    assert kg.names("Madrid") == ["Madrid"]
    assert kg.alias_pairs == [("Paris", "City of Light"), ("Paris", "Lutetia"), ("Spain", "España")]
    assert kg.has_entity("Paris") and not kg.has_entity("Lutetia")
    assert kg.has_relation("capital") and not kg.has_relation("Paris")
    with pytest.raises(KnowledgeGraphError, match="unknown entity 'Lutetia'"):
        kg.aliases("Lutetia")


def test_alias_equal_to_the_own_name_is_dropped():
    kg = KnowledgeGraph(TRIPLES, [("Paris", "Paris"), ("Paris", "Lutetia"), ("Paris", "Lutetia")])
    assert kg.alias_pairs == [("Paris", "Lutetia")]


# === Invalid construction ===


@pytest.mark.parametrize(
    "triples, expected",
    [
        ([("a", "r")], "triples[0]: expected a (subject, relation, object) tuple of strings, received ('a', 'r')"),
        ([("a", "r", "b"), "arb"], "triples[1]: expected a (subject, relation, object) tuple"),
        ([("a", "r", 3)], "triples[0]: object is not a string"),
        ([("a", "", "b")], "triples[0]: relation is empty"),
        ([("a ", "r", "b")], "subject starts or ends with whitespace"),
        ([("a", "r", "b\nc")], "object contains a tab or a line break"),
    ],
)
def test_invalid_triples_raise(triples, expected):
    with pytest.raises(KnowledgeGraphError) as info:
        KnowledgeGraph(triples)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "aliases, expected",
    [
        ([("Atlantis", "Lost City")], "aliases[0]: alias 'Lost City' is given for 'Atlantis', which is not an entity"),
        (
            [("Paris", "Lutetia"), ("Madrid", "Lutetia")],
            "aliases[1]: alias 'Lutetia' of 'Madrid' is already an alias of 'Paris' (aliases[0])",
        ),
        ([("Paris", "Madrid")], "alias 'Madrid' of 'Paris' is already the name of another entity"),
        ([("Paris", "")], "aliases[0]: alias is empty"),
        (["Paris"], "aliases[0]: expected a (entity, alias) tuple of strings, received 'Paris'"),
    ],
)
def test_invalid_aliases_raise(aliases, expected):
    with pytest.raises(KnowledgeGraphError) as info:
        KnowledgeGraph(TRIPLES, aliases)
    assert expected in str(info.value)


# === Files ===

TRIPLES_TSV = "subject\trelation\tobject\n" + "".join("\t".join(triple) + "\n" for triple in TRIPLES)

ALIAS_FILE_ERRORS = [
    ("unknown entity", "entity\talias\nParis\tLutetia\nAtlantis\tLost City\n", 3, "not an entity"),
    ("ambiguous alias", "entity\talias\nParis\tLutetia\n\nMadrid\tLutetia\n", 4, "alias of 'Paris' (line 2)"),
    ("another entity's name", "entity\talias\nParis\tFrance\n", 2, "already the name of another entity"),
    ("malformed line", "entity\talias\nParis\n", 2, "missing column 'alias'"),
]


@pytest.mark.parametrize(
    "content, line, expected", [row[1:] for row in ALIAS_FILE_ERRORS], ids=[row[0] for row in ALIAS_FILE_ERRORS]
)
def test_from_files_locates_alias_errors(content, line, expected, write_file, check_location):
    triples_path = write_file("facts.tsv", TRIPLES_TSV)
    aliases_path = write_file("aliases.tsv", content)
    with pytest.raises(KnowledgeGraphError) as info:
        KnowledgeGraph.from_files(triples_path, aliases_path)
    check_location(info.value, aliases_path, line)
    assert expected in str(info.value)


def test_from_files(kg, write_file):
    triples_path = write_file("facts.tsv", TRIPLES_TSV)
    lines = [json.dumps({"entity": entity, "alias": alias}) + "\n" for entity, alias in ALIASES]
    aliases_path = write_file("aliases.jsonl", "".join(lines))
    assert KnowledgeGraph.from_files(triples_path, aliases_path) == kg
    assert KnowledgeGraph.from_files(triples_path) == KnowledgeGraph(TRIPLES)


def test_save_and_load_round_trip(tmp_path, kg):
    directory = str(tmp_path / "kg")
    kg.save(directory)
    assert sorted(os.listdir(directory)) == ["aliases.tsv", "graph.json", "triples.tsv"]
    with open(os.path.join(directory, "graph.json"), encoding="utf-8") as stream:
        metadata = json.load(stream)
    assert metadata["fingerprint"] == kg.fingerprint()
    assert (metadata["name"], metadata["num_triples"], metadata["num_aliases"]) == ("tiny", 6, 3)

    loaded = KnowledgeGraph.load(directory)
    assert loaded == kg
    assert loaded.name == "tiny"
    assert loaded.entities == kg.entities and loaded.relations == kg.relations
    assert loaded.triples == kg.triples and loaded.alias_pairs == kg.alias_pairs
    np.testing.assert_array_equal(loaded.triple_ids, kg.triple_ids)


def test_save_replaces_a_previous_graph(tmp_path, kg):
    directory = str(tmp_path / "kg")
    kg.save(directory)
    without_aliases = KnowledgeGraph(TRIPLES[:2])
    without_aliases.save(directory)
    assert not os.path.exists(os.path.join(directory, "aliases.tsv"))
    assert KnowledgeGraph.load(directory) == without_aliases


def test_load_needs_only_triples(tmp_path):
    directory = tmp_path / "kg"
    directory.mkdir()
    write_triples(str(directory / "triples.tsv"), TRIPLES)
    assert KnowledgeGraph.load(str(directory)) == KnowledgeGraph(TRIPLES)


def test_load_rejects_a_missing_directory(tmp_path, check_location):
    directory = str(tmp_path / "absent")
    with pytest.raises(KnowledgeGraphError, match="no such knowledge-graph directory") as info:
        KnowledgeGraph.load(directory)
    check_location(info.value, directory, None)


def test_load_rejects_a_missing_triples_file(tmp_path, check_location):
    directory = tmp_path / "kg"
    directory.mkdir()
    with pytest.raises(KnowledgeGraphError, match="file not found") as info:
        KnowledgeGraph.load(str(directory))
    check_location(info.value, str(directory / "triples.tsv"), None)


def test_load_detects_files_changed_after_saving(tmp_path, kg):
    directory = str(tmp_path / "kg")
    kg.save(directory)
    with open(os.path.join(directory, "triples.tsv"), "a", encoding="utf-8") as stream:
        stream.write("Italy\tcapital\tRome\n")
    with pytest.raises(KnowledgeGraphError, match="fingerprint does not match"):
        KnowledgeGraph.load(directory)


def test_load_rejects_a_corrupt_graph_json(tmp_path, kg):
    directory = str(tmp_path / "kg")
    kg.save(directory)
    with open(os.path.join(directory, "graph.json"), "w", encoding="utf-8") as stream:
        stream.write("{not json")
    with pytest.raises(KnowledgeGraphError, match="graph.json: cannot be read as JSON"):
        KnowledgeGraph.load(directory)


def test_save_rejects_an_empty_graph(tmp_path):
    with pytest.raises(KnowledgeGraphError, match="empty"):
        KnowledgeGraph([]).save(str(tmp_path / "kg"))
    assert not os.path.exists(tmp_path / "kg")


# === Derived graphs ===


def test_without_drops_entities_and_their_aliases(kg):
    smaller = kg.without([("Spain", "capital", "Madrid"), ("Spain", "neighbour", "France"), ("Nowhere", "r", "x")])
    assert smaller.num_triples == 4
    assert not smaller.has_entity("Madrid")
    assert smaller.has_entity("Spain")  # still France's neighbour
    assert smaller.aliases("Spain") == ["España"]
    gone = kg.without([("Paris", "country", "France"), ("France", "capital", "Paris")])
    assert not gone.has_entity("Paris")
    assert ("Paris", "Lutetia") not in gone.alias_pairs
    assert gone.name == kg.name
    assert kg.num_triples == 6  # unchanged


def test_subgraph_keeps_given_triples_of_the_graph(kg):
    sub = kg.subgraph([("Paris", "country", "France"), ("Italy", "capital", "Rome")])
    assert sub.triples == [("Paris", "country", "France")]
    assert sub.aliases("Paris") == ["City of Light", "Lutetia"]
    assert sub.alias_pairs == [("Paris", "City of Light"), ("Paris", "Lutetia")]


# === Summaries ===


def test_fingerprint_depends_on_content_only(kg):
    shuffled = KnowledgeGraph(reversed(TRIPLES), reversed(ALIASES), name="other")
    assert shuffled.fingerprint() == kg.fingerprint()
    assert shuffled == kg and hash(shuffled) == hash(kg)
    assert len(kg.fingerprint()) == 64
    assert KnowledgeGraph(TRIPLES).fingerprint() != kg.fingerprint()
    assert kg.without(TRIPLES[:1]).fingerprint() != kg.fingerprint()
    assert kg != KnowledgeGraph(TRIPLES)


def test_stats(kg):
    assert kg.stats() == {
        "num_entities": 5,
        "num_relations": 3,
        "num_triples": 6,
        "num_aliases": 3,
        "triples_per_relation": {"capital": 2, "country": 1, "neighbour": 3},
        "mean_out_degree": 6 / 5,
        "max_out_degree": 3,
    }


def test_repr(kg):
    assert repr(kg) == "<KnowledgeGraph name='tiny' entities=5 relations=3 triples=6 aliases=3>"


# === Properties ===

names = st.text(min_size=1, max_size=12).map(str.strip).filter(lambda name: name_problem(name) is None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(triples=st.lists(st.tuples(names, names, names), min_size=1, max_size=10), data=st.data())
def test_any_graph_survives_save_and_load(tmp_path_factory, triples, data):
    entities = sorted({t[0] for t in triples} | {t[2] for t in triples})
    alias_names = st.lists(names.filter(lambda name: name not in entities), unique=True, max_size=4)
    aliases = list(zip(data.draw(st.lists(st.sampled_from(entities), min_size=4, max_size=4)), data.draw(alias_names)))
    kg = KnowledgeGraph(triples, aliases)
    directory = str(tmp_path_factory.mktemp("kg"))
    kg.save(directory)
    loaded = KnowledgeGraph.load(directory)
    assert loaded == kg and loaded.entities == kg.entities and loaded.fingerprint() == kg.fingerprint()
