import os

import pytest

from kfine.datasets.geonames import CACHE_NAME, MAX_ALIASES, build_geonames, default_kg_files, write_geonames
from kfine.knowledge import KnowledgeGraph, Templates

RELATIONS = ["capital", "continent", "country", "currency", "neighbour", "timezone"]


@pytest.fixture(scope="module")
def geonames():
    return build_geonames()


def test_sizes(geonames):
    kg, _ = geonames
    assert kg.relations == RELATIONS
    assert 3000 <= kg.num_entities <= 4500
    assert 6000 <= kg.num_triples <= 8500
    assert kg.stats()["triples_per_relation"]["country"] == 3000


def test_known_facts(geonames):
    kg, _ = geonames
    assert kg.objects("France", "capital") == {"Paris"}
    assert kg.objects("France", "continent") == {"Europe"}
    assert kg.objects("France", "currency") == {"Euro"}
    assert {"Spain", "Germany", "Belgium"} <= kg.objects("France", "neighbour")
    assert kg.objects("Paris", "country") == {"France"}
    assert kg.objects("Paris", "timezone") == {"Europe/Paris"}
    assert kg.objects("Andorra", "capital") == {"Andorra la Vella"}
    assert kg.objects("Andorra la Vella", "country") == {"Andorra"}  # small capitals are cities too


def test_capitals_use_the_city_spelling(geonames):
    kg, _ = geonames
    assert kg.objects("Colombia", "capital") == {"Bogotá"}
    assert "Bogota" in kg.aliases("Bogotá")


def test_no_city_is_confused_with_another_country(geonames):
    kg, _ = geonames
    for country in kg.subjects("capital"):
        assert kg.objects(country, "country") <= {country}


def test_aliases(geonames):
    kg, _ = geonames
    folded_entities = {entity.casefold() for entity in kg.entities}
    assert len(kg.alias_pairs) > 1000
    for _, alias in kg.alias_pairs:
        assert alias.casefold() not in folded_entities
        assert all(character.isalpha() or character in " -'." for character in alias)
    assert max(len(kg.aliases(entity)) for entity in kg.entities) == MAX_ALIASES


def test_templates(geonames):
    kg, templates = geonames
    templates.validate(kg)
    for relation in templates.relations:
        texts = templates.templates(relation)
        assert len(texts) >= 3
        assert all(text.endswith(".") for text in texts)
        assert templates.paraphrase_template(relation) not in templates.training_templates(relation)
    suffixes = [Templates.suffix(text) for relation in RELATIONS for text in templates.templates(relation)]
    assert sum(suffix != "." for suffix in suffixes) >= len(RELATIONS)


def test_build_is_deterministic(geonames):
    kg, templates = build_geonames()
    assert kg.fingerprint() == geonames[0].fingerprint()
    assert templates == geonames[1]


def test_written_files_load_back(tmp_path, geonames):
    paths = write_geonames(str(tmp_path / "geonames"))
    assert sorted(paths) == ["aliases", "templates", "triples"]
    assert KnowledgeGraph.from_files(paths["triples"], paths["aliases"]) == geonames[0]
    assert Templates.from_file(paths["templates"]) == geonames[1]


def test_default_kg_files_are_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KFINE_CACHE", str(tmp_path))
    paths = default_kg_files()
    assert paths["triples"] == str(tmp_path / CACHE_NAME / "triples.tsv")
    written = {key: os.stat(path).st_mtime_ns for key, path in paths.items()}
    os.utime(paths["triples"], ns=(1, 1))
    assert default_kg_files() == paths
    assert os.stat(paths["triples"]).st_mtime_ns == 1  # not rewritten
    assert set(written) == {"triples", "templates", "aliases"}
    explicit = default_kg_files(str(tmp_path / "elsewhere"))
    assert all(os.path.isfile(path) for path in explicit.values())
