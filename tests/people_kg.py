"""The fictional people knowledge graph the model, training, evaluation and CLI tests share.

It is of another domain than the bundled geonames one (fictional people, where
they were born, whom they work for, what they play), written by the tests
themselves, so kfine is exercised on a KG it was not built around. Everything
is tiny so the whole suite runs on a CPU in minutes.
"""

import json
import os

# Fictional people: every name is unique and made of two capitalized words.
FIRST_NAMES = ["Alda", "Borin", "Cela", "Dorim", "Elva", "Fenn", "Gisla", "Hako"]
LAST_NAMES = ["Varenko", "Quillby", "Marsh", "Tolvane", "Oderly"]
CITIES = ["Mirefall", "Cresthaven", "Dunmoor", "Ostervik", "Palewater"]
COMPANIES = ["Quillstone Works", "Brightwell Foundry", "Harrow & Sons", "Lumen Freight"]
INSTRUMENTS = ["harp", "cello", "oboe", "lute"]

# The last template of each relation is the reserved paraphrase. Some templates
# do not end with {object}, so evaluation must strip their suffix. Paraphrases
# are short: their words are in no training text, so they tokenize into
# characters, and the tiny model reads only 32 tokens.
PEOPLE_TEMPLATES = {
    "born_in": [
        "{subject} was born in {object}.",
        "The birthplace of {subject} is {object}.",
        "{subject} hails from {object}, a quiet town.",
    ],
    "works_for": [
        "{subject} works for {object}.",
        "The employer of {subject} is {object}.",
        "{subject} is employed by {object} now.",
    ],
    "plays": [
        "{subject} plays the {object}.",
        "The instrument of {subject} is the {object}.",
        "{subject} owns a {object} at home.",
    ],
}
PEOPLE_ALIASES = [("Mirefall", "Mire Fall"), ("Quillstone Works", "Quillstone"), ("Harrow & Sons", "Harrow")]

# Small enough to pretrain in seconds on a CPU.
TINY_ARCHITECTURE = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64, "sequence_length": 32}


def people_triples(count=40):
    """`count` fictional people, each with one fact of every relation."""
    triples = []
    for index in range(count):
        person = f"{FIRST_NAMES[index % len(FIRST_NAMES)]} {LAST_NAMES[index // len(FIRST_NAMES)]}"
        triples.append((person, "born_in", CITIES[index % len(CITIES)]))
        triples.append((person, "works_for", COMPANIES[(index // 2) % len(COMPANIES)]))
        triples.append((person, "plays", INSTRUMENTS[(index * 3) % len(INSTRUMENTS)]))
    return triples


def people_kg_paths(directory):
    """The paths `write_people_kg(directory)` writes, as a dict."""
    return {name: os.path.join(directory, file) for name, file in
            (("triples", "triples.tsv"), ("templates", "templates.json"), ("aliases", "aliases.tsv"))}


def write_people_kg(directory, count=40):
    """Writes triples.tsv, templates.json and aliases.tsv; returns their paths as a dict."""
    os.makedirs(directory, exist_ok=True)
    paths = people_kg_paths(directory)
    with open(paths["triples"], "w", encoding="utf-8") as stream:
        stream.write("subject\trelation\tobject\n")
        stream.writelines("\t".join(triple) + "\n" for triple in people_triples(count))
    with open(paths["templates"], "w", encoding="utf-8") as stream:
        json.dump(PEOPLE_TEMPLATES, stream, indent=2)
    with open(paths["aliases"], "w", encoding="utf-8") as stream:
        stream.write("entity\talias\n")
        stream.writelines(f"{entity}\t{alias}\n" for entity, alias in PEOPLE_ALIASES)
    return paths
