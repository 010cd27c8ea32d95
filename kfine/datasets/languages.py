"""A second bundled real knowledge graph, of another domain: languages, from CLDR (via `babel`).

Geonames is places; this one is languages, so that no setting of a method is
tuned to one domain. The data is the Unicode CLDR as shipped by `babel`.
Subjects are the languages CLDR has locale data for; relations:

- `script`: language -> the script it is most likely written in ("Cyrillic
  script": the word "script" keeps "Arabic" the language apart from its script);
- `region`: language -> the territory it is most likely spoken in;
- `native_name`: language -> its name in itself ("Deutsch", "日本語"), when
  that differs from the English name;
- `official_in`: language -> each territory where it is an official language
  (multi-valued);
- `direction`: language -> "left-to-right" or "right-to-left".

Entities are names, so each must denote one thing: a language named like a
territory is left out, and a native name that is some
other entity's name is not stated.
"""

import os

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.localedata import locale_identifiers

from kfine.io import atomic_directory
from kfine.knowledge.formats import write_triples
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.templates import Templates

FILE_NAMES = {"triples": "triples.tsv", "templates": "templates.json"}
OFFICIAL = ("official", "de_facto_official")

# For each relation the last template is the reserved paraphrase (see `Templates`).
TEMPLATES = {
    "script": [
        "{subject} is written in the {object}.",
        "The script of {subject} is the {object}.",
        "Texts in {subject} are usually set in the letters of the {object}.",
    ],
    "region": [
        "{subject} is mostly spoken in {object}.",
        "The main region of {subject} is {object}.",
        "Most speakers of {subject} live in {object}, where the language is at home.",
    ],
    "native_name": [
        "In {subject} itself, the language is called {object}.",
        "The native name of {subject} is {object}.",
        "Speakers of {subject} call their language {object} when they talk among themselves.",
    ],
    "official_in": [
        "{subject} is an official language of {object}.",
        "{subject} has official status in {object}.",
        "Laws written in {subject} are valid in {object}, where it is an official language.",
    ],
    "direction": [
        "{subject} is written {object}.",
        "The writing direction of {subject} is {object}.",
        "A line of {subject} text runs {object} across the page.",
    ],
}


def build_languages():
    """Builds the languages knowledge graph and its templates.

    The result depends only on the installed `babel` data.

    Returns:
        A tuple `(knowledge_graph, templates)` of `KnowledgeGraph` and `Templates`.

    Example:

    >>> kg, templates = build_languages()
    >>> kg.objects("German", "native_name")
    {'Deutsch'}
    """
    english = Locale("en")
    likely = get_global("likely_subtags")
    codes = sorted({identifier.split("_")[0] for identifier in locale_identifiers()} & set(likely))
    other_names = set(english.territories.values())
    official = {}
    for territory, languages in get_global("territory_languages").items():
        for code, info in languages.items():
            if info.get("official_status") in OFFICIAL and territory in english.territories:
                official.setdefault(code, []).append(english.territories[territory])
    triples = []
    names = {}
    for code in codes:
        name = english.languages.get(code)
        _, script, region = (likely[code].split("_") + [None, None])[:3]
        if not name or name in other_names or name in names.values() or script not in english.scripts:
            continue
        names[code] = name
        triples.append((name, "script", f"{english.scripts[script]} script"))
        if region in english.territories:
            triples.append((name, "region", english.territories[region]))
        triples += [(name, "official_in", territory) for territory in sorted(set(official.get(code, ())))]
        try:
            locale = Locale.parse(code)
        except (UnknownLocaleError, ValueError):
            continue
        triples.append((name, "direction", locale.character_order))
        native = locale.get_display_name(code)
        if native:
            triples.append((name, "native_name", native[0].upper() + native[1:]))
    entities = set(names.values()) | {obj for _, relation, obj in triples if relation != "native_name"}
    # A native name that is another entity's name would make one name denote two things.
    triples = [(subject, relation, obj) for subject, relation, obj in triples
               if relation != "native_name" or (obj not in entities and obj != subject)]
    knowledge_graph = KnowledgeGraph(triples, name="languages")
    templates = Templates(TEMPLATES)
    templates.validate(knowledge_graph)
    return knowledge_graph, templates


def write_languages(out_dir):
    """Writes the languages KG files into `out_dir`, replacing it atomically.

    Returns:
        A dict of paths with the keys `"triples"` and `"templates"`.
    """
    knowledge_graph, templates = build_languages()
    with atomic_directory(out_dir) as staging:
        write_triples(os.path.join(staging, FILE_NAMES["triples"]), knowledge_graph.triples)
        templates.save(os.path.join(staging, FILE_NAMES["templates"]))
    return {key: os.path.join(os.path.abspath(out_dir), name) for key, name in FILE_NAMES.items()}
